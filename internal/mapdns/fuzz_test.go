package mapdns

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// canonical is a JSON value compact and HTML-escaped, to compare the
// values banger writes whatever their layout.
func canonical(v json.RawMessage) string {
	out, err := json.Marshal(v)
	if err != nil {
		return "invalid: " + err.Error()
	}
	return string(out)
}

// decodeFile reads a data file as Write does (blank = empty object).
func decodeFile(data []byte) (map[string]json.RawMessage, error) {
	m := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(data)) == 0 {
		return m, nil
	}
	return m, json.Unmarshal(data, &m)
}

// entriesOf turns "a,b,c" into VM entries with distinct addresses. Names
// that differ only in case are one DNS name: the daemon never has two such
// VMs (names are lowercase), so only the first is kept.
func entriesOf(list string) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	if list == "" {
		return out
	}
	seen := map[string]bool{}
	for i, name := range strings.Split(list, ",") {
		if seen[strings.ToLower(name)] {
			continue
		}
		seen[strings.ToLower(name)] = true
		out[name] = netip.AddrFrom4([4]byte{172, 30, byte(i / 250), byte(2 + i%250)})
	}
	return out
}

// FuzzWriteKeepsForeignEntries: another program wrote the data file
// (anything at all); banger then writes one set of VMs, then another.
// Invariants: a refused write (not a JSON object, a bad name) leaves the
// file byte for byte as it was; after each write every key banger does not
// manage is still there with its value byte for byte as the other program
// wrote it (and with no VM names ever written, the whole file is), banger's names map to exactly
// their addresses, a name banger wrote before and no longer writes is gone,
// nothing else appears, and the .banger-managed list names exactly the
// current VMs.
func FuzzWriteKeepsForeignEntries(f *testing.F) {
	f.Add([]byte(`{"mail.example.": {"A": "192.0.2.1"}, "dev.vm.": {"A": "10.0.0.9"}}`), "dev,web", "web")
	f.Add([]byte(`{"x.": {"A": "192.0.2.1", "TTL": 60, "note": "<b>&</b>"},
  "y.":   [1, 2, {"z": null}]}`), "a", "")
	f.Add([]byte(`{"DEV.vm.": {"A": "1.2.3.4"}, "dev.VM.": 1}`), "Dev", "dev")
	f.Add([]byte(`{"a": 1, "a": 2}`), "a", "b")
	f.Add([]byte(`{"\u00e9.vm.": "\ud800", "k\u0000": true}`), "x", "y")
	f.Add([]byte(`[1, 2]`), "a", "b")
	f.Add([]byte(""), "a,b,c", "c")
	f.Add([]byte("   \n"), "", "a")
	f.Add([]byte(`{"a.vm.": {"A": "1.1.1.1"}}`), "a.b", "a")
	f.Add([]byte(`{}`), "a b", "")
	f.Fuzz(func(t *testing.T, original []byte, first, second string) {
		dir := t.TempDir()
		path := filepath.Join(dir, "data.json")
		if err := os.WriteFile(path, original, 0o644); err != nil {
			t.Fatal(err)
		}
		orig, origErr := decodeFile(original)
		owned := map[string]bool{} // names banger has written so far
		prev := map[string]bool{}
		for round, list := range []string{first, second} {
			before, _ := os.ReadFile(path)
			entries := entriesOf(list)
			err := Write(path, "vm", entries)
			if err != nil {
				after, _ := os.ReadFile(path)
				if !bytes.Equal(before, after) {
					t.Fatalf("round %d: Write failed (%v) but changed the data file:\nbefore %q\nafter  %q", round, err, before, after)
				}
				return
			}
			if origErr != nil {
				t.Fatalf("round %d: Write accepted a data file that is not a JSON object (%v): %q", round, origErr, original)
			}
			data, _ := os.ReadFile(path)
			got, derr := decodeFile(data)
			if derr != nil {
				t.Fatalf("round %d: Write left a file that does not decode: %v\n%s", round, derr, data)
			}
			now := map[string]bool{}
			for name, a := range entries {
				key := strings.ToLower(name) + ".vm."
				now[key], owned[key] = true, true
				want := fmt.Sprintf(`{"A":%q}`, a.String())
				if canonical(got[key]) != want {
					t.Fatalf("round %d: %s = %s, want %s", round, key, got[key], want)
				}
			}
			for k, v := range orig {
				if owned[k] {
					continue // banger's now (the VM wins), handled above and below
				}
				gv, ok := got[k]
				if !ok {
					t.Fatalf("round %d: foreign key %q was removed", round, k)
				}
				// json.RawMessage holds a value's text exactly as written
				// (spacing, escapes, number spelling, key order inside), so
				// this is the other program's bytes, not a re-encoding.
				if !bytes.Equal(gv, v) {
					t.Fatalf("round %d: foreign key %q changed: %q, was %q", round, k, gv, v)
				}
				if !bytes.Contains(data, v) {
					t.Fatalf("round %d: foreign value of %q not in the file byte for byte: %q", round, k, v)
				}
			}
			if len(owned) == 0 && len(bytes.TrimSpace(original)) > 0 && !bytes.Equal(data, original) {
				// Banger has no name to write and never had: the other
				// program's file stays exactly as it wrote it.
				t.Fatalf("round %d: with no VM names to write, Write changed the file:\nbefore %q\nafter  %q", round, original, data)
			}
			for k := range got {
				_, foreign := orig[k]
				if now[k] || (foreign && !owned[k]) {
					continue
				}
				if prev[k] {
					t.Fatalf("round %d: %q, which banger wrote before and no longer writes, is still there", round, k)
				}
				t.Fatalf("round %d: %q appeared from nowhere", round, k)
			}
			managed, err := readManaged(path)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for k := range now {
				want = append(want, k)
			}
			sort.Strings(want)
			if !slices.Equal(managed, want) && !(len(managed) == 0 && len(want) == 0) {
				t.Fatalf("round %d: %s lists %q, want %q", round, ManagedSuffix, managed, want)
			}
			prev = now
		}
	})
}
