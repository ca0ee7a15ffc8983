package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/disk"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/privhelper"
	"github.com/banger-dev/banger/internal/sysexec"
)

// The privileged-helper fallback: a normal user on a host with no usable
// user namespace builds Debian images through `sudo -n banger-helper
// image-build` (internal/privhelper, docs/security.md). The helper runs the
// whole build as root with banger's own code and embedded scripts in a
// root-owned directory under the user's cache (~/.cache/banger/helper-build,
// where its base trees and .debs stay cached between builds) and copies the
// image into a file the user made; the user's side streams the inputs (key,
// agent, modules) and renames the image into place. Per-script calls (the
// Sandbox interface) would have root write into directories the user owns,
// which the user could swap for symlinks mid-build.

// HelperUsable says whether this user can build through the helper: it is
// installed root-safe at path and sudo grants image-build without a
// password. The error says what is missing and the fix.
func HelperUsable(ctx context.Context, run sysexec.Runner, path string) error {
	if err := privhelper.CheckInstalled(path); err != nil {
		return fmt.Errorf("%w (fix: %s)", err, privhelper.InstallHint)
	}
	probe := append([]string{"sudo", "-n", "-l", path}, privhelper.ImageBuildArgs(DefaultSuite, DefaultMirror, DefaultSizeBytes, nil, "/x")...)
	if _, err := runner(run).Run(ctx, sysexec.Cmd{Argv: probe}); err != nil {
		return fmt.Errorf("sudo does not grant %s image-build without a password (fix: %s)", path, privhelper.InstallHint)
	}
	return nil
}

// buildWithHelper builds req through the privileged helper.
func (b *Builder) buildWithHelper(ctx context.Context, req BuildRequest, progress func(api.Progress)) (img api.Image, err error) {
	if req.Distro != "debian" {
		return api.Image{}, api.NewError(api.CodeFailedPrecondition,
			"the privileged helper builds Debian images only, and this host allows no user namespace for a rootless Void build",
			"build Void images as root (sudo banger image build --distro void ...), or enable user namespaces (banger doctor --scope image-build)")
	}
	if !strings.HasPrefix(req.Mirror, "http://") && !strings.HasPrefix(req.Mirror, "https://") {
		return api.Image{}, invalid(fmt.Sprintf("mirror %q: the privileged helper fetches from http(s) mirrors only", req.Mirror),
			"set an http:// or https:// Debian mirror in config.toml")
	}
	if err := checkInputs(req); err != nil {
		return api.Image{}, err
	}
	_, uid := CurrentUser()
	cacheDir, err := privhelper.CacheDirOf(uid)
	if err != nil {
		return api.Image{}, err
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return api.Image{}, fmt.Errorf("create %s: %w", cacheDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(req.OutputPath), 0o700); err != nil {
		return api.Image{}, fmt.Errorf("create image dir: %w", err)
	}
	tmp := filepath.Join(cacheDir, ".image-"+req.Name+"-"+randHex(4)+".ext4")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return api.Image{}, fmt.Errorf("create the image file: %w", err)
	}
	f.Close()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	helper := b.HelperPath
	if helper == "" {
		helper = privhelper.DefaultPath
	}
	progress(api.Progress{Step: StepPrepare, Message: fmt.Sprintf("debian %s from %s through the privileged helper %s (no user namespace here; its cache: %s/%s)",
		req.Suite, req.Mirror, helper, cacheDir, privhelper.HelperBuildDir)})

	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeInputs(pw, req)) }()
	defer pr.Close()
	lw := &lineWriter{emit: func(line string) {
		step, msg, ok := strings.Cut(line, ": ")
		if !ok || strings.ContainsAny(step, " /") {
			step, msg = StepBootstrap, line
		}
		progress(api.Progress{Step: step, Message: msg})
	}}
	args := privhelper.ImageBuildArgs(req.Suite, req.Mirror, req.SizeBytes, extraPackagesOf(req), tmp)
	if err := privhelper.CheckImageBuildArgs(args); err != nil {
		return api.Image{}, invalid("the privileged helper refuses this build: "+err.Error(),
			"use a plain http(s) mirror, a suite name, a size in whole MiB and Debian package names")
	}
	err = privhelper.RunImageBuild(ctx, b.runner(), helper, args, pr, lw.stream(), lw.stream())
	lw.flush()
	if err != nil {
		return api.Image{}, fmt.Errorf("build through the privileged helper: %w", err)
	}
	progress(api.Progress{Step: StepChecksum, Message: "sha256"})
	sum, size, err := disk.SHA256(tmp)
	if err != nil {
		return api.Image{}, err
	}
	if err := os.Rename(tmp, req.OutputPath); err != nil {
		return api.Image{}, fmt.Errorf("move the image into place (the cache %s and %s must be on one filesystem): %w", cacheDir, filepath.Dir(req.OutputPath), err)
	}
	return api.Image{Name: req.Name, Distro: req.Distro, Suite: req.Suite, RootfsPath: req.OutputPath, SizeBytes: size, SHA256: sum,
		KernelVersion: req.KernelVersion, CreatedAt: time.Now().UTC()}, nil
}

