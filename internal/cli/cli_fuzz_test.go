package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/validate"
)

// FuzzVMCreateArgs runs `banger vm create` in-process with arbitrary flag
// values. Whatever the input, the CLI either refuses it with a one-line
// banger error and sends nothing, or sends a request the daemon's own rules
// accept: a valid name, 1..32 vcpus, at least 128 MiB, at least 1G of disk.
func FuzzVMCreateArgs(f *testing.F) {
	f.Add("dev", "debian", "2", "1024", "8G")
	f.Add("web-1", "void", "32", "2G", "20GiB")
	f.Add("a;rm -rf /", "$(id)", "0", "0", "0")
	f.Add("-dev", "..", "-1", "-1", "-1G")
	f.Add("Dev", "dév", "1000000", "1000000", "99999T")
	f.Add(strings.Repeat("a", 64), "x", "four", "lots", "1Q")
	f.Add("ok", "ok", "1", "128", "1073741824")
	f.Fuzz(func(t *testing.T, name, image, vcpus, memory, disk string) {
		rec := &recorder{reply: api.VM{Name: name}}
		args := []string{"vm", "create", "--no-start", "--name=" + name, "--image=" + image,
			"--vcpus=" + vcpus, "--memory=" + memory, "--disk=" + disk}
		_, stderr, code := run(t, rec, args...)
		if code != 0 {
			if rec.method != "" {
				t.Fatalf("%q: failed but sent %s", args, rec.method)
			}
			if !strings.HasPrefix(stderr, "banger: ") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
				t.Fatalf("%q: error is not a short banger message: %q", args, stderr)
			}
			// Input is echoed quoted: no control characters reach the terminal.
			if i := strings.IndexFunc(stderr, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
				t.Fatalf("%q: error carries a raw control character at %d: %q", args, i, stderr)
			}
			return
		}
		var p api.VMCreateParams
		if err := json.Unmarshal(rec.params, &p); err != nil || rec.method != api.MethodVMCreate {
			t.Fatalf("%q: sent %s %s (%v)", args, rec.method, rec.params, err)
		}
		if p.Image == nil || p.VCPUs == nil || p.MemoryMiB == nil || p.DiskBytes == nil {
			t.Fatalf("%q: a given flag was not sent: %s", args, rec.params)
		}
		for _, err := range []error{
			validate.VMName(p.Name), validate.ImageName(*p.Image),
			validate.VCPUs(*p.VCPUs, validate.Limits{}), validate.MemoryMiB(*p.MemoryMiB, validate.Limits{}),
			validate.DiskBytes(*p.DiskBytes, validate.Limits{}),
		} {
			if err != nil {
				t.Fatalf("%q: the CLI sent what the daemon refuses: %v", args, err)
			}
		}
		if p.Name != name || *p.Image != image {
			t.Fatalf("%q: sent name %q image %q", args, p.Name, *p.Image)
		}
	})
}
