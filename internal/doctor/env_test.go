package doctor

import (
	"context"
	"os"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// The real sudo probe: root may run anything, and sudo -n -l says so
// without running the command.
func TestSudoAllowedAsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: as a normal user the answer depends on this host's sudoers")
	}
	if _, err := sysexec.LookPath("sudo"); err != nil {
		t.Skip("sudo is not installed here")
	}
	marker := t.TempDir() + "/ran"
	if err := sudoAllowed(context.Background(), []string{"/usr/bin/touch", marker}); err != nil {
		t.Fatalf("sudo -n -l as root: %v", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("sudo -l ran the command instead of only checking it")
	}
}

func TestRunVersionReadsStderr(t *testing.T) {
	if _, err := sysexec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("mkfs.ext4 not installed (apt-get install e2fsprogs)")
	}
	out, err := runVersion(context.Background(), []string{"mkfs.ext4", "-V"})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := parseVersion(firstLine(out)); !ok || v[0] != 1 {
		t.Fatalf("mkfs.ext4 -V gave %q", out)
	}
}
