package validate

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// dnsLabel is RFC 1123's host label restricted to lower case: the rule a VM
// name must meet to become <name>.vm and the guest hostname.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func addNameSeeds(f *testing.F) {
	for _, s := range []string{"dev", "web-1", "a", "0", strings.Repeat("a", 63), strings.Repeat("a", 64),
		"", "-dev", "dev-", "Dev", "a/b", "..", "a b", "a;rm -rf /", "$(id)", "`id`", "dév", "a\x00b", "a\nb", "ＡＢ"} {
		f.Add(s)
	}
}

// checkName asserts both directions: a name is accepted exactly when it is a
// lower-case DNS label, and a refusal states the rule.
func checkName(t *testing.T, what string, check func(string) error, name string) {
	err := check(name)
	if ok := dnsLabel.MatchString(name); ok != (err == nil) {
		t.Fatalf("%s(%q) = %v, but DNS-label rule says valid=%v", what, name, err, ok)
	}
	if err != nil && !strings.Contains(err.Error(), "1-63 characters") {
		t.Fatalf("%s(%q) error does not state the rule: %v", what, name, err)
	}
}

func FuzzVMName(f *testing.F) {
	addNameSeeds(f)
	f.Fuzz(func(t *testing.T, name string) { checkName(t, "VMName", VMName, name) })
}

func FuzzImageName(f *testing.F) {
	addNameSeeds(f)
	f.Fuzz(func(t *testing.T, name string) { checkName(t, "ImageName", ImageName, name) })
}

var units = []struct {
	suffix string
	mult   int64
}{{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"8G", "1024MiB", "1073741824", "2gib", " 512M ", "1B", "4096T",
		"0", "-1G", "1Q", "99999T", "9223372036854775807", "4097T", "1.5G", "G", "", "+5G", "1 G", "0x10", "１G"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid size") {
				t.Fatalf("ParseSize(%q) error does not say what was wrong: %v", s, err)
			}
			return
		}
		if n <= 0 || n > 1<<62 {
			t.Fatalf("ParseSize(%q) = %d: outside (0, 2^62]", s, n)
		}
		// Round trips: plain bytes, every unit that divides n, and the
		// display form whenever it is exact.
		if back, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but ParseSize(%d) = %d, %v", s, n, n, back, err)
		}
		for _, u := range units {
			if n%u.mult != 0 {
				continue
			}
			for _, suffix := range []string{u.suffix, u.suffix + "iB", strings.ToLower(u.suffix)} {
				in := fmt.Sprintf("%d%s", n/u.mult, suffix)
				if back, err := ParseSize(in); err != nil || back != n {
					t.Fatalf("ParseSize(%q) = %d, but ParseSize(%q) = %d, %v", s, n, in, back, err)
				}
			}
		}
		shown := FormatBytes(n)
		back, err := ParseSize(shown)
		if !strings.Contains(shown, ".") && err != nil {
			t.Fatalf("FormatBytes(%d) = %q, which ParseSize refuses: %v", n, shown, err)
		}
		if err == nil && !roughlyEqual(back, n) {
			t.Fatalf("FormatBytes(%d) = %q reads back as %d", n, shown, back)
		}
	})
}

// roughlyEqual allows FormatBytes' one-decimal rounding: within 5% of the unit.
func roughlyEqual(a, b int64) bool {
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= b/19+1
}

func FuzzParseMemoryMiB(f *testing.F) {
	for _, s := range []string{"1024", "512M", "2G", "1GiB", "128", "0", "-1", "1000000", "1Q", "1K", "1536K", "x", "", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMemoryMiB(s)
		if err != nil {
			if !strings.Contains(err.Error(), "invalid") {
				t.Fatalf("ParseMemoryMiB(%q) error does not say what was wrong: %v", s, err)
			}
			return
		}
		if m <= 0 {
			t.Fatalf("ParseMemoryMiB(%q) = %d: not positive", s, m)
		}
		if back, err := ParseMemoryMiB(strconv.Itoa(m)); err != nil || back != m {
			t.Fatalf("ParseMemoryMiB(%q) = %d, but ParseMemoryMiB(%d) = %d, %v", s, m, m, back, err)
		}
		if m <= 1<<42 { // beyond that m MiB is over ParseSize's 2^62 bytes
			in := fmt.Sprintf("%dM", m)
			if back, err := ParseMemoryMiB(in); err != nil || back != m {
				t.Fatalf("ParseMemoryMiB(%q) = %d, but ParseMemoryMiB(%q) = %d, %v", s, m, in, back, err)
			}
		}
	})
}
