package version

import (
	"os"
	"strings"
	"testing"
)

func TestIDPrefersLinkTimeValue(t *testing.T) {
	old := BuildID
	defer func() { BuildID = old }()
	BuildID = "abc123"
	if got := ID(); got != "abc123" {
		t.Fatalf("ID() = %q, want the link-time BuildID", got)
	}
}

func TestIDDerivedWhenUnset(t *testing.T) {
	old := BuildID
	defer func() { BuildID = old }()
	BuildID = ""
	id := ID()
	if id == "" || id == "unknown" {
		t.Fatalf("derived ID = %q, want a VCS revision or executable hash", id)
	}
	if ID() != id {
		t.Fatal("derived ID is not stable between calls")
	}
}

func TestExpectedDaemonIDWithoutLinkTimeID(t *testing.T) {
	old := BuildID
	defer func() { BuildID = old }()
	BuildID = ""
	dir := t.TempDir()
	a, b := dir+"/a", dir+"/b"
	os.WriteFile(a, []byte("daemon one"), 0o700)
	os.WriteFile(b, []byte("daemon two"), 0o700)
	ida, _ := FileID(a)
	idb, _ := FileID(b)
	if ida == idb || !strings.HasPrefix(ida, "exe-") {
		t.Fatalf("file ids %q %q", ida, idb)
	}
	if strings.HasPrefix(ID(), "exe-") {
		// A test binary has no VCS stamp here: the daemon is judged by its own file.
		if got := ExpectedDaemonID(a); got != ida {
			t.Fatalf("ExpectedDaemonID = %q, want the daemon file's id %q", got, ida)
		}
	}
	BuildID = "linked"
	if got := ExpectedDaemonID(a); got != "linked" {
		t.Fatalf("with a link-time id: %q", got)
	}
}
