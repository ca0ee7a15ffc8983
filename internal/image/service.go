package image

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/store"
)

// Service implements the image.* methods: the records in the store and
// the builds, registrations and checks that make them. Set the exported
// fields, then use it; it is safe for concurrent use.
type Service struct {
	Store   *store.Store
	Builder *Builder
	// Bundle loads the bundle images are built against (its key, agent,
	// kernel modules) and verified with.
	Bundle func() (*bundle.Bundle, error)
	// VoidRepo and XBPSStatic come from config (Void Linux builds).
	VoidRepo, XBPSStatic string
	// BuildLock serialises builds; the daemon shares it with bundle.build
	// (both are long and disk-heavy). nil: builds are not serialised.
	BuildLock sync.Locker

	// Preflight, when set, checks the host before a build changes anything.
	Preflight func(ctx context.Context, p api.ImageBuildParams) error
	// Boot, when set, proves an image in a throwaway VM for image.verify
	// (agent healthy, ssh login, baseline commands); nil: offline checks only.
	Boot func(ctx context.Context, img api.Image, b *bundle.Bundle, progress func(api.Progress)) []api.CheckResult
}

// List returns every image record.
func (s *Service) List(ctx context.Context) ([]api.Image, error) {
	imgs, err := s.Store.ListImages(ctx)
	for i := range imgs {
		imgs[i] = withOrigin(imgs[i])
	}
	return imgs, mapErr(err)
}

// Get returns one image record.
func (s *Service) Get(ctx context.Context, name string) (api.Image, error) {
	img, err := s.Store.GetImage(ctx, name)
	if err == nil {
		img = withOrigin(img)
	}
	return img, mapErr(err)
}

// Delete removes an image record (not its files: a registered image's
// rootfs is the user's). Refused while a VM uses it.
func (s *Service) Delete(ctx context.Context, name string) error {
	return mapErr(s.Store.DeleteImage(ctx, name))
}

// Register records an image built elsewhere after checking it can run as
// a banger VM (see Builder.Register).
func (s *Service) Register(ctx context.Context, p api.ImageRegisterParams) (api.Image, error) {
	img, err := s.Builder.Register(ctx, RegisterRequest{
		Name: p.Name, RootfsPath: p.RootfsPath, KernelPath: p.KernelPath, InitrdPath: p.InitrdPath, Distro: p.Distro,
	})
	if err != nil {
		return api.Image{}, err
	}
	saved, err := s.Store.PutImage(ctx, img, false)
	return saved, mapErr(err)
}

// Build builds an image against the bundle and records it. An existing
// image of that name is refused unless p.Force.
func (s *Service) Build(ctx context.Context, p api.ImageBuildParams, progress func(api.Progress)) (api.Image, error) {
	if err := validateName(p.Name); err != nil {
		return api.Image{}, err
	}
	if s.Preflight != nil {
		if err := s.Preflight(ctx, p); err != nil {
			return api.Image{}, err
		}
	}
	if existing, err := s.Store.GetImage(ctx, p.Name); err == nil && !p.Force {
		return api.Image{}, api.NewError(api.CodeAlreadyExists,
			fmt.Sprintf("image %q already exists (built %s)", p.Name, existing.CreatedAt.Format(time.RFC3339)),
			"rebuild it with --force (VMs keep /root; their system disk is re-cloned at next start)")
	}
	b, err := s.Bundle()
	if err != nil {
		return api.Image{}, err
	}
	if s.BuildLock != nil {
		s.BuildLock.Lock()
		defer s.BuildLock.Unlock()
	}
	req := BuildRequest{
		Name: p.Name, Distro: p.Distro, Suite: p.Suite, ExtraPackages: p.Packages,
		Libc: p.Libc, FromTarball: p.FromTarball,
		VoidRepo: s.VoidRepo, XBPSStatic: s.XBPSStatic,
		PublicKeyPath: b.SSHPubKeyPath, AgentPath: b.AgentPath,
		ModulesDir: b.ModulesDir, KernelVersion: b.KernelVersion,
	}
	if p.SizeBytes != nil {
		req.SizeBytes = *p.SizeBytes
	}
	img, err := s.Builder.Build(ctx, req, progress)
	if err != nil {
		return api.Image{}, err
	}
	img.KernelVersion = b.KernelVersion
	saved, err := s.Store.PutImage(ctx, img, p.Force)
	return saved, mapErr(err)
}

// Verify proves an image: offline checks of its contents, then (with Boot)
// a throwaway VM booted from it.
func (s *Service) Verify(ctx context.Context, name string, progress func(api.Progress)) (api.ImageVerifyResult, error) {
	img, err := s.Get(ctx, name)
	if err != nil {
		return api.ImageVerifyResult{}, err
	}
	b, err := s.Bundle()
	if err != nil {
		return api.ImageVerifyResult{}, err
	}
	progress(api.Progress{Step: "offline", Message: "checking the contents of " + img.RootfsPath})
	res := api.ImageVerifyResult{Image: img.Name, Checks: s.Builder.VerifyOffline(ctx, img.RootfsPath, b.SSHPubKeyPath)}
	if s.Boot != nil {
		res.Checks = append(res.Checks, s.Boot(ctx, img, b, progress)...)
	}
	res.Passed = true
	for _, c := range res.Checks {
		if c.Status == api.CheckFail {
			res.Passed = false
		}
	}
	return res, nil
}

// mapErr turns store errors about images into API errors with a hint.
func mapErr(err error) error {
	var ae *api.Error
	switch {
	case err == nil, errors.As(err, &ae):
		return err
	case errors.Is(err, store.ErrNotFound):
		return api.NewError(api.CodeNotFound, err.Error(), "list images with `banger image list`")
	case errors.Is(err, store.ErrNameTaken):
		return api.NewError(api.CodeAlreadyExists, err.Error(), "pick another name, or delete the existing one")
	case errors.Is(err, store.ErrImageInUse):
		return api.NewError(api.CodeConflict, err.Error(), "delete those VMs first")
	}
	return err
}
