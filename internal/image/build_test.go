package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

func TestBuildRejectsMissingInputsBeforeWork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Build checks for root before its inputs; run as root to reach the input checks")
	}
	root := t.TempDir()
	pub := filepath.Join(root, "id.pub")
	writeFile(t, pub, "ssh-ed25519 AAAA x\n", 0o644)
	b := &Builder{Layout: paths.UnderRoot(root), HostMirror: func() string { return "" }}
	for name, req := range map[string]BuildRequest{
		"no agent":     {Name: "x", PublicKeyPath: pub, AgentPath: filepath.Join(root, "nope")},
		"agent not +x": {Name: "x", PublicKeyPath: pub, AgentPath: pub},
		"no key":       {Name: "x", PublicKeyPath: filepath.Join(root, "nope.pub"), AgentPath: "/bin/sh"},
		"no modules":   {Name: "x", PublicKeyPath: pub, AgentPath: "/bin/sh", ModulesDir: filepath.Join(root, "m"), KernelVersion: "6.1"},
		"bad package":  {Name: "x", PublicKeyPath: pub, AgentPath: "/bin/sh", ExtraPackages: []string{"-x"}},
	} {
		_, err := b.Build(context.Background(), req, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || ae.Hint == "" {
			t.Errorf("%s: want invalid_argument with a hint, got %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "cache")); !os.IsNotExist(err) {
		t.Errorf("rejected requests created files: %v", err)
	}
}

func TestBootstrapError(t *testing.T) {
	req := BuildRequest{Suite: "bookworm", Mirror: DefaultMirror}
	err := bootstrapError(req, ToolDebootstrap, []string{"I: Retrieving Packages", "E: Couldn't find these debs: foo bar"}, errors.New("exit status 1"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "foo bar") {
		t.Errorf("unknown packages (debootstrap): %v", err)
	}
	err = bootstrapError(req, ToolMmdebstrap, []string{"E: Unable to locate package foo", "E: mmdebstrap failed"}, errors.New("exit status 1"))
	if !errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || !strings.Contains(ae.Message, "no package named: foo") {
		t.Errorf("unknown packages (mmdebstrap): %v", err)
	}
	err = bootstrapError(req, ToolMmdebstrap, []string{"E: Failed getting release file http://x/dists/bookworm/Release"}, errors.New("exit status 1"))
	if errors.As(err, &ae) || !strings.Contains(err.Error(), "Failed getting release file") || !strings.Contains(err.Error(), "mirror is reachable") ||
		!strings.HasPrefix(err.Error(), "mmdebstrap bookworm") {
		t.Errorf("network failure: %v", err)
	}
	err = bootstrapError(req, ToolMmdebstrap, nil, context.Canceled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
}
