package daemon

import (
	"context"
	"os"
	"path/filepath"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/bundle"
	"github.com/banger-dev/banger/internal/sysexec"
)

// bundleDir is where the bundle (kernel, initrd, key, agent) lives.
func (d *Daemon) bundleDir() string {
	if d.Config.BundleDir != "" {
		return d.Config.BundleDir
	}
	return d.Layout.BundleDir()
}

// bundleKeyPath is the bundle's SSH private key, whether or not the bundle
// is built yet.
func (d *Daemon) bundleKeyPath() string { return filepath.Join(d.bundleDir(), "id_ed25519") }

func (d *Daemon) loadBundle() (*bundle.Bundle, error) {
	b, err := bundle.Load(d.bundleDir())
	if err != nil {
		return nil, api.NewError(api.CodeFailedPrecondition, err.Error(), "build it with `banger bundle build`")
	}
	return b, nil
}

func (d *Daemon) bundleShow(ctx context.Context, _ struct{}, _ func(api.Progress)) (api.BundleInfo, error) {
	b, err := d.loadBundle()
	if err != nil {
		return api.BundleInfo{}, err
	}
	return b.Info(), nil
}

func (d *Daemon) bundleBuild(ctx context.Context, p api.BundleBuildParams, progress func(api.Progress)) (api.BundleInfo, error) {
	d.buildMu.Lock()
	defer d.buildMu.Unlock()
	agent, err := d.agentBinary()
	if err != nil {
		return api.BundleInfo{}, err
	}
	b, err := bundle.Build(ctx, bundle.BuildOptions{
		Dir: d.bundleDir(), CacheDir: filepath.Join(d.Layout.CacheDir, "kernel"),
		AgentBinary: agent, Force: p.Force,
	}, progress)
	if err != nil {
		return api.BundleInfo{}, err
	}
	return b.Info(), nil
}

// agentBinary finds the static guest agent to put into bundles: agent_bin
// from config, else banger-agent next to bangerd, else in PATH.
func (d *Daemon) agentBinary() (string, error) {
	if p := d.Config.AgentBin; p != "" {
		return p, nil
	}
	beside := filepath.Join(filepath.Dir(d.Bangerd), "banger-agent")
	if _, err := os.Stat(beside); err == nil {
		return beside, nil
	}
	if p, err := sysexec.LookPath("banger-agent"); err == nil {
		return p, nil
	}
	return "", api.NewError(api.CodeFailedPrecondition, "no banger-agent binary next to bangerd or in PATH",
		"build it with `make build` (bin/banger-agent) or set agent_bin in config.toml")
}
