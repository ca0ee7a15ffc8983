// Package version identifies a banger build. The Makefile sets Version and
// BuildID with -ldflags -X so the CLI and the daemon built together carry the
// same BuildID; the CLI restarts a daemon whose BuildID differs (stale daemon).
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync"
)

// Set by -ldflags "-X github.com/banger-dev/banger/internal/version.Version=... -X ...BuildID=...".
var (
	Version = "dev"
	BuildID = ""
)

var (
	once    sync.Once
	derived string
)

// ID returns BuildID, or when it was not set at link time a value derived
// from the VCS stamp (revision plus "-dirty") or else the sha256 of the
// running executable, so two different builds never share an id by accident.
func ID() string {
	if BuildID != "" {
		return BuildID
	}
	once.Do(func() { derived = derive() })
	return derived
}

func derive() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		// A modified tree has no stable identity from VCS: fall through to the
		// executable hash.
		if rev != "" && modified != "true" {
			return rev
		}
	}
	if exe, err := os.Executable(); err == nil {
		if id, err := FileID(exe); err == nil {
			return id
		}
	}
	return "unknown"
}

// FileID is the id a binary without a link-time BuildID or VCS stamp
// reports for itself: "exe-" and the start of its sha256.
func FileID(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "exe-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ExpectedDaemonID is the BuildID a daemon started from daemonBin should
// report for this CLI to accept it: this build's id when it is a link-time
// or VCS id (shared by binaries built together), else the file id of
// daemonBin itself, since two different executables never share a hash.
func ExpectedDaemonID(daemonBin string) string {
	id := ID()
	if !strings.HasPrefix(id, "exe-") {
		return id
	}
	if fid, err := FileID(daemonBin); err == nil {
		return fid
	}
	return id
}
