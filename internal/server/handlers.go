package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/validate"
	"github.com/banger-dev/banger/internal/vm"
)

// RegisterVMService registers the vm.*, image record and host.resources
// methods backed by svc.
func RegisterVMService(s *Server, svc *vm.Service) {
	s.Register(api.MethodVMCreate, Method(func(ctx context.Context, p api.VMCreateParams, pr func(api.Progress)) (api.VM, error) {
		return svc.Create(ctx, p, pr)
	}))
	s.Register(api.MethodVMList, Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.VMListResult, error) {
		vms, err := svc.List(ctx)
		return api.VMListResult{VMs: vms}, err
	}))
	s.Register(api.MethodVMSummaries, Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.VMSummariesResult, error) {
		vms, err := svc.Summaries(ctx)
		return api.VMSummariesResult{VMs: vms}, err
	}))
	s.Register(api.MethodVMGet, Method(func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VM, error) {
		return svc.Get(ctx, p.Name)
	}))
	s.Register(api.MethodVMSet, Method(func(ctx context.Context, p api.VMSetParams, _ func(api.Progress)) (api.VMSetResult, error) {
		return svc.Set(ctx, p)
	}))
	s.Register(api.MethodVMStart, Method(func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
		return svc.Start(ctx, p.Name, pr)
	}))
	s.Register(api.MethodVMStop, Method(func(ctx context.Context, p api.VMStopParams, _ func(api.Progress)) (api.VM, error) {
		return svc.Stop(ctx, p.Name, p.Force)
	}))
	s.Register(api.MethodVMRestart, Method(func(ctx context.Context, p api.VMRef, pr func(api.Progress)) (api.VM, error) {
		return svc.Restart(ctx, p.Name, pr)
	}))
	s.Register(api.MethodVMDelete, Method(func(ctx context.Context, p api.VMDeleteParams, _ func(api.Progress)) (struct{}, error) {
		return struct{}{}, svc.Delete(ctx, p.Name, p.Force)
	}))
	s.Register(api.MethodVMHealth, Method(func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMHealthResult, error) {
		return svc.Health(ctx, p.Name)
	}))
	s.Register(api.MethodVMSSHInfo, Method(func(ctx context.Context, p api.VMRef, _ func(api.Progress)) (api.VMSSHInfo, error) {
		return svc.SSHInfo(ctx, p.Name)
	}))
	s.Register(api.MethodVMLogs, Method(func(ctx context.Context, p api.VMLogsParams, _ func(api.Progress)) (api.VMLogsResult, error) {
		return svc.Logs(ctx, p)
	}))
	s.Register(api.MethodHostResources, Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.HostResources, error) {
		return svc.HostResources(ctx)
	}))

	s.Register(api.MethodImageList, Method(func(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.ImageListResult, error) {
		imgs, err := svc.Store.ListImages(ctx)
		return api.ImageListResult{Images: imgs}, svc.MapStoreError(err)
	}))
	s.Register(api.MethodImageGet, Method(func(ctx context.Context, p api.ImageRef, _ func(api.Progress)) (api.Image, error) {
		img, err := svc.Store.GetImage(ctx, p.Name)
		return img, imageErr(svc, err)
	}))
	s.Register(api.MethodImageDelete, Method(func(ctx context.Context, p api.ImageRef, _ func(api.Progress)) (struct{}, error) {
		return struct{}{}, imageErr(svc, svc.Store.DeleteImage(ctx, p.Name))
	}))
	s.Register(api.MethodImageRegister, Method(func(ctx context.Context, p api.ImageRegisterParams, pr func(api.Progress)) (api.Image, error) {
		return RegisterImageRecord(ctx, svc, p, pr)
	}))
}

func imageErr(svc *vm.Service, err error) error {
	var ae *api.Error
	if err := svc.MapStoreError(err); errors.As(err, &ae) && ae.Code == api.CodeNotFound {
		ae.Hint = "list images with `banger image list`"
		return ae
	}
	return svc.MapStoreError(err)
}

// RegisterImageRecord records an existing rootfs (and optional kernel and
// initrd) as an image after checking the files exist. It does not boot the
// image; content checks (agent, sshd) belong to the image service, which
// replaces this method when wired.
func RegisterImageRecord(ctx context.Context, svc *vm.Service, p api.ImageRegisterParams, progress func(api.Progress)) (api.Image, error) {
	if err := validate.ImageName(p.Name); err != nil {
		return api.Image{}, api.NewError(api.CodeInvalidArgument, err.Error(), "")
	}
	img := api.Image{Name: p.Name, Distro: p.Distro, KernelPath: p.KernelPath, InitrdPath: p.InitrdPath}
	if img.Distro == "" {
		img.Distro = "custom"
	}
	for _, f := range []struct {
		flag string
		path *string
		need bool
	}{{"--rootfs", &p.RootfsPath, true}, {"--kernel", &img.KernelPath, false}, {"--initrd", &img.InitrdPath, false}} {
		if *f.path == "" {
			if f.need {
				return api.Image{}, api.NewError(api.CodeInvalidArgument, "rootfs path is required", "pass --rootfs PATH (an ext4 image file)")
			}
			continue
		}
		abs := *f.path
		if !filepath.IsAbs(abs) {
			// The daemon's working directory is not the user's.
			return api.Image{}, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("%s %s: path must be absolute", f.flag, abs), "")
		}
		st, err := os.Stat(abs)
		if err != nil || !st.Mode().IsRegular() {
			return api.Image{}, api.NewError(api.CodeInvalidArgument, fmt.Sprintf("%s %s: not a readable regular file", f.flag, abs), "")
		}
		*f.path = abs
	}
	img.RootfsPath = p.RootfsPath
	progress(api.Progress{Step: "checksum", Message: "sha256 of " + img.RootfsPath})
	sum, size, err := fileSHA256(ctx, img.RootfsPath)
	if err != nil {
		return api.Image{}, err
	}
	img.SHA256, img.SizeBytes, img.CreatedAt = sum, size, time.Now()
	out, err := svc.Store.PutImage(ctx, img, false)
	return out, svc.MapStoreError(err)
}

func fileSHA256(ctx context.Context, path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, &ctxReader{ctx: ctx, r: f})
	if err != nil {
		return "", 0, fmt.Errorf("checksum %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ctxReader stops a long read when the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
