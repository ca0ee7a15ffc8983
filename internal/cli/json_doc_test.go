package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/spf13/cobra"

	"github.com/banger-dev/banger/internal/api"
	"github.com/banger-dev/banger/internal/paths"
)

var updateJSONDoc = flag.Bool("update-json-doc", false, "rewrite docs/json.md's schema blocks from the Go types")

// jsonCommand is one command's --output json: the Go type it prints
// (docs/json.md's schema is generated from it), and how to run it against
// a recorded daemon reply.
type jsonCommand struct {
	path   string // "vm create"
	typ    any    // a value of the printed type
	args   []string
	reply  any  // what the fake daemon answers (nil: the command asks no daemon here)
	ndjson bool // one JSON object a line (vm exec): the schema is a line's
}

var (
	when    = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	started = when.Add(time.Minute)
	fullVM  = api.VM{ID: "0a1b2c3d", Name: "dev", Image: "debian", VCPUs: 2, MemoryMiB: 1024, DiskBytes: 8 << 30,
		State: api.VMRunning, VMM: "qemu", IP: "172.30.0.2", MAC: "06:00:ac:1e:00:02", Tap: "bg-0a1b2c3d",
		VsockPath: "/run/v.sock", PID: 42, DiskAllocatedBytes: 1 << 20, CreatedAt: when, UpdatedAt: when,
		StartedAt: &started, Publish: []api.PortForward{{HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80}},
		AutoForward: new(bool), Forwards: []api.ForwardStatus{{PortForward: api.PortForward{HostAddr: "127.0.0.1", HostPort: 8080, GuestPort: 80}, Auto: true, Error: "in use"}}}
	fullImage = api.Image{Name: "debian", Distro: "debian", Suite: "bookworm", RootfsPath: "/i/debian.ext4", SizeBytes: 2 << 30,
		SHA256: "ab", KernelVersion: "6.1.0", CreatedAt: when}
	fullBundle = api.BundleInfo{Dir: "/b", KernelPath: "/b/vmlinux", KernelVersion: "6.1", InitrdPath: "/b/initrd", AgentPath: "/b/agent",
		SSHKeyPath: "/b/id", SSHPubKeyPath: "/b/id.pub"}
	fullInfo   = api.DaemonInfo{Version: "1", BuildID: "x", APIVersion: 1, PID: 7, StartedAt: when, Socket: "/s", StateDir: "/st", VMM: "qemu"}
	fullChecks = []api.CheckResult{{Name: "kvm", Scope: "vm", Status: api.CheckWarn, Detail: "no /dev/kvm", Fix: "modprobe kvm"}}
)

