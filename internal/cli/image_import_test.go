package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
)

// image import sends local references with absolute paths (the daemon has
// its own working directory) and refuses a bad reference or name first.
func TestImageImportFlags(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for in, want := range map[string]string{
		"oci:./layout:v1":         "oci:" + filepath.Join(dir, "layout") + ":v1",
		"docker-archive:app.tar":  "docker-archive:" + filepath.Join(dir, "app.tar"),
		"127.0.0.1:5000/app:v1":   "127.0.0.1:5000/app:v1",
		"registry.example/team/x": "registry.example/team/x",
	} {
		rec := &recorder{reply: api.Image{Name: "app"}}
		if _, stderr, code := run(t, rec, "image", "import", in, "--name", "app", "--size", "8G"); code != 0 {
			t.Fatalf("image import %s: exit %d: %s", in, code, stderr)
		}
		var p api.ImageImportParams
		json.Unmarshal(rec.params, &p)
		if rec.method != api.MethodImageImport || p.Ref != want || p.Name != "app" || p.SizeBytes == nil || *p.SizeBytes != 8<<30 {
			t.Errorf("image import %s sent %s %s; want ref %s", in, rec.method, rec.params, want)
		}
	}
	for _, args := range [][]string{
		{"image", "import", "Bad Ref!", "--name", "app"},
		{"image", "import", "oci:", "--name", "app"},
		{"image", "import", "debian:12", "--name", "Bad"},
		{"image", "import", "debian:12", "--name", "app", "--size", "lots"},
	} {
		rec := &recorder{}
		_, stderr, code := run(t, rec, args...)
		if code == 0 || rec.method != "" || !strings.HasPrefix(stderr, "banger: ") {
			t.Errorf("%v: exit %d, sent %q, stderr %q; want a refusal before any request", args, code, rec.method, stderr)
		}
	}
}
