package privhelper

import (
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// allowedSocketDirs are the only directories under which socket-reclaim may
// chown, for a given uid: the user's banger runtime directory (XDG or the
// /tmp fallback) and the user's banger state directory. They are derived from
// the uid, never from the caller's environment (the helper runs as root).
func allowedSocketDirs(uid int, tmpRoot string) []string {
	dirs := []string{
		fmt.Sprintf("/run/user/%d/banger", uid),
		filepath.Join(tmpRoot, fmt.Sprintf("banger-%d", uid)),
	}
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && filepath.IsAbs(u.HomeDir) && u.HomeDir != "/" {
		dirs = append(dirs, filepath.Join(u.HomeDir, ".local", "state", "banger"))
	}
	return dirs
}

// checkSocketPath resolves path and checks it is a Unix socket inside one of
// uid's banger directories, where that directory (after resolving symlinks)
// is owned by uid. It returns the resolved path.
func checkSocketPath(path string, uid int, tmpRoot string) (string, error) {
	if path == "" || !filepath.IsAbs(path) || filepath.Clean(path) != path || strings.ContainsRune(path, 0) {
		return "", fmt.Errorf("path %q refused: give an absolute, clean path (no .., no trailing /)", path)
	}
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("path %s: %w", path, err)
	}
	dirs := allowedSocketDirs(uid, tmpRoot)
	for _, d := range dirs {
		rd, err := filepath.EvalSymlinks(d)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(rd, resolved)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(rd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != uid {
			return "", fmt.Errorf("path %s refused: %s is not a directory owned by uid %d", path, rd, uid)
		}
		return resolved, nil
	}
	return "", fmt.Errorf("path %s refused: it resolves to %s, outside banger's directories for uid %d (%s)", path, resolved, uid, strings.Join(dirs, ", "))
}

// chownSocket changes the owner of the socket at resolved (already checked)
// to uid and the user's primary group. The file is opened without following
// any symlink, so a path swapped after the check is refused, not followed.
func chownSocket(resolved string, uid int) error {
	fd, err := unix.Openat2(unix.AT_FDCWD, resolved, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("open %s: %w", resolved, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", resolved, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s refused: not a Unix socket (socket-reclaim only chowns sockets)", resolved)
	}
	// Only a socket a root-run VMM made is reclaimed: root's, with one name.
	// Another user's socket, or a hard link to one placed in the caller's
	// directory, is refused.
	if st.Uid != 0 {
		if int(st.Uid) == uid {
			return nil // already the caller's
		}
		return fmt.Errorf("%s refused: it belongs to uid %d; socket-reclaim only hands root's sockets back", resolved, st.Uid)
	}
	if st.Nlink != 1 {
		return fmt.Errorf("%s refused: it has %d links; socket-reclaim only chowns a socket with one name", resolved, st.Nlink)
	}
	gid := -1
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		if g, err := strconv.Atoi(u.Gid); err == nil {
			gid = g
		}
	}
	if err := unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown %s to uid %d: %w", resolved, uid, err)
	}
	return nil
}
