// Package provision parses and checks what `banger vm create` provisions a
// VM with: scripts (--provision FILE), files placed before them (--copy
// SRC:DST), the readiness condition (--ready tcp:PORT | cmd:COMMAND), and
// the same keys from a small TOML file (--config vm.toml). The CLI checks
// with it before it calls the daemon, and the daemon again before anything
// is created. Running the scripts in the guest is the vm service's job.
package provision

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/banger-dev/banger/internal/api"
)

// MaxScriptBytes bounds one provisioning script: the daemon keeps a copy
// of each with the VM.
const MaxScriptBytes = 1 << 20

// MaxScripts and MaxCopies bound one VM's provisioning.
const (
	MaxScripts = 64
	MaxCopies  = 64
)

// Ready is a parsed --ready condition.
type Ready struct {
	Port    int    // tcp:PORT: something in the guest listens on PORT
	Command string // cmd:COMMAND: `sh -c COMMAND` in the guest exits 0
}

// String is the spec Ready was parsed from.
func (r Ready) String() string {
	if r.Command != "" {
		return "cmd:" + r.Command
	}
	return "tcp:" + strconv.Itoa(r.Port)
}

// ParseReady parses "tcp:PORT" or "cmd:COMMAND".
func ParseReady(spec string) (Ready, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	switch {
	case ok && kind == "tcp":
		port, err := strconv.Atoi(arg)
		if err != nil || port < 1 || port > 65535 {
			return Ready{}, fmt.Errorf("--ready %q: the port must be a number 1-65535, e.g. tcp:8080", spec)
		}
		return Ready{Port: port}, nil
	case ok && kind == "cmd":
		if strings.TrimSpace(arg) == "" {
			return Ready{}, fmt.Errorf("--ready %q: no command after cmd:, e.g. 'cmd:curl -fs localhost:8080/health'", spec)
		}
		if strings.IndexByte(arg, 0) >= 0 {
			return Ready{}, fmt.Errorf("--ready: the command cannot contain NUL bytes")
		}
		return Ready{Command: arg}, nil
	}
	return Ready{}, fmt.Errorf("--ready %q: want tcp:PORT (something in the guest listens on PORT) or cmd:COMMAND (the command exits 0)", spec)
}

// ParseCopy parses SRC:DST. It splits at the last ':' (so DST cannot hold
// one); SRC is made absolute against base (the current directory, or the
// directory of the TOML file it came from).
func ParseCopy(spec, base string) (api.ProvisionCopy, error) {
	i := strings.LastIndexByte(spec, ':')
	if i <= 0 || i == len(spec)-1 {
		return api.ProvisionCopy{}, fmt.Errorf("--copy %q: want SRC:DST, a host path and a guest path, e.g. ./app.conf:/etc/app.conf", spec)
	}
	src, dst := spec[:i], spec[i+1:]
	if strings.IndexByte(spec, 0) >= 0 {
		return api.ProvisionCopy{}, fmt.Errorf("--copy: paths cannot contain NUL bytes")
	}
	return api.ProvisionCopy{Src: absolute(src, base), Dst: dst}, nil
}

func absolute(p, base string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// Spec is a VM's provisioning as the user gave it, host paths absolute.
type Spec struct {
	Scripts []string
	Copies  []api.ProvisionCopy
	Ready   string
}

// file is the TOML form. Unknown keys are errors.
type file struct {
	Provision []string `toml:"provision"`
	Copy      []string `toml:"copy"`
	Ready     string   `toml:"ready"`
}

// LoadFile reads a --config TOML file:
//
//	provision = ["setup.sh", "start.sh"]
//	copy = ["app.conf:/etc/app.conf"]
//	ready = "tcp:8080"
//
// Relative host paths are relative to the file's directory.
func LoadFile(path string) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Spec{}, fmt.Errorf("--config: %w", err)
	}
	var f file
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			var keys []string
			for _, e := range strict.Errors {
				keys = append(keys, strings.Join(e.Key(), "."))
			}
			return Spec{}, fmt.Errorf("--config %s: unknown key %s (valid keys: provision, copy, ready)", path, strings.Join(keys, ", "))
		}
		return Spec{}, fmt.Errorf("--config %s: %v", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Spec{}, err
	}
	base := filepath.Dir(abs)
	s := Spec{Ready: f.Ready}
	for _, p := range f.Provision {
		if p == "" {
			return Spec{}, fmt.Errorf("--config %s: an empty provision entry", path)
		}
		s.Scripts = append(s.Scripts, absolute(p, base))
	}
	for _, c := range f.Copy {
		cp, err := ParseCopy(c, base)
		if err != nil {
			return Spec{}, fmt.Errorf("--config %s: %w", path, err)
		}
		s.Copies = append(s.Copies, cp)
	}
	return s, nil
}

// Merge adds flags to what a file says: the file's scripts and copies come
// first, then the flags'; a --ready flag replaces the file's.
func Merge(fromFile, flags Spec) Spec {
	out := Spec{
		Scripts: append(append([]string(nil), fromFile.Scripts...), flags.Scripts...),
		Copies:  append(append([]api.ProvisionCopy(nil), fromFile.Copies...), flags.Copies...),
		Ready:   fromFile.Ready,
	}
	if flags.Ready != "" {
		out.Ready = flags.Ready
	}
	return out
}

// Check validates a spec against the host: every script a readable regular
// file of at most MaxScriptBytes, every copy source present, the guest
// paths sane, the ready condition well formed. Host paths must be absolute.
func Check(s Spec) error {
	if len(s.Scripts) > MaxScripts {
		return fmt.Errorf("%d provisioning scripts: at most %d (combine them)", len(s.Scripts), MaxScripts)
	}
	if len(s.Copies) > MaxCopies {
		return fmt.Errorf("%d --copy entries: at most %d (copy a directory instead)", len(s.Copies), MaxCopies)
	}
	for _, p := range s.Scripts {
		if _, err := ReadScript(p); err != nil {
			return err
		}
	}
	for _, c := range s.Copies {
		if !filepath.IsAbs(c.Src) {
			return fmt.Errorf("--copy source %q: the daemon needs an absolute path", c.Src)
		}
		if _, err := os.Lstat(c.Src); err != nil {
			return fmt.Errorf("--copy source %s: %w", c.Src, unwrapPath(err))
		}
		if c.Dst == "" || strings.IndexByte(c.Dst, 0) >= 0 || strings.ContainsRune(c.Dst, ':') {
			return fmt.Errorf("--copy destination %q: want a guest path without ':' (relative paths are under /root)", c.Dst)
		}
	}
	if s.Ready != "" {
		if _, err := ParseReady(s.Ready); err != nil {
			return err
		}
	}
	return nil
}

// ReadScript reads one provisioning script, checked.
func ReadScript(path string) ([]byte, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("--provision %q: the daemon needs an absolute path", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--provision %s: %w", path, unwrapPath(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("--provision %s: not a regular file (pass a shell script)", path)
	}
	if fi.Size() > MaxScriptBytes {
		return nil, fmt.Errorf("--provision %s: %d bytes, at most %d (copy big files with --copy and run them from a small script)",
			path, fi.Size(), MaxScriptBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--provision %s: %w", path, unwrapPath(err))
	}
	if len(data) > MaxScriptBytes {
		return nil, fmt.Errorf("--provision %s: grew past %d bytes while read", path, MaxScriptBytes)
	}
	return data, nil
}

// unwrapPath drops the *PathError's own copy of the path the message
// already names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
