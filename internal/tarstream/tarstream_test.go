package tarstream

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestPackUnpackKeepsModesTimesAndLinks(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	write(t, filepath.Join(src, "f"), "data", 0o604)
	write(t, filepath.Join(src, "d", "x"), "x", 0o700)
	if err := os.Symlink("../f", filepath.Join(src, "d", "up")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "d"), 0o750); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2019, 5, 6, 7, 8, 9, 123456789, time.UTC)
	for _, p := range []string{"f", "d"} {
		if err := os.Chtimes(filepath.Join(src, p), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := Pack(&buf, src, "", true); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	res, err := Unpack(&buf, dst, "renamed")
	if err != nil || res.Files != 5 || res.Bytes != 5 {
		t.Fatalf("Unpack: %+v, %v; want 5 entries and 5 bytes", res, err)
	}
	check := func(p string, mode os.FileMode) {
		fi, err := os.Lstat(filepath.Join(dst, "renamed", p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", p, fi, err, mode)
		}
	}
	check("f", 0o604)
	check("d/x", 0o700)
	check("d", os.ModeDir|0o750)
	for _, p := range []string{"f", "d"} {
		if fi, _ := os.Stat(filepath.Join(dst, "renamed", p)); !fi.ModTime().Equal(mt) {
			t.Errorf("%s mtime %v, want %v", p, fi.ModTime(), mt)
		}
	}
	if l, err := os.Readlink(filepath.Join(dst, "renamed", "d", "up")); err != nil || l != "../f" {
		t.Errorf("symlink: %q, %v", l, err)
	}
}

func TestPackDirectoryNeedsRecursive(t *testing.T) {
	if err := Pack(io.Discard, t.TempDir(), "", false); !errors.Is(err, ErrIsDir) {
		t.Errorf("Pack of a directory without recursive: %v, want ErrIsDir", err)
	}
}

func tarOf(t *testing.T, entries ...*tar.Header) *bytes.Buffer {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("z"), int(h.Size)))
		}
	}
	tw.Close()
	return &buf
}

// Unpacking stays inside the destination whatever the archive says.
func TestUnpackRefusesEscapes(t *testing.T) {
	for _, h := range []*tar.Header{
		{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "/etc/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "a/../../evil", Typeflag: tar.TypeReg, Mode: 0o644},
	} {
		dst := t.TempDir()
		if _, err := Unpack(tarOf(t, h), filepath.Join(dst), ""); err == nil {
			t.Errorf("entry %q accepted", h.Name)
		}
	}
	// Writing through a symlink the archive planted is refused too.
	dst := t.TempDir()
	outside := t.TempDir()
	buf := tarOf(t,
		&tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside},
		&tar.Header{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	if _, err := Unpack(buf, dst, ""); err == nil {
		t.Error("write through a planted symlink accepted")
	}
	if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
		t.Error("a file was written outside the destination")
	}
}

// A stream cut inside a file leaves no trace of that file.
func TestUnpackCutStreamLeavesNoPartialFile(t *testing.T) {
	buf := tarOf(t, &tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 100000})
	cut := bytes.NewReader(buf.Bytes()[:50000])
	dst := t.TempDir()
	if _, err := Unpack(cut, dst, ""); err == nil {
		t.Fatal("a cut archive unpacked without error")
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != 0 {
		t.Errorf("after a failed copy the destination holds %v, want nothing", entries)
	}
}

func TestUnpackReplacesExistingFile(t *testing.T) {
	dst := t.TempDir()
	write(t, filepath.Join(dst, "f"), "old", 0o600)
	if _, err := Unpack(tarOf(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}), dst, ""); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "f")); string(b) != "zzz" {
		t.Errorf("f = %q, want the new content", b)
	}
}

func TestUnpackRefusesDevices(t *testing.T) {
	_, err := Unpack(tarOf(t, &tar.Header{Name: "dev", Typeflag: tar.TypeChar}), t.TempDir(), "")
	if err == nil || !strings.Contains(err.Error(), "device") {
		t.Errorf("device entry: %v, want a refusal naming it", err)
	}
}
