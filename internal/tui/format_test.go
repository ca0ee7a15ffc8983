package tui

import (
	"testing"
	"time"
)

func TestWrap(t *testing.T) {
	got := wrap("invalid VM name \"Bad_Name\": use 1-63 characters, lower-case letters", 20, 3)
	want := []string{`invalid VM name`, `"Bad_Name": use 1-63`, `characters, lower-…`}
	if len(got) != 3 {
		t.Fatalf("wrap = %q", got)
	}
	for i := range want[:2] {
		if got[i] != want[i] {
			t.Errorf("line %d = %q, want %q", i, got[i], want[i])
		}
	}
	for _, l := range got {
		if len([]rune(l)) > 20 {
			t.Errorf("line %q wider than 20", l)
		}
	}
}

func TestFormatting(t *testing.T) {
	for d, want := range map[time.Duration]string{
		45 * time.Second: "45s", 3 * time.Minute: "3m", 2*time.Hour + 5*time.Minute: "2h05m",
		4*24*time.Hour + 3*time.Hour: "4d03h", -time.Second: "0s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	for b, want := range map[int64]string{0: "0", 512: "512B", 700 << 20: "700M", 1536 << 20: "1.5G", 12 << 30: "12G"} {
		if got := humanBytes(b); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", b, got, want)
		}
	}
	for d, want := range map[time.Duration]string{8 * time.Millisecond: "8ms", 120 * time.Millisecond: "120ms", 1234 * time.Millisecond: "1.2s"} {
		if got := formatStageTime(d); got != want {
			t.Errorf("formatStageTime(%v) = %q, want %q", d, got, want)
		}
	}
}