var jsonCommands = []jsonCommand{
	{path: "vm list", typ: []api.VM{}, args: []string{"vm", "list"}, reply: api.VMListResult{VMs: []api.VM{fullVM}}},
	{path: "vm show", typ: api.VM{}, args: []string{"vm", "show", "dev"}, reply: fullVM},
	{path: "vm create", typ: api.VM{}, args: []string{"vm", "create", "--name", "dev"}, reply: fullVM},
	{path: "vm start", typ: api.VM{}, args: []string{"vm", "start", "dev"}, reply: fullVM},
	{path: "vm stop", typ: api.VM{}, args: []string{"vm", "stop", "dev"}, reply: fullVM},
	{path: "vm restart", typ: api.VM{}, args: []string{"vm", "restart", "dev"}, reply: fullVM},
	{path: "vm set", typ: api.VMSetResult{}, args: []string{"vm", "set", "dev", "--vcpus", "4"},
		reply: api.VMSetResult{VM: fullVM, PendingRestart: true, Note: "applies at next start"}},
	{path: "vm delete", typ: DeletedResult{}, args: []string{"vm", "delete", "dev", "--yes"}, reply: struct{}{}},
	{path: "vm health", typ: api.VMHealthResult{}, args: []string{"vm", "health", "dev"},
		reply: api.VMHealthResult{Name: "dev", State: api.VMRunning, Healthy: true, RTTMillis: 1.5,
			Agent: &api.AgentHealth{Status: "ok", Version: "1", Protocol: 1, Features: []string{"exec"}, Hostname: "dev", BootID: "b", WorkDiskMounted: true}}},
	{path: "vm snapshot list", typ: []api.Snapshot{}, args: []string{"vm", "snapshot", "list", "dev"},
		reply: api.SnapshotListResult{Snapshots: []api.Snapshot{{VMID: "0a1b2c3d", VM: "dev", Name: "s1", CreatedAt: when, HasMemory: true, SizeBytes: 9,
			Manifest: api.SnapshotManifest{Kernel: "k", KernelSHA256: "a", Image: "debian", ImageSHA256: "b", VMM: "qemu", RootDisk: "rootfs.qcow2", MemoryMiB: 1024, VCPUs: 2}}}}},
	{path: "vm snapshot create", typ: api.Snapshot{}, args: []string{"vm", "snapshot", "create", "dev", "--name", "s1"},
		reply: api.Snapshot{VMID: "0a1b2c3d", VM: "dev", Name: "s1", CreatedAt: when, HasMemory: true, SizeBytes: 9,
			Manifest: api.SnapshotManifest{Kernel: "k", KernelSHA256: "a", Image: "debian", ImageSHA256: "b", VMM: "qemu", RootDisk: "rootfs.qcow2", MemoryMiB: 1024, VCPUs: 2}}},
	{path: "vm snapshot delete", typ: SnapshotDeletedResult{}, args: []string{"vm", "snapshot", "delete", "dev", "s1"}, reply: struct{}{}},
	{path: "vm restore", typ: api.VMRestoreResult{}, args: []string{"vm", "restore", "dev", "s1", "--yes"},
		reply: api.VMRestoreResult{VM: fullVM, Safety: "safety-20261204T180000Z"}},
	{path: "vm suspend", typ: api.VM{}, args: []string{"vm", "suspend", "dev"}, reply: fullVM},
	{path: "vm resume", typ: api.VM{}, args: []string{"vm", "resume", "dev"}, reply: fullVM},
	{path: "vm clone", typ: api.VM{}, args: []string{"vm", "clone", "dev", "dev2"}, reply: fullVM},
	{path: "vm exec", typ: ExecEvent{}, ndjson: true},
	{path: "image list", typ: []api.Image{}, args: []string{"image", "list"}, reply: api.ImageListResult{Images: []api.Image{fullImage}}},
	{path: "image show", typ: api.Image{}, args: []string{"image", "show", "debian"}, reply: fullImage},
	{path: "image build", typ: api.Image{}, args: []string{"image", "build", "--name", "debian"}, reply: fullImage},
	{path: "image register", typ: api.Image{}, args: []string{"image", "register", "--name", "debian", "--rootfs", "/i/debian.ext4"}, reply: fullImage},
	{path: "image delete", typ: DeletedResult{}, args: []string{"image", "delete", "debian"}, reply: struct{}{}},
	{path: "image verify", typ: api.ImageVerifyResult{}, args: []string{"image", "verify", "debian"},
		reply: api.ImageVerifyResult{Image: "debian", Passed: true, Checks: fullChecks}},
	{path: "bundle build", typ: api.BundleInfo{}, args: []string{"bundle", "build"}, reply: fullBundle},
	{path: "bundle show", typ: api.BundleInfo{}, args: []string{"bundle", "show"}, reply: fullBundle},
	{path: "host nat", typ: HostNATResult{}, args: []string{"host", "nat", "on"}, reply: struct{}{}},
	{path: "host teardown", typ: api.HostTeardownResult{}, args: []string{"host", "teardown"}, reply: api.HostTeardownResult{Removed: []string{"bridge banger0"}}},
	{path: "host resources", typ: api.HostResources{}, args: []string{"host", "resources"},
		reply: api.HostResources{CPUs: 2, MemoryBytes: 1 << 33, MemoryAvailBytes: 1 << 32, FSBytes: 1 << 40, FSFreeBytes: 1 << 39}},
	{path: "doctor", typ: api.DoctorResult{}, args: []string{"doctor"}, reply: api.DoctorResult{Checks: fullChecks}},
	{path: "daemon start", typ: DaemonStartResult{}, args: []string{"daemon", "start"}, reply: fullInfo},
	// These three ask the daemon's socket directly (never starting one):
	// here none runs.
	{path: "daemon stop", typ: DaemonStopResult{}, args: []string{"daemon", "stop"}},
	{path: "daemon status", typ: (*api.DaemonInfo)(nil), args: []string{"daemon", "status"}},
	{path: "version", typ: VersionResult{}, args: []string{"version"}},
}

func jsonDocPath() string { return filepath.Join("..", "..", "docs", "json.md") }

