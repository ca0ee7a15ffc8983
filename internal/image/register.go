package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
)

// RegisterRequest names an image built elsewhere.
type RegisterRequest struct {
	Name       string
	RootfsPath string
	KernelPath string // optional: empty = the bundle's kernel
	InitrdPath string // optional: empty = the bundle's initrd
	Distro     string // default "custom"
}

// Register checks that an image built elsewhere can run as a banger VM (an
// ext4 image with the guest agent and sshd) and returns it for the caller
// to persist. The image is referenced where it is, not copied.
func (b *Builder) Register(ctx context.Context, req RegisterRequest) (api.Image, error) {
	if err := validateName(req.Name); err != nil {
		return api.Image{}, err
	}
	if req.Distro == "" {
		req.Distro = "custom"
	}
	if req.RootfsPath == "" {
		return api.Image{}, invalid("no rootfs path given", "pass the image file, e.g. --rootfs /path/to/rootfs.ext4")
	}
	// The daemon's working directory is not the user's: a relative path
	// would name some other file. The CLI sends absolute paths.
	if !filepath.IsAbs(req.RootfsPath) {
		return api.Image{}, invalid(fmt.Sprintf("rootfs path %q is not absolute", req.RootfsPath), "pass an absolute path")
	}
	abs := req.RootfsPath
	st, err := os.Stat(abs)
	if err != nil || !st.Mode().IsRegular() {
		return api.Image{}, invalid(fmt.Sprintf("rootfs %s is not a readable file", abs), "check the path; a raw ext4 image file is expected")
	}
	for _, f := range []struct{ what, p string }{{"kernel", req.KernelPath}, {"initrd", req.InitrdPath}} {
		if f.p == "" {
			continue
		}
		if !filepath.IsAbs(f.p) {
			return api.Image{}, invalid(fmt.Sprintf("%s path %q is not absolute", f.what, f.p), "pass an absolute path")
		}
		if s, err := os.Stat(f.p); err != nil || !s.Mode().IsRegular() {
			return api.Image{}, invalid(fmt.Sprintf("%s %s is not a readable file", f.what, f.p), "check the path, or omit it to use the bundle's "+f.what)
		}
	}
	ok, err := IsExt4(abs)
	if err != nil {
		return api.Image{}, invalid(fmt.Sprintf("read %s: %v", abs, err), "check the file's permissions")
	}
	if !ok {
		return api.Image{}, invalid(fmt.Sprintf("%s is not an ext4 image (no ext4 superblock magic 0xEF53 at byte 1080)", abs),
			"banger boots raw ext4 images: convert with `qemu-img convert -O raw`, or pack a tree with `mkfs.ext4 -d DIR IMG SIZE`")
	}
	fsys := extFS{run: b.runner(), img: abs}
	var missing []string
	for _, need := range []struct{ path, what string }{
		{"/usr/local/bin/banger-agent", "the banger guest agent (/usr/local/bin/banger-agent)"},
		{"/usr/sbin/sshd", "the OpenSSH server (/usr/sbin/sshd)"},
	} {
		in, _, err := fsys.resolve(ctx, need.path)
		if err != nil {
			return api.Image{}, api.NewError(api.CodeFailedPrecondition, fmt.Sprintf("look inside %s with debugfs: %v", abs, err), "apt-get install -y e2fsprogs")
		}
		if !in.Exists || in.Type != "regular" || in.Mode&0o111 == 0 {
			missing = append(missing, need.what)
		}
	}
	if len(missing) > 0 {
		return api.Image{}, invalid(fmt.Sprintf("%s lacks %s", abs, strings.Join(missing, " and ")),
			"build the image with `banger image build`, or install openssh-server and copy the bundle's banger-agent to /usr/local/bin/banger-agent (mode 0755) with a boot service")
	}
	sum, size, err := disk.SHA256(abs)
	if err != nil {
		return api.Image{}, err
	}
	return api.Image{
		Name:       req.Name,
		Distro:     req.Distro,
		RootfsPath: abs,
		KernelPath: req.KernelPath,
		InitrdPath: req.InitrdPath,
		SizeBytes:  size,
		SHA256:     sum,
		CreatedAt:  time.Now().UTC(),
	}, nil
}
