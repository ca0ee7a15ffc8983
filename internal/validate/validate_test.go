package validate

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	good := []string{"a", "dev", "web-1", "0abc", strings.Repeat("a", 63)}
	bad := []string{"", "-dev", "dev-", "Dev", "dev_1", "dev.vm", "dév", strings.Repeat("a", 64), "a b"}
	for _, n := range good {
		if err := VMName(n); err != nil {
			t.Errorf("VMName(%q) = %v, want ok", n, err)
		}
		if err := ImageName(n); err != nil {
			t.Errorf("ImageName(%q) = %v, want ok", n, err)
		}
	}
	for _, n := range bad {
		err := VMName(n)
		if err == nil {
			t.Errorf("VMName(%q) accepted", n)
			continue
		}
		if !strings.Contains(err.Error(), "lower-case letters") {
			t.Errorf("VMName(%q) error does not spell out the rule: %v", n, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	cases := map[string]int64{
		"512M": 512 << 20, "2G": 2 << 30, "2GiB": 2 << 30, "1024MiB": 1 << 30,
		"4096": 4096, "1t": 1 << 40, "10K": 10 << 10, " 3g ": 3 << 30,
	}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "-2G", "abc", "2X", "1.5G", "G", "99999999999T"} {
		_, err := ParseSize(in)
		if err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
			continue
		}
		if in != "99999999999T" && !strings.Contains(err.Error(), "accepted forms") {
			t.Errorf("ParseSize(%q) error lacks the accepted forms: %v", in, err)
		}
	}
}

func TestParseMemoryMiB(t *testing.T) {
	cases := map[string]int{"1024": 1024, "1G": 1024, "512M": 512, "2GiB": 2048}
	for in, want := range cases {
		got, err := ParseMemoryMiB(in)
		if err != nil || got != want {
			t.Errorf("ParseMemoryMiB(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-5", "1K", "x"} {
		if _, err := ParseMemoryMiB(in); err == nil {
			t.Errorf("ParseMemoryMiB(%q) accepted", in)
		}
	}
}

func TestLimits(t *testing.T) {
	l := Limits{HostCPUs: 4, HostMemoryBytes: 8 << 30, FSFreeBytes: 100 << 30}
	for _, n := range []int{1, 4} {
		if err := VCPUs(n, l); err != nil {
			t.Errorf("VCPUs(%d): %v", n, err)
		}
	}
	for _, n := range []int{0, -1, 5, 64} {
		if err := VCPUs(n, l); err == nil {
			t.Errorf("VCPUs(%d) accepted", n)
		}
	}
	if err := VCPUs(33, Limits{HostCPUs: 64}); err == nil {
		t.Error("33 vcpus accepted on a 64-cpu host; cap is 32")
	}
	if err := MemoryMiB(128, l); err != nil {
		t.Error(err)
	}
	for _, n := range []int{0, -1, 127, 8193} {
		if err := MemoryMiB(n, l); err == nil {
			t.Errorf("MemoryMiB(%d) accepted", n)
		}
	}
	if err := DiskBytes(1<<30, l); err != nil {
		t.Error(err)
	}
	for _, n := range []int64{0, -1, 1<<30 - 1, 101 << 30} {
		if err := DiskBytes(n, l); err == nil {
			t.Errorf("DiskBytes(%d) accepted", n)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	cases := map[int64]string{512: "512B", 1 << 30: "1G", 8 << 30: "8G", 1536 << 20: "1.5G", 512 << 20: "512M"}
	for in, want := range cases {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