// schemaText is the schema docs/json.md shows for a command's type.
func schemaText(t *testing.T, v any) string {
	t.Helper()
	s, err := jsonschema.ForType(reflect.TypeOf(v), &jsonschema.ForOptions{})
	if err != nil {
		t.Fatalf("schema of %T: %v", v, err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var docSection = regexp.MustCompile("(?s)## `banger ([a-z -]+)`\n(.*?)```json\n(.*?)\n```")

// docSchemas reads docs/json.md's schema block per command.
func docSchemas(doc string) map[string]string {
	out := map[string]string{}
	for _, m := range docSection.FindAllStringSubmatch(doc, -1) {
		out[m[1]] = m[3]
	}
	return out
}

// TestJSONDoc: every command with --output json is documented in
// docs/json.md with the schema of the Go type it prints (regenerate with
// -update-json-doc), and what each command prints validates against the
// schema the doc shows.
func TestJSONDoc(t *testing.T) {
	raw, err := os.ReadFile(jsonDocPath())
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	if *updateJSONDoc {
		for _, c := range jsonCommands {
			want := schemaText(t, c.typ)
			if !strings.Contains(doc, "## `banger "+c.path+"`\n") {
				doc += fmt.Sprintf("\n## `banger %s`\n\n```json\n%s\n```\n", c.path, want)
				continue
			}
			doc = replaceSection(doc, c.path, want)
		}
		if err := os.WriteFile(jsonDocPath(), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	documented := docSchemas(doc)

	// Every command that has --output is listed here, and the reverse.
	listed := map[string]bool{}
	for _, c := range jsonCommands {
		listed[c.path] = true
	}
	var withOutput []string
	walk(NewRoot(&App{}), "", func(path string, cmd *cobra.Command) {
		if cmd.Flags().Lookup("output") != nil {
			withOutput = append(withOutput, path)
		}
	})
	sort.Strings(withOutput)
	for _, p := range withOutput {
		if !listed[p] {
			t.Errorf("banger %s has --output but no entry in jsonCommands (and so none in docs/json.md)", p)
		}
	}
	for p := range listed {
		if !contains(withOutput, p) {
			t.Errorf("jsonCommands lists banger %s, which has no --output flag", p)
		}
	}
	// The list: each of these prints a result and must take --output json.
	for _, p := range []string{"vm create", "vm start", "vm stop", "vm set", "vm delete", "vm health", "image build",
		"image register", "image delete", "bundle build", "host nat", "host teardown", "host resources",
		"daemon start", "daemon stop", "daemon status", "version"} {
		if !contains(withOutput, p) {
			t.Errorf("banger %s has no --output", p)
		}
	}

	for _, c := range jsonCommands {
		t.Run(strings.ReplaceAll(c.path, " ", "_"), func(t *testing.T) {
			docSchema, ok := documented[c.path]
			if !ok {
				t.Fatalf("docs/json.md has no section \"## `banger %s`\" with a json schema block (go test ./internal/cli -run TestJSONDoc -update-json-doc)", c.path)
			}
			if want := schemaText(t, c.typ); docSchema != want {
				t.Fatalf("docs/json.md's schema for banger %s differs from the Go type %T: regenerate with go test ./internal/cli -run TestJSONDoc -update-json-doc\ndoc:\n%s\ntype:\n%s",
					c.path, c.typ, docSchema, want)
			}
			var s jsonschema.Schema
			if err := json.Unmarshal([]byte(docSchema), &s); err != nil {
				t.Fatalf("doc schema does not parse: %v", err)
			}
			resolved, err := s.Resolve(nil)
			if err != nil {
				t.Fatalf("doc schema: %v", err)
			}
			if c.ndjson {
				return // vm exec needs a guest: test/e2e runs it with --output json
			}
			stdout, stderr, code := runJSON(t, c.reply, append(c.args, "--output", "json")...)
			if code != 0 {
				t.Fatalf("banger %s --output json: exit %d: %s", strings.Join(c.args, " "), code, stderr)
			}
			var v any
			dec := json.NewDecoder(strings.NewReader(stdout))
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			if dec.More() {
				t.Fatalf("output holds more than one JSON document:\n%s", stdout)
			}
			if err := resolved.Validate(v); err != nil {
				t.Fatalf("output does not match docs/json.md's schema: %v\n%s", err, stdout)
			}
			// The reply's content came through (not an empty document that
			// happens to validate).
			if c.reply != nil {
				if b, _ := json.Marshal(c.reply); len(b) > 2 && len(stdout) < 10 {
					t.Errorf("output %q is suspiciously small for reply %s", stdout, b)
				}
			}
		})
	}
}

// runJSON runs the CLI with a daemon that answers reply (nil: no daemon;
// the socket is under a fresh directory, so nothing answers there).
func runJSON(t *testing.T, reply any, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	dir, err := os.MkdirTemp("", "bgjs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	a := &App{Layout: paths.UnderRoot(dir), Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		IsTTY: func(any) bool { return false },
		Connect: func(context.Context) (Caller, error) {
			if reply == nil {
				return nil, fmt.Errorf("this command should not need the daemon here")
			}
			return &recorder{reply: reply}, nil
		}}
	code := Main(a, args)
	return out.String(), errb.String(), code
}

func replaceSection(doc, path, schema string) string {
	re := regexp.MustCompile("(?s)(## `banger " + regexp.QuoteMeta(path) + "`\n.*?```json\n)(.*?)(\n```)")
	m := re.FindStringSubmatchIndex(doc)
	if m == nil {
		return doc
	}
	return doc[:m[4]] + schema + doc[m[5]:]
}

func walk(cmd *cobra.Command, prefix string, f func(string, *cobra.Command)) {
	for _, c := range cmd.Commands() {
		p := strings.TrimSpace(prefix + " " + c.Name())
		f(p, c)
		walk(c, p, f)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
