package mapdns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary play an external mapdns server: started as
// `<binary> DATAFILE` with BANGER_FAKE_MAPDNS set, it appends a line to
// DATAFILE.loads on start and on each SIGHUP.
func TestMain(m *testing.M) {
	if os.Getenv("BANGER_FAKE_MAPDNS") != "" && len(os.Args) == 2 {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		for n := 0; ; n++ {
			data, _ := os.ReadFile(os.Args[1])
			f, _ := os.OpenFile(os.Args[1]+".loads", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			fmt.Fprintf(f, "load %d: %d bytes\n", n, len(data))
			f.Close()
			<-hup
		}
	}
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
	want := "{\n  \"dev.vm.\": {\n    \"A\": \"172.30.0.2\"\n  },\n  \"web.vm.\": {\n    \"A\": \"172.30.0.3\"\n  }\n}\n"
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

func waitFor(t *testing.T, path string, lines int) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Count(string(data), "\n") >= lines {
			return string(data)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %q, want %d lines", path, data, lines)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReloadStartsThenSignals(t *testing.T) {
	dir := t.TempDir()
	self, _ := os.Executable()
	bin := filepath.Join(dir, "mapdns")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	dataFile := filepath.Join(dir, "mapdns.json")
	if err := Write(dataFile, "vm", map[string]netip.Addr{"dev": addr("172.30.0.2")}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BANGER_FAKE_MAPDNS", "1")
	ctx := context.Background()
	if err := Reload(ctx, bin, dataFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pids, _ := findProcesses("/proc", bin)
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGTERM)
		}
	})
	waitFor(t, dataFile+".loads", 1)
	pids, err := findProcesses("/proc", bin)
	if err != nil || len(pids) != 1 {
		t.Fatalf("mapdns processes after start: %v, %v", pids, err)
	}
	if err := Reload(ctx, bin, dataFile); err != nil {
		t.Fatal(err)
	}
	loads := waitFor(t, dataFile+".loads", 2)
	if again, _ := findProcesses("/proc", bin); len(again) != 1 || again[0] != pids[0] {
		t.Errorf("second Reload started another process (%v -> %v) instead of signalling", pids, again)
	}
	if !strings.Contains(loads, "load 1:") {
		t.Errorf("loads = %q", loads)
	}
	if err := Reload(ctx, "mapdns", dataFile); err == nil {
		t.Error("relative mapdns_bin accepted")
	}
}
