package privhelper

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/banger-dev/banger/internal/rootsafe"
	"github.com/banger-dev/banger/internal/sysexec"
)

// The image-build verb: the fallback for a normal user whose host allows no
// unprivileged user namespace. Its contract, narrow on purpose:
//
//   - it builds one Debian image with banger's own build code and its own
//     embedded scripts (never a script, a script path or an environment
//     variable from the caller: the caller gives five pinned arguments);
//   - everything root writes lands in one root-owned directory under the
//     caller's banger cache (~/.cache/banger/helper-build), which the helper
//     opens without following any symlink, checks, and then reaches only
//     through a bind mount of that opened directory in a private mount
//     namespace (so renaming or swapping the caller's directories above it
//     mid-build redirects nothing);
//   - the inputs (the SSH public key, the guest agent, the kernel modules)
//     arrive as a tar stream on stdin, which the helper unpacks as plain
//     files and directories into a fresh directory of that area (no
//     symlinks, no devices, no names leaving it, bounded in size): root
//     never opens a caller's path to read it;
//   - the one output is the image, copied into OUTPUT: an existing regular
//     file under the caller's banger cache, owned by the caller, with one
//     link, reached from / without a symlink through directories owned by
//     root or the caller.
const (
	verbImageBuild = "image-build"
	// verbImageBuildNS is image-build's second half, re-executed inside a
	// private mount namespace. It is not a sudo verb: it refuses to run when
	// sudo started it (SUDO_UID set).
	verbImageBuildNS = "image-build-ns"

	// HelperBuildDir is the root-owned area under the caller's cache dir.
	HelperBuildDir = "helper-build"

	shapeSuite   = `[a-z][a-z0-9-]{1,30}`
	shapeMirror  = `https?://[A-Za-z0-9.:/_~-]{1,200}`
	shapeSizeMiB = `[0-9]{3,7}`
	shapeExtra   = `(-|[a-z0-9][a-z0-9+.,-]{0,254})`
	shapeOutput  = `/[A-Za-z0-9._/-]{1,255}`

	// MaxInputBytes bounds the input stream (key, agent, modules tree).
	MaxInputBytes = 2 << 30
	maxInputFiles = 100000
)

