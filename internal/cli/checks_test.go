package cli

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

// Checks as `banger doctor` really reports them: long details, a fix with
// a URL longer than most terminals, a skipped check.
var doctorChecks = []api.CheckResult{
	{Name: "hypervisor", Status: api.CheckWarn, Detail: "qemu (qemu: no /dev/kvm (KVM not available: no hardware virtualization, or the kvm module is not loaded); software emulation (TCG): slow): software emulation: boots take ~15 s",
		Fix: "enable virtualization: turn on VT-x/AMD-V in the firmware (or nested virtualization for a cloud VM), then sudo modprobe kvm_intel (or kvm_amd); sudo usermod -aG kvm $USER (then log out and back in)"},
	{Name: "firecracker", Status: api.CheckWarn, Detail: "firecracker not found in PATH; VMs will run under QEMU",
		Fix: "download the release tarball from https://github.com/firecracker-microvm/firecracker/releases and put firecracker in PATH: curl -fL https://github.com/firecracker-microvm/firecracker/releases/download/v1.16.1/firecracker-v1.16.1-x86_64.tgz | tar -xz"},
	{Name: "qemu", Status: api.CheckFail, Detail: "qemu-system-x86_64 not found in PATH; QEMU is the hypervisor banger would use", Fix: "sudo apt-get install qemu-system-x86 qemu-utils"},
	{Name: "memory", Status: api.CheckOK, Detail: "23537 MiB available of 24105 MiB"},
	{Name: "vm-stopped", Status: api.CheckSkip, Detail: "applies to a disk resize only: no VM named"},
	{Name: "daemon-socket", Status: api.CheckOK, Detail: "bangerd pid 6870 answers on /run/user/1000/banger/bangerd.sock"},
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func doctorOutput(t *testing.T, width int, tty bool) string {
	t.Helper()
	t.Setenv("NO_COLOR", "")
	os.Unsetenv("NO_COLOR") // colour on for a terminal: padding must ignore escapes
	var out bytes.Buffer
	a := &App{Layout: paths.UnderRoot(t.TempDir()), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &bytes.Buffer{},
		IsTTY: func(any) bool { return tty },
		Width: func(any) int { return width },
		Connect: func(context.Context) (Caller, error) {
			return &recorder{reply: api.DoctorResult{Checks: doctorChecks}}, nil
		}}
	if code := Main(a, []string{"doctor"}); code != 1 {
		t.Fatalf("doctor exit %d with a failed check, want 1", code)
	}
	return out.String()
}

// On a terminal the report fits its width, DETAIL wrapped and each fix on
// its own line, and loses no text.
func TestDoctorFitsTheTerminal(t *testing.T) {
	for _, width := range []int{80, 120, 40} {
		out := doctorOutput(t, width, true)
		plain := ansi.ReplaceAllString(out, "")
		if plain == out {
			t.Errorf("width %d: no colour on a terminal", width)
		}
		lines := strings.Split(strings.TrimSuffix(plain, "\n"), "\n")
		for _, l := range lines {
			// Only a single word too long for any line (a URL) may overflow.
			if n := utf8.RuneCountInString(l); n > width && len(strings.Fields(l)) != 1 {
				t.Errorf("width %d: line of %d columns: %q", width, n, l)
			}
		}
		squashed := strings.Join(strings.Fields(plain), "")
		for _, c := range doctorChecks {
			for _, s := range []string{c.Name, string(c.Status), c.Detail, c.Fix} {
				if !strings.Contains(squashed, strings.Join(strings.Fields(s), "")) {
					t.Errorf("width %d: output lacks %q:\n%s", width, s, plain)
				}
			}
		}
		if !strings.Contains(plain, "fix: sudo apt-get install") {
			t.Errorf("width %d: no fix line:\n%s", width, plain)
		}
		if !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "STATUS") {
			t.Errorf("width %d: header %q", width, lines[0])
		}
		t.Logf("width %d:\n%s", width, plain)
	}
}

// Into a pipe: one row per check, the fix in the last column, no colour.
func TestDoctorOneRowPerCheckInAPipe(t *testing.T) {
	out := doctorOutput(t, 0, false)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(doctorChecks)+1 || strings.Contains(out, "\x1b[") {
		t.Fatalf("%d lines for %d checks:\n%s", len(lines), len(doctorChecks), out)
	}
	for i, c := range doctorChecks {
		l := lines[i+1]
		if !strings.HasPrefix(l, c.Name+" ") || !strings.Contains(l, c.Detail) || (c.Fix != "" && !strings.HasSuffix(l, c.Fix)) {
			t.Errorf("row %q does not carry check %+v", l, c)
		}
	}
}

func TestWrapText(t *testing.T) {
	for _, c := range []struct {
		in    string
		width int
		want  []string
	}{
		{"a bb ccc dddd eeeee", 10, []string{"a bb ccc", "dddd eeeee"}},
		{"", 10, []string{""}},
		{"x abcdefghijklmnop y", 10, []string{"x", "abcdefghijklmnop", "y"}},
	} {
		if got := wrapText(c.in, c.width); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("wrapText(%q, %d) = %q, want %q", c.in, c.width, got, c.want)
		}
	}
}
