package image

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
	"github.com/banger-dev/banger/internal/userns"
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

// fakeSandbox prints lines as a script would and fails.
type fakeSandbox struct{ lines []string }

func (fakeSandbox) Describe() string                        { return "fake" }
func (fakeSandbox) Rootless() bool                          { return true }
func (fakeSandbox) RemoveAll(context.Context, string) error { return nil }
func (f fakeSandbox) Run(_ context.Context, s Script) error {
	for _, l := range f.lines {
		io.WriteString(s.Stdout, l+"\n")
	}
	return errors.New("exit status 25")
}

// TestRunScriptKeepsEarlyErrors: mmdebstrap says what is wrong ("E: Unable
// to locate package") long before its last lines; the explanation keeps it.
func TestRunScriptKeepsEarlyErrors(t *testing.T) {
	sb := fakeSandbox{lines: []string{"I: one", "E: Unable to locate package nope", "I: two", "I: three", "I: four", "I: five", "I: six", "I: seven", "E: mmdebstrap failed to run"}}
	var steps []string
	tail, err := (&Builder{}).runScript(context.Background(), sb, Script{Name: ScriptDebian}, func(string) string { return StepBootstrap },
		func(p api.Progress) { steps = append(steps, p.Step) })
	if err == nil || len(steps) != len(sb.lines) {
		t.Fatalf("err %v, %d progress events", err, len(steps))
	}
	want := []string{"E: Unable to locate package nope", "E: mmdebstrap failed to run", "I: three", "I: four", "I: five", "I: six", "I: seven"}
	if strings.Join(tail, "|") != strings.Join(want, "|") {
		t.Errorf("tail %q, want %q", tail, want)
	}
	var ae *api.Error
	if e := bootstrapError(BuildRequest{Suite: "bookworm"}, ToolMmdebstrap, tail, err); !errors.As(e, &ae) || !strings.Contains(ae.Message, "nope") {
		t.Errorf("explained as %v", e)
	}
}

func TestSandboxRefusesUnknownScripts(t *testing.T) {
	for _, sb := range []Sandbox{RootSandbox{}, UserNSSandbox{}} {
		if err := sb.Run(context.Background(), Script{Dir: t.TempDir(), Name: "../../bin/sh"}); err == nil {
			t.Errorf("%s ran a script outside the closed set", sb.Describe())
		}
	}
}

func TestRootlessErrorSaysWhatAndHow(t *testing.T) {
	err := RootlessError([]userns.Problem{{What: "newuidmap is not installed", Fix: "sudo apt-get install uidmap"},
		{What: "newgidmap is not installed", Fix: "sudo apt-get install uidmap"},
		{What: "/etc/subuid has no subordinate ids for alice", Fix: "sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice"}},
		errors.New("privileged helper /usr/local/libexec/banger/banger-helper is not installed"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeFailedPrecondition ||
		!strings.Contains(ae.Message, "newuidmap is not installed; newgidmap is not installed; /etc/subuid has no subordinate ids for alice") ||
		ae.Hint != "sudo apt-get install uidmap; then sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice (banger doctor --scope image-build checks it all); or let the privileged helper build it (privileged helper /usr/local/libexec/banger/banger-helper is not installed); or build as root" {
		t.Errorf("got %#v", err)
	}
}
