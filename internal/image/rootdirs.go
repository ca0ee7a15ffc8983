package image

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/banger-dev/banger/internal/rootsafe"
)

// rootBuildPolicy: a root build may sit below a sticky directory such as
// /var/tmp (no one else can rename root's entries there), never below a
// directory another user can write.
var rootBuildPolicy = rootsafe.Policy{AllowStickyDirs: true}

// checkRootBuildDirs refuses, when the build runs as root, any working,
// cache or output directory that a user other than root could change: root
// must not reuse a cached tree a user planted, nor write through a symlink a
// user placed (a planted etc/ssh -> /etc/ssh would have root write into the
// host's /etc/ssh). Missing directories are created, root-owned, after their
// nearest existing parent passed the same check.
func checkRootBuildDirs(dirs ...string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, d := range dirs {
		if err := ensureRootDir(d); err != nil {
			return invalid(fmt.Sprintf("a root image build refuses %s: %v", d, err),
				"build in directories only root can write (as root, banger's dirs are under /root; BANGER_TEST_CACHE must be root-owned), or build as a normal user")
		}
	}
	return nil
}

func ensureRootDir(dir string) error {
	dir = filepath.Clean(dir)
	parent := dir
	for {
		if _, err := os.Lstat(parent); err == nil {
			break
		}
		next := filepath.Dir(parent)
		if next == parent {
			break
		}
		parent = next
	}
	check := rootsafe.Check
	if parent != dir {
		check = rootsafe.CheckParent
	}
	if err := check(parent, rootBuildPolicy); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return rootsafe.Check(dir, rootBuildPolicy)
}
