package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// --provision, --copy, --ready and --config reach the daemon as absolute
// paths, the file's entries first; --ready replaces the file's.
func TestCreateProvisionFlags(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, f := range []string{"a.sh", "b.sh", "conf/app.conf", "cfgdir/setup.sh", "cfgdir/files/x"} {
		os.MkdirAll(filepath.Dir(f), 0o755)
		os.WriteFile(f, []byte("true\n"), 0o644)
	}
	os.WriteFile("cfgdir/vm.toml", []byte("provision = [\"setup.sh\"]\ncopy = [\"files/x:/etc/x\"]\nready = \"tcp:22\"\n"), 0o644)
	rec := &recorder{reply: api.VM{}}
	_, stderr, code := run(t, rec, "vm", "create", "--name", "dev", "--config", "cfgdir/vm.toml",
		"--provision", "a.sh", "--provision", filepath.Join(dir, "b.sh"), "--copy", "conf/app.conf:/etc/app.conf", "--ready", "cmd:true")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var p api.VMCreateParams
	json.Unmarshal(rec.params, &p)
	want := api.VMCreateParams{Name: "dev",
		Provision: []string{filepath.Join(dir, "cfgdir/setup.sh"), filepath.Join(dir, "a.sh"), filepath.Join(dir, "b.sh")},
		Copy: []api.ProvisionCopy{{Src: filepath.Join(dir, "cfgdir/files/x"), Dst: "/etc/x"},
			{Src: filepath.Join(dir, "conf/app.conf"), Dst: "/etc/app.conf"}},
		Ready: "cmd:true"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("sent %+v\nwant %+v", p, want)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--provision", "missing.sh"}, "missing.sh: no such file or directory"},
		{[]string{"--copy", "a.sh"}, "want SRC:DST"},
		{[]string{"--copy", "nope:/x"}, "nope: no such file"},
		{[]string{"--ready", "tcp:http"}, "1-65535"},
		{[]string{"--ready", "later"}, "want tcp:PORT"},
		{[]string{"--config", "none.toml"}, "none.toml"},
	} {
		rec := &recorder{}
		_, stderr, code := run(t, rec, append([]string{"vm", "create", "--name", "dev"}, tc.args...)...)
		if code == 0 || rec.method != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, sent %q, stderr %q; want a refusal saying %q before any request", tc.args, code, rec.method, stderr, tc.want)
		}
	}
}
