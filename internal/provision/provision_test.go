package provision

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

func TestParseReady(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Ready
		err  string
	}{
		{"tcp:8080", Ready{Port: 8080}, ""},
		{"tcp:1", Ready{Port: 1}, ""},
		{"cmd:curl -fs localhost:8080/health", Ready{Command: "curl -fs localhost:8080/health"}, ""},
		{"tcp:0", Ready{}, "1-65535"},
		{"tcp:65536", Ready{}, "1-65535"},
		{"tcp:http", Ready{}, "1-65535"},
		{"tcp:", Ready{}, "1-65535"},
		{"cmd:", Ready{}, "no command"},
		{"cmd:  ", Ready{}, "no command"},
		{"http:80", Ready{}, "want tcp:PORT"},
		{"8080", Ready{}, "want tcp:PORT"},
		{"", Ready{}, "want tcp:PORT"},
	} {
		got, err := ParseReady(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseReady(%q) = %+v, %v; want an error saying %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseReady(%q) = %+v (%s), %v; want %+v", tc.in, got, got, err, tc.want)
		}
	}
}

func TestParseCopy(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want api.ProvisionCopy
		err  bool
	}{
		{"app.conf:/etc/app.conf", api.ProvisionCopy{Src: "/base/app.conf", Dst: "/etc/app.conf"}, false},
		{"/abs/dir/:/opt/", api.ProvisionCopy{Src: "/abs/dir", Dst: "/opt/"}, false},
		{"a:b:/dst", api.ProvisionCopy{Src: "/base/a:b", Dst: "/dst"}, false}, // the last ':' splits
		{"../up:rel", api.ProvisionCopy{Src: "/up", Dst: "rel"}, false},
		{"nocolon", api.ProvisionCopy{}, true},
		{":/dst", api.ProvisionCopy{}, true},
		{"src:", api.ProvisionCopy{}, true},
	} {
		got, err := ParseCopy(tc.in, "/base")
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "want SRC:DST") {
				t.Errorf("ParseCopy(%q) = %+v, %v; want a SRC:DST error", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseCopy(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestLoadFileResolvesAgainstItsDirectoryAndMerges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vm.toml")
	os.WriteFile(path, []byte(`provision = ["setup.sh", "/abs/two.sh"]
copy = ["conf/app.conf:/etc/app.conf"]
ready = "tcp:80"
`), 0o644)
	got, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{
		Scripts: []string{filepath.Join(dir, "setup.sh"), "/abs/two.sh"},
		Copies:  []api.ProvisionCopy{{Src: filepath.Join(dir, "conf/app.conf"), Dst: "/etc/app.conf"}},
		Ready:   "tcp:80",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadFile = %+v, want %+v", got, want)
	}
	// Flags come after the file's scripts and copies; --ready replaces.
	m := Merge(got, Spec{Scripts: []string{"/flag.sh"}, Copies: []api.ProvisionCopy{{Src: "/f", Dst: "/g"}}, Ready: "cmd:true"})
	if !reflect.DeepEqual(m.Scripts, []string{filepath.Join(dir, "setup.sh"), "/abs/two.sh", "/flag.sh"}) ||
		len(m.Copies) != 2 || m.Copies[1].Src != "/f" || m.Ready != "cmd:true" {
		t.Errorf("Merge = %+v", m)
	}
	if m := Merge(got, Spec{}); m.Ready != "tcp:80" {
		t.Errorf("Merge without --ready lost the file's: %+v", m)
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ text, want string }{
		{"provison = [\"a.sh\"]\n", "unknown key provison (valid keys: provision, copy, ready)"},
		{"copy = [\"nocolon\"]\n", "want SRC:DST"},
		{"provision = \"a.sh\"\n", "vm.toml"},
		{"provision = [\"\"]\n", "empty provision entry"},
		{"ready = [\n", "vm.toml"},
	} {
		path := filepath.Join(dir, "vm.toml")
		os.WriteFile(path, []byte(tc.text), 0o644)
		if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadFile(%q): %v; want an error saying %q", tc.text, err, tc.want)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.sh")
	os.WriteFile(ok, []byte("true\n"), 0o644)
	big := filepath.Join(dir, "big.sh")
	os.WriteFile(big, make([]byte, MaxScriptBytes+1), 0o644)
	if err := Check(Spec{Scripts: []string{ok}, Copies: []api.ProvisionCopy{{Src: ok, Dst: "/x"}}, Ready: "tcp:22"}); err != nil {
		t.Errorf("a good spec: %v", err)
	}
	for _, tc := range []struct {
		s    Spec
		want string
	}{
		{Spec{Scripts: []string{filepath.Join(dir, "none.sh")}}, "none.sh: no such file or directory"},
		{Spec{Scripts: []string{dir}}, "not a regular file"},
		{Spec{Scripts: []string{big}}, "at most"},
		{Spec{Scripts: []string{"rel.sh"}}, "absolute path"},
		{Spec{Copies: []api.ProvisionCopy{{Src: filepath.Join(dir, "none"), Dst: "/x"}}}, "none: no such file"},
		{Spec{Copies: []api.ProvisionCopy{{Src: ok, Dst: "a:b"}}}, "without ':'"},
		{Spec{Ready: "udp:53"}, "want tcp:PORT"},
		{Spec{Scripts: make([]string, MaxScripts+1)}, "at most 64"},
	} {
		if err := Check(tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Check(%+v): %v; want %q", tc.s, err, tc.want)
		}
	}
}