// extraPackagesOf is the request's packages beyond the default list.
func extraPackagesOf(req BuildRequest) []string {
	base, err := DebianPackages(nil)
	if err != nil {
		return req.ExtraPackages
	}
	return extraPackages(base, req.ExtraPackages)
}

// writeInputs streams the build's inputs as the helper takes them: pubkey,
// agent, and modules/<version>/... (directories and regular files only).
func writeInputs(w io.Writer, req BuildRequest) error {
	tw := tar.NewWriter(w)
	add := func(name, path string) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: int64(st.Mode().Perm()), Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = io.Copy(tw, in)
		return err
	}
	if err := add("pubkey", req.PublicKeyPath); err != nil {
		return err
	}
	if err := add("agent", req.AgentPath); err != nil {
		return err
	}
	if req.ModulesDir != "" {
		top := "modules/" + req.KernelVersion
		err := filepath.WalkDir(req.ModulesDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(req.ModulesDir, p)
			name := top
			if rel != "." {
				name = top + "/" + filepath.ToSlash(rel)
			}
			switch {
			case d.IsDir():
				return tw.WriteHeader(&tar.Header{Name: name + "/", Mode: 0o755, Typeflag: tar.TypeDir})
			case d.Type().IsRegular():
				return add(name, p)
			}
			return fmt.Errorf("modules tree %s: %s is neither a file nor a directory (the helper takes no symlinks)", req.ModulesDir, p)
		})
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// RunHelperJob is the helper's image-build hook (cmd/banger-helper): as
// root, it builds job with the root sandbox, every path in the job's
// root-owned area, and prints progress lines "step: message" to out.
func RunHelperJob(ctx context.Context, job privhelper.ImageJob, out io.Writer) error {
	b := &Builder{Layout: paths.Layout{CacheDir: job.Area}, Sandbox: RootSandbox{}}
	req := BuildRequest{
		Name: "helper", Distro: "debian", Suite: job.Suite, Mirror: job.Mirror, SizeBytes: job.SizeBytes,
		ExtraPackages: job.Extra, PublicKeyPath: job.PublicKey, AgentPath: job.Agent,
		ModulesDir: job.ModulesDir, KernelVersion: job.KernelVersion,
		OutputPath: job.Output, WorkDir: filepath.Join(job.Area, "build"),
	}
	_, err := b.Build(ctx, req, func(p api.Progress) {
		fmt.Fprintf(out, "%s: %s\n", p.Step, strings.ReplaceAll(p.Message, "\n", " "))
	})
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) && ae.Hint != "" {
			return fmt.Errorf("%s (%s)", ae.Message, ae.Hint)
		}
	}
	return err
}
