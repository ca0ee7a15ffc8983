package mapdns

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/envknob"
	"github.com/banger-dev/banger/internal/mapdns/mapdnstest"
)

func TestMain(m *testing.M) {
	if envknob.MapDNSSupervise.Value() != "" {
		superviseMain()
	}
	mapdnstest.Main() // the test binary plays mapdns when asked to
	os.Exit(m.Run())
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", path, err, data)
	}
	return m
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestWriteFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapdns.json")
	if err := Write(path, "vm", map[string]netip.Addr{"Dev": addr("172.30.0.2"), "web": addr("172.30.0.3")}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := "{\n  \"dev.vm.\": {\"A\":\"172.30.0.2\"},\n  \"web.vm.\": {\"A\":\"172.30.0.3\"}\n}\n"
	if string(data) != want {
		t.Errorf("file =\n%s\nwant\n%s", data, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", e.Name())
		}
	}
}

func TestWritePreservesForeignEntries(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapdns.json")
	foreign := `{"printer.lan.": {"A": "192.168.1.9", "TTL": 60}, "old.vm.": {"A": "10.0.0.9"}}`
	if err := os.WriteFile(path, []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2"), "tmp": addr("172.30.0.4")}); err != nil {
		t.Fatal(err)
	}
	// "tmp" is deleted, "dev" moves: only banger's previous names change.
	if err := Write(path, "vm", map[string]netip.Addr{"dev": addr("172.30.0.5")}); err != nil {
		t.Fatal(err)
	}
	got := readJSON(t, path)
	if len(got) != 3 {
		t.Errorf("entries %v, want printer.lan., old.vm., dev.vm.", got)
	}
	if p, ok := got["printer.lan."].(map[string]any); !ok || p["A"] != "192.168.1.9" || p["TTL"] != float64(60) {
		t.Errorf("foreign entry changed: %v", got["printer.lan."])
	}
	if _, ok := got["old.vm."]; !ok {
		t.Error("a foreign entry in our domain that banger never wrote was removed")
	}
	if d, _ := got["dev.vm."].(map[string]any); d["A"] != "172.30.0.5" {
		t.Errorf("dev.vm. = %v", got["dev.vm."])
	}
	if _, ok := got["tmp.vm."]; ok {
		t.Error("a deleted VM's entry was kept")
	}
	// With no VMs left, only the foreign entries remain.
	if err := Write(path, "vm", nil); err != nil {
		t.Fatal(err)
	}
	if got := readJSON(t, path); len(got) != 2 {
		t.Errorf("after removing all VMs: %v", got)
	}
}

// The user's file survives banger byte for byte: their members are not
// reformatted or reordered, and removing banger's names gives back the very
// file banger found. An unchanged file is not rewritten.
func TestWriteKeepsForeignTextByteForByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapdns.json")
	mine := "{\n\t\"foo.example.org.\": {\n\t\t\"A\": \"1.2.3.4\"\n\t},\n\t\"*.foo.example.org.\" :{\"A\":\"1.2.3.4\",  \"TTL\": 60}\n}\n"
	if err := os.WriteFile(path, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := Update(path, "vm", map[string]netip.Addr{"web": addr("172.30.0.3"), "dev": addr("172.30.0.2")})
	if err != nil || !changed {
		t.Fatalf("Update = %v, %v", changed, err)
	}
	data, _ := os.ReadFile(path)
	want := "{\n\t\"foo.example.org.\": {\n\t\t\"A\": \"1.2.3.4\"\n\t},\n\t\"*.foo.example.org.\" :{\"A\":\"1.2.3.4\",  \"TTL\": 60}," +
		"\n\t\"dev.vm.\": {\"A\":\"172.30.0.2\"},\n\t\"web.vm.\": {\"A\":\"172.30.0.3\"}\n}\n"
	if string(data) != want {
		t.Fatalf("file =\n%s\nwant\n%s", data, want)
	}
	if changed, err := Update(path, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2"), "web": addr("172.30.0.3")}); err != nil || changed {
		t.Errorf("the same entries again: changed %v, %v", changed, err)
	}
	if err := Write(path, "vm", nil); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != mine {
		t.Fatalf("after removing banger's names the file is\n%q\nwant the original\n%q", data, mine)
	}
}

func TestWriteRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("[1,2]"), 0o644)
	for _, c := range []struct {
		path    string
		entries map[string]netip.Addr
		want    string
	}{
		{"relative.json", nil, "absolute path"},
		{bad, nil, "not a JSON object"},
		{filepath.Join(dir, "a.json"), map[string]netip.Addr{"a.b": addr("172.30.0.2")}, "DNS label"},
		{filepath.Join(dir, "a.json"), map[string]netip.Addr{"v6": addr("fd00::1")}, "only IPv4"},
	} {
		if err := Write(c.path, "vm", c.entries); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Write(%s, %v) = %v, want %q", c.path, c.entries, err, c.want)
		}
	}
	if data, _ := os.ReadFile(bad); string(data) != "[1,2]" {
		t.Error("a file Write refused was modified")
	}
}

func TestCheckDataFile(t *testing.T) {
	if err := CheckDataFile("/srv/dns/mapdns.json"); err != nil {
		t.Error(err)
	}
	for _, p := range []string{"mapdns.json", "/srv/dns/data.json"} {
		if err := CheckDataFile(p); err == nil {
			t.Errorf("CheckDataFile(%q) accepted", p)
		}
	}
	if err := CheckDataFile("/srv/dns/data.json"); !strings.Contains(err.Error(), "/srv/dns/mapdns.json") {
		t.Errorf("no suggested name: %v", err)
	}
}

// Parsing and rendering an object gives back its exact text; adding to an
// empty one indents the new member.
func TestObjectRoundTrip(t *testing.T) {
	for _, text := range []string{
		"{}", "{}\n", " {\n}\n\n", `{"a":1}`, "{\n  \"a\": {\"A\": \"1.2.3.4\"} ,\n\t\"b\\u0041\" : [1, {\"x\": \"}\"}]\n}\n",
	} {
		o, err := parseObject([]byte(text))
		if err != nil {
			t.Errorf("parse %q: %v", text, err)
			continue
		}
		// A leading space before '{' is not kept.
		if got, want := string(o.render()), strings.TrimLeft(text, " "); got != want && !(text == `{"a":1}` && got == text+"\n") && !(text == "{}" && got == "{}\n") {
			t.Errorf("round trip of %q gave %q", text, got)
		}
	}
	o, _ := parseObject([]byte("{}\n"))
	if err := o.add("dev.vm.", record{A: "172.30.0.2"}); err != nil {
		t.Fatal(err)
	}
	if got := string(o.render()); got != "{\n  \"dev.vm.\": {\"A\":\"172.30.0.2\"}\n}\n" {
		t.Errorf("added to {}: %q", got)
	}
	for _, bad := range []string{"[1]", `{"a":1} x`, `{"a":1}}`, `{"a"}`, "{"} {
		if _, err := parseObject([]byte(bad)); err == nil {
			t.Errorf("parse %q accepted", bad)
		}
	}
}
