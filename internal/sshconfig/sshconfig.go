// Package sshconfig writes OpenSSH client configuration for banger's VMs:
// Host blocks (so plain ssh, scp, rsync, git and VS Code Remote-SSH reach
// a VM by name) and the one Include line `banger ssh-config --install` adds
// to ~/.ssh/config and --uninstall removes.
package sshconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/banger-dev/banger/internal/api"
)

// Render returns a Host block per VM: its name and name.domain as aliases,
// banger's key only, host keys in banger's known_hosts under the VM's
// stable alias (as `banger vm ssh` does).
func Render(hosts []api.VMSSHInfo, domain string) string {
	var b strings.Builder
	b.WriteString("# Written by banger; regenerated when VMs change. Do not edit.\n")
	for _, h := range hosts {
		aliases := h.Name
		if domain != "" {
			aliases += " " + h.Name + "." + domain
		}
		fmt.Fprintf(&b, "\nHost %s\n", aliases)
		fmt.Fprintf(&b, "  HostName %s\n", h.Host)
		if h.Port != 0 && h.Port != 22 {
			fmt.Fprintf(&b, "  Port %s\n", strconv.Itoa(h.Port))
		}
		fmt.Fprintf(&b, "  User %s\n", h.User)
		fmt.Fprintf(&b, "  IdentityFile %s\n", quote(h.KeyPath))
		b.WriteString("  IdentitiesOnly yes\n")
		fmt.Fprintf(&b, "  UserKnownHostsFile %s\n", quote(h.KnownHostsPath))
		fmt.Fprintf(&b, "  HostKeyAlias %s\n", h.HostKeyAlias)
		b.WriteString("  StrictHostKeyChecking accept-new\n")
	}
	return b.String()
}

// quote wraps a path holding spaces in double quotes, as ssh_config reads.
func quote(p string) string {
	if strings.ContainsAny(p, " \t") {
		return `"` + p + `"`
	}
	return p
}

// marker is the comment line above banger's Include line.
const marker = "# Added by `banger ssh-config --install`; `banger ssh-config --uninstall` removes it."

// includeLine is the Include of the file banger keeps.
func includeLine(include string) string { return "Include " + quote(include) }

// Install puts banger's Include line at the top of the ssh config file at
// path (an Include below a Host block would be scoped to it), creating the
// file (0600, its directory 0700) when missing. An existing file is backed
// up to path.banger-backup first and keeps its mode. It does nothing when
// the line is there already. It returns whether it changed the file and
// the backup's path.
func Install(path, include string) (changed bool, backup string, err error) {
	data, mode, err := read(path)
	if err != nil {
		return false, "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == includeLine(include) {
			return false, "", nil
		}
	}
	if data != nil {
		backup = path + ".banger-backup"
		if err := os.WriteFile(backup, data, mode.Perm()); err != nil {
			return false, "", fmt.Errorf("back up %s: %w", path, err)
		}
	} else if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, "", err
	}
	out := []byte(marker + "\n" + includeLine(include) + "\n\n")
	out = append(out, data...)
	return true, backup, write(path, out, mode)
}

// Uninstall removes exactly the lines Install added. It returns whether
// the file changed.
func Uninstall(path, include string) (bool, error) {
	data, mode, err := read(path)
	if err != nil || data == nil {
		return false, err
	}
	lines := strings.SplitAfter(string(data), "\n")
	var out []string
	changed := false
	for i := 0; i < len(lines); i++ {
		t := strings.TrimSpace(lines[i])
		if t == marker || t == includeLine(include) {
			changed = true
			// The blank line Install put after the Include goes too.
			if t == includeLine(include) && i+1 < len(lines) && strings.TrimSpace(lines[i+1]) == "" && i == 1 {
				i++
			}
			continue
		}
		out = append(out, lines[i])
	}
	if !changed {
		return false, nil
	}
	return true, write(path, []byte(strings.Join(out, "")), mode)
}

// read returns the file (nil when missing) and its mode (0600 for a new one).
func read(path string) ([]byte, fs.FileMode, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0o600, nil
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if data == nil {
		data = []byte{}
	}
	return data, fi.Mode(), nil
}

// write replaces path atomically, with mode.
func write(path string, data []byte, mode fs.FileMode) error {
	// A symlinked ~/.ssh/config (dotfile managers) is written through.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".banger-ssh-config-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode.Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// WriteFile writes the rendered config where the Include points, 0600.
func WriteFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, []byte(content)) {
		return nil
	}
	return write(path, []byte(content), 0o600)
}
