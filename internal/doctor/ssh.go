package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/banger-dev/banger/internal/api"
)

func checkSSHClient(ctx context.Context, e *Env) api.CheckResult {
	p, err := e.lookPath("ssh")
	if err != nil {
		return fail("ssh not found in PATH: banger vm ssh runs the system OpenSSH client", "sudo apt-get install openssh-client")
	}
	if out, err := e.runVersion(ctx, p, "-V"); err == nil && firstLine(out) != "" {
		return ok(firstLine(out) + " at " + p)
	}
	return ok("ssh at " + p)
}

func checkSSHKey(ctx context.Context, e *Env) api.CheckResult {
	if e.SSHKeyPath == "" {
		return notChecked("the SSH key path was not provided")
	}
	fi, err := os.Stat(e.SSHKeyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fail("SSH key "+e.SSHKeyPath+" does not exist (it comes with the runtime bundle)", "banger bundle build")
	}
	if err != nil {
		return fail("SSH key "+e.SSHKeyPath+": "+err.Error(), "chmod 600 "+e.SSHKeyPath)
	}
	if !fi.Mode().IsRegular() {
		return fail("SSH key "+e.SSHKeyPath+" is not a regular file", "banger bundle build")
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fail(fmt.Sprintf("SSH key %s has mode %04o: ssh refuses private keys that others can read", e.SSHKeyPath, perm),
			"chmod 600 "+e.SSHKeyPath)
	}
	return ok(fmt.Sprintf("SSH key %s (mode %04o)", e.SSHKeyPath, fi.Mode().Perm()))
}

// writableDir proves dir accepts new files by creating and removing one
// (permission bits alone lie for root and on read-only mounts).
func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".banger-doctor-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func checkKnownHosts(ctx context.Context, e *Env) api.CheckResult {
	p := e.KnownHostsPath
	if p == "" {
		return notChecked("the known_hosts path was not provided")
	}
	dir := filepath.Dir(p)
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.IsDir():
		return fail(p+" is a directory, not a known_hosts file", "rmdir "+p)
	case err == nil:
		f, werr := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if werr != nil {
			return fail("known_hosts "+p+" is not writable: "+werr.Error(), "chmod u+w "+p)
		}
		f.Close()
		return ok("known_hosts " + p + " writable")
	case !errors.Is(err, fs.ErrNotExist):
		return fail("known_hosts "+p+": "+err.Error(), "mkdir -p -m 0700 "+dir)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fail("the directory "+dir+" for known_hosts does not exist", "mkdir -p -m 0700 "+dir)
	}
	if err := writableDir(dir); err != nil {
		return fail("cannot create known_hosts in "+dir+": "+err.Error(), "chmod u+w "+dir)
	}
	return ok("known_hosts " + p + " will be created on first ssh (" + dir + " writable)")
}