var (
	suiteRE   = regexp.MustCompile(`^` + shapeSuite + `$`)
	mirrorRE  = regexp.MustCompile(`^` + shapeMirror + `$`)
	sizeRE    = regexp.MustCompile(`^` + shapeSizeMiB + `$`)
	extraRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*(,[a-z0-9][a-z0-9+.-]*)*$`)
	outputRE  = regexp.MustCompile(`^` + shapeOutput + `$`)
	kernelRE  = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)
	inNameRE  = regexp.MustCompile(`^[A-Za-z0-9._+@-]{1,255}$`)
	errNoHook = errors.New("this banger-helper was built without image builds (cmd/banger-helper wires them in)")
)

// ImageJob is one image build the helper runs as root, every path in the
// pinned root-owned area (Area), for the hook that does the build.
type ImageJob struct {
	Area          string // the bind mount of the caller's helper-build dir; root-safe from /
	Suite, Mirror string
	SizeBytes     int64
	Extra         []string
	PublicKey     string // Area/inputs-*/pubkey
	Agent         string
	ModulesDir    string // "" when the stream had none
	KernelVersion string
	Output        string // Area/out-*.ext4: the hook writes the image here
}

// ImageBuildFunc runs a job; progress lines go to out.
type ImageBuildFunc func(ctx context.Context, job ImageJob, out io.Writer) error

// Hooks are the verbs' parts that live above this package.
type Hooks struct {
	ImageBuild ImageBuildFunc
}

// ImageBuildArgs are the verb's arguments as the caller gives them.
func ImageBuildArgs(suite, mirror string, sizeBytes int64, extra []string, output string) []string {
	e := "-"
	if len(extra) > 0 {
		e = strings.Join(extra, ",")
	}
	return []string{verbImageBuild, suite, mirror, strconv.FormatInt(sizeBytes>>20, 10), e, output}
}

// CheckImageBuildArgs checks args (from ImageBuildArgs) as the helper
// will, so the caller can refuse them with a clear error before sudo does.
func CheckImageBuildArgs(args []string) error {
	if len(args) != 6 || args[0] != verbImageBuild {
		return fmt.Errorf("image-build takes 5 arguments, got %d", len(args)-1)
	}
	_, err := parseImageArgs(args[1:])
	return err
}

// imageArgs are the parsed, checked arguments.
type imageArgs struct {
	suite, mirror string
	sizeBytes     int64
	extra         []string
	output        string
}

func parseImageArgs(a []string) (imageArgs, error) {
	var r imageArgs
	if !suiteRE.MatchString(a[0]) {
		return r, fmt.Errorf("suite %q refused: give a Debian suite name such as bookworm", a[0])
	}
	if !mirrorRE.MatchString(a[1]) || strings.Contains(a[1], "..") {
		return r, fmt.Errorf("mirror %q refused: give an http(s):// Debian mirror URL such as http://deb.debian.org/debian", a[1])
	}
	mib, err := strconv.ParseInt(a[2], 10, 64)
	if err != nil || !sizeRE.MatchString(a[2]) || mib < 512 || mib > 1<<20 {
		return r, fmt.Errorf("size %q refused: give the image size in MiB, 512 to 1048576", a[2])
	}
	if a[3] != "-" {
		if len(a[3]) > 255 || !extraRE.MatchString(a[3]) {
			return r, fmt.Errorf("extra packages %q refused: give Debian package names separated by commas, or - for none", a[3])
		}
		r.extra = strings.Split(a[3], ",")
	}
	if !outputRE.MatchString(a[4]) || filepath.Clean(a[4]) != a[4] {
		return r, fmt.Errorf("output %q refused: give an absolute, clean path under your banger cache (~/.cache/banger)", a[4])
	}
	r.suite, r.mirror, r.sizeBytes, r.output = a[0], a[1], mib<<20, a[4]
	return r, nil
}

// CacheDirOf is the banger cache of uid as the helper sees it: from the
// password database, never from the caller's environment (XDG_CACHE_HOME
// and BANGER_CACHE_DIR are not honoured for helper builds).
func CacheDirOf(uid int) (string, error) {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return "", fmt.Errorf("uid %d has no entry in the password database", uid)
	}
	if !filepath.IsAbs(u.HomeDir) || u.HomeDir == "/" || filepath.Clean(u.HomeDir) != u.HomeDir {
		return "", fmt.Errorf("uid %d's home %q is not an absolute, clean directory other than /", uid, u.HomeDir)
	}
	return filepath.Join(u.HomeDir, ".cache", "banger"), nil
}

// openDirNoSymlinks opens path (absolute) as an O_PATH directory without
// following any symlink, checking that every directory on the way, from /,
// is owned by root or by uid and writable by no one else (a root-owned
// sticky directory such as /tmp is accepted above it: no one else can rename
// the caller's entries there).
func openDirNoSymlinks(path string, uid int) (int, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return -1, fmt.Errorf("%q is not an absolute, clean path", path)
	}
	fd, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	cur := "/"
	for _, part := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if part == "" {
			continue
		}
		if err := checkDirFd(fd, cur, uid); err != nil {
			unix.Close(fd)
			return -1, err
		}
		next, err := unix.Openat2(fd, part, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
		})
		unix.Close(fd)
		cur = filepath.Join(cur, part)
		if err != nil {
			if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
				return -1, fmt.Errorf("%s refused: it is a symlink or not a directory (the helper follows no symlinks)", cur)
			}
			return -1, fmt.Errorf("%s: %w", cur, err)
		}
		fd = next
	}
	if err := checkDirFd(fd, cur, uid); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func checkDirFd(fd int, path string, uid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s refused: not a directory", path)
	}
	if st.Uid != 0 && int(st.Uid) != uid {
		return fmt.Errorf("%s refused: owned by uid %d, neither root nor uid %d (someone else could swap what lies below it)", path, st.Uid, uid)
	}
	if st.Mode&0o022 != 0 && !(st.Uid == 0 && st.Mode&unix.S_ISVTX != 0) {
		return fmt.Errorf("%s refused: writable by group or others (mode %04o)", path, st.Mode&0o7777)
	}
	return nil
}

// underDir reports whether path lies strictly below dir (lexically; the
// walk that opens it follows no symlink, so lexical is what is reached).
func underDir(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

// openOutput opens the caller's output file for writing: under cacheDir,
// reached without symlinks through directories of root or uid, a regular
// file owned by uid with one link.
func openOutput(path, cacheDir string, uid int) (*os.File, error) {
	if !underDir(path, cacheDir) {
		return nil, fmt.Errorf("output %s refused: it is not under your banger cache %s", path, cacheDir)
	}
	dfd, err := openDirNoSymlinks(filepath.Dir(path), uid)
	if err != nil {
		return nil, fmt.Errorf("output %s refused: %w", path, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Openat2(dfd, filepath.Base(path), &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
	})
	if err != nil {
		return nil, fmt.Errorf("output %s refused: %w (it must be an existing regular file of yours, not a symlink)", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("output %s refused: not a regular file", path)
	case int(st.Uid) != uid:
		err = fmt.Errorf("output %s refused: owned by uid %d, not by you (uid %d)", path, st.Uid, uid)
	case st.Nlink != 1:
		err = fmt.Errorf("output %s refused: it has %d links (a hard link to another file is not an output)", path, st.Nlink)
	}
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openArea makes (when missing) and opens the root-owned helper-build dir
// under the caller's cache dir, which the caller must already have made.
func openArea(cacheDir string, uid int) (int, error) {
	cfd, err := openDirNoSymlinks(cacheDir, uid)
	if err != nil {
		return -1, fmt.Errorf("banger cache %s refused: %w (create it as yourself: mkdir -p %s)", cacheDir, err, cacheDir)
	}
	defer unix.Close(cfd)
	var st unix.Stat_t
	if err := unix.Fstat(cfd, &st); err != nil {
		return -1, err
	}
	if int(st.Uid) != uid {
		return -1, fmt.Errorf("banger cache %s refused: owned by uid %d, not by uid %d", cacheDir, st.Uid, uid)
	}
	// mkdirat through an O_PATH fd is not allowed: reopen the cache dir
	// itself (no symlink: it is the directory just checked, by fd).
	dfd, err := unix.Openat(cfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	if err := unix.Mkdirat(dfd, HelperBuildDir, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create %s/%s: %w", cacheDir, HelperBuildDir, err)
	}
	afd, err := unix.Openat2(dfd, HelperBuildDir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
	})
	if err != nil {
		return -1, fmt.Errorf("%s/%s refused: %w (remove it: it must be the helper's own directory)", cacheDir, HelperBuildDir, err)
	}
	if err := unix.Fstat(afd, &st); err != nil {
		unix.Close(afd)
		return -1, err
	}
	if st.Uid != 0 || st.Mode&0o022 != 0 {
		unix.Close(afd)
		return -1, fmt.Errorf("%s/%s refused: it must be root's and writable by root alone (uid %d, mode %04o): remove it, the helper makes it", cacheDir, HelperBuildDir, st.Uid, st.Mode&0o7777)
	}
	return afd, nil
}

// imageBuild is the sudo half: it checks the arguments and re-executes the
// helper in a private mount namespace for the build.
func imageBuild(ctx context.Context, e *env, a []string) error {
	if _, err := parseImageArgs(a); err != nil {
		return err
	}
	if e.caller == 0 {
		return errors.New("image-build refused for root: root builds images directly (banger image build as root)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return err
	}
	if err := rootsafe.Check(self, rootsafe.Strict); err != nil {
		return fmt.Errorf("image-build refused: the helper binary itself is not root-safe: %w", err)
	}
	unshare, err := e.look("unshare")
	if err != nil {
		return err
	}
	argv := append([]string{unshare, "--mount", "--propagation", "private", "--", self, verbImageBuildNS, strconv.Itoa(e.caller)}, a...)
	_, err = e.run.Run(ctx, sysexec.Cmd{Argv: argv, Env: []string{}, Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr})
	if err != nil {
		return fmt.Errorf("image build failed (its output above says why): %w", err)
	}
	return nil
}

// imageBuildNS runs inside the private mount namespace: it pins the area
// with a bind mount of its opened directory, unpacks the inputs, runs the
// build hook, and copies the image into the caller's output file.
func imageBuildNS(ctx context.Context, e *env, a []string) error {
	uid, err := parseUID(a[0])
	if err != nil || uid == 0 {
		return fmt.Errorf("caller uid %q refused", a[0])
	}
	args, err := parseImageArgs(a[1:])
	if err != nil {
		return err
	}
	if e.imageBuild == nil {
		return errNoHook
	}
	cacheDir, err := CacheDirOf(uid)
	if err != nil {
		return err
	}
	out, err := openOutput(args.output, cacheDir, uid)
	if err != nil {
		return err
	}
	defer out.Close()
	afd, err := openArea(cacheDir, uid)
	if err != nil {
		return err
	}
	defer unix.Close(afd)
	if err := os.MkdirAll(e.stateDir, 0o700); err != nil {
		return err
	}
	if e.checkDir != nil {
		if err := e.checkDir(e.stateDir); err != nil {
			return fmt.Errorf("helper state dir refused: %w", err)
		}
	}
	area, err := os.MkdirTemp(e.stateDir, fmt.Sprintf("image-build-%d-", uid))
	if err != nil {
		return err
	}
	defer os.Remove(area)
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", afd), area, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the build area %s/%s at %s: %w", cacheDir, HelperBuildDir, area, err)
	}
	defer unix.Unmount(area, unix.MNT_DETACH)
	// Nothing the caller owns is below area now: its root is the root-owned
	// helper-build directory, opened without following a symlink.
	inputs, err := os.MkdirTemp(area, "inputs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(inputs)
	job := ImageJob{Area: area, Suite: args.suite, Mirror: args.mirror, SizeBytes: args.sizeBytes, Extra: args.extra,
		Output: filepath.Join(area, "out-"+filepath.Base(inputs)+".ext4")}
	if err := unpackInputs(e.stdin, inputs, &job); err != nil {
		return fmt.Errorf("the input stream (key, agent, modules) refused: %w", err)
	}
	defer os.Remove(job.Output)
	if err := e.imageBuild(ctx, job, e.stdout); err != nil {
		return err
	}
	return copySparse(job.Output, out)
}

// unpackInputs writes the input stream into dir: pubkey and agent (regular
// files) and optionally modules/<version>/... (directories and regular
// files); anything else refuses the whole stream.
func unpackInputs(r io.Reader, dir string, job *ImageJob) error {
	if r == nil {
		return errors.New("no input stream on stdin")
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(io.LimitReader(r, MaxInputBytes+1))
	var total int64
	files := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if files++; files > maxInputFiles {
			return fmt.Errorf("more than %d entries", maxInputFiles)
		}
		name := strings.TrimSuffix(h.Name, "/")
		parts := strings.Split(name, "/")
		for _, p := range parts {
			if !inNameRE.MatchString(p) || p == "." || p == ".." {
				return fmt.Errorf("entry %q: names are letters, digits and ._+@- only", h.Name)
			}
		}
		top := parts[0]
		switch {
		case (name == "pubkey" || name == "agent") && h.Typeflag == tar.TypeReg:
		case top == "modules" && len(parts) >= 2 && (h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeDir):
			if !kernelRE.MatchString(parts[1]) {
				return fmt.Errorf("entry %q: %q is not a kernel version", h.Name, parts[1])
			}
			if job.KernelVersion != "" && job.KernelVersion != parts[1] {
				return fmt.Errorf("modules for two kernels (%s, %s)", job.KernelVersion, parts[1])
			}
			job.KernelVersion = parts[1]
		case name == "modules" && h.Typeflag == tar.TypeDir:
		default:
			return fmt.Errorf("entry %q (type %q) is not pubkey, agent or a file or directory under modules/<version>/", h.Name, h.Typeflag)
		}
		if h.Typeflag == tar.TypeDir {
			if err := root.MkdirAll(name, 0o755); err != nil {
				return err
			}
			continue
		}
		if total += h.Size; total > MaxInputBytes {
			return fmt.Errorf("more than %d bytes", MaxInputBytes)
		}
		if len(parts) > 1 {
			if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
				return err
			}
		}
		mode := os.FileMode(0o644)
		if h.FileInfo().Mode()&0o111 != 0 {
			mode = 0o755
		}
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	job.PublicKey, job.Agent = filepath.Join(dir, "pubkey"), filepath.Join(dir, "agent")
	for _, p := range []string{job.PublicKey, job.Agent} {
		if _, err := os.Lstat(p); err != nil {
			return fmt.Errorf("the stream lacks %s", filepath.Base(p))
		}
	}
	if job.KernelVersion != "" {
		job.ModulesDir = filepath.Join(dir, "modules", job.KernelVersion)
	}
	return nil
}

// copySparse copies the image at src into dst (truncated to src's size),
// writing only src's data extents so the copy stays sparse.
func copySparse(src string, dst *os.File) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if err := dst.Truncate(0); err != nil {
		return fmt.Errorf("hand the image back: %w", err)
	}
	if err := dst.Truncate(size); err != nil {
		return fmt.Errorf("hand the image back: %w", err)
	}
	var off int64
	for off < size {
		data, err := unix.Seek(int(in.Fd()), off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // only a hole is left
			}
			return err
		}
		hole, err := unix.Seek(int(in.Fd()), data, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(dst, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return fmt.Errorf("hand the image back: %w", err)
		}
		off = hole
	}
	return dst.Sync()
}

// imageBuildNSMain runs image-build-ns: only as root and never through sudo
// (image-build starts it through unshare with a cleared environment).
func imageBuildNSMain(args []string, stdin io.Reader, stdout, stderr io.Writer, hooks Hooks) int {
	if _, viaSudo := os.LookupEnv("SUDO_UID"); viaSudo || os.Geteuid() != 0 {
		fmt.Fprintf(stderr, "banger-helper: %s is image-build's inner half, not a verb: use image-build\n", verbImageBuildNS)
		return exitUsage
	}
	if len(args) != 7 {
		fmt.Fprintf(stderr, "banger-helper: %s: %d arguments, want 6\n", verbImageBuildNS, len(args)-1)
		return exitUsage
	}
	e, err := rootEnv()
	if err != nil {
		fmt.Fprintf(stderr, "banger-helper: %v\n", err)
		return exitFailed
	}
	e.stdin, e.stdout, e.stderr, e.imageBuild = stdin, stdout, stderr, hooks.ImageBuild
	return report(imageBuildNS(context.Background(), e, args[1:]), args[:1], stdout, stderr)
}

// RunImageBuild runs `sudo -n helperPath image-build ARGS` (args from
// ImageBuildArgs) as the calling user, with the inputs stream on stdin and
// the helper's progress lines to progress (its stderr to errs).
func RunImageBuild(ctx context.Context, run sysexec.Runner, helperPath string, args []string, inputs io.Reader, progress, errs io.Writer) error {
	if _, err := sysexec.LookPath("sudo"); err != nil {
		return fmt.Errorf("sudo is not installed: install sudo, then the helper (%s)", InstallHint)
	}
	argv := append([]string{"sudo", "-n", helperPath}, args...)
	_, err := run.Run(ctx, sysexec.Cmd{Argv: argv, Stdin: inputs, Stdout: progress, Stderr: errs})
	return err
}
