package archtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/banger-dev/banger/internal/sysexec"
)

// layers places every package of the module: a package may import only
// packages of a lower layer, so nothing imports upward (a service does not
// reach into the daemon, the transport into a service, a tool into a
// service) and siblings stay independent. A new package must be placed
// here, which is the moment to decide what it may depend on.
var layers = map[string]int{
	// 0: vocabulary and leaf helpers: they import no banger package.
	"images": 0, "internal/api": 0, "internal/paths": 0, "internal/validate": 0, "internal/version": 0,
	"internal/envknob": 0, "internal/sysexec": 0, "internal/hostinfo": 0, "internal/logtail": 0,
	"internal/initramfs": 0, "internal/dnsserver": 0, "internal/archtest": 0,
	"internal/agentclient/hvsocktest": 0, "internal/rootsafe": 0, "internal/consolelog": 0, "internal/termsafe": 0,
	"internal/agentproto": 0, "internal/tarstream": 0, "internal/splice": 0, "internal/ociref": 0, "internal/ociimage": 1,

	// 1: tools, each with one job, and the transport.
	"internal/disk": 1, "internal/userns": 1, "internal/kernel": 1, "internal/hostnet": 1, "internal/mapdns": 1,
	"internal/config": 1, "internal/provision": 1, "internal/ociimage/registrytest": 2, "internal/ociimage/ocitest": 0, "internal/testneed": 1, "internal/sshcmd": 1, "internal/sshconfig": 1, "internal/portfwd": 1, "internal/agentclient": 1, "internal/agent": 1, "internal/guestinit": 1,
	"internal/vmm": 1, "internal/vmm/fccontract": 1, "internal/server": 1,
	"internal/client": 1, "internal/tui": 1, "internal/tui/tuitest": 1, "internal/hostnet/nettest": 1,

	// 2: what the services are built from.
	"internal/bundle": 2, "internal/privhelper": 2, "internal/store": 2, "internal/vmm/firecracker": 2,
	"internal/vmm/qemu": 2, "internal/vmm/fcfake": 2, "internal/cli": 2, "internal/kernel/kerneltest": 2,
	"internal/benchreport": 2, "internal/mcpserver": 2, "internal/testsummary": 2, "internal/mapdns/mapdnstest": 2,

	// 3: the services.
	"internal/image": 3, "internal/vm": 3, "internal/vmruntime": 3, "internal/e2etest": 3,

	// 4: what reads the services' facts (doctor checks what an image build
	// needs), and test helpers that build on a service.
	"internal/doctor": 4, "internal/image/imagetest": 4,

	// 5: the composition root.
	"internal/daemon": 5,

	// 6: programs and test suites.
	"cmd/banger": 6, "cmd/banger-mcp": 6, "cmd/banger-tui": 6, "cmd/bangerd": 6, "cmd/banger-agent": 6, "cmd/banger-helper": 6, "cmd/fake-firecracker": 6,
	"test/e2e": 6, "test/bench": 6, "test/hostile": 6,
}

// services are the packages the transport must never link.
var services = []string{"internal/vm", "internal/image", "internal/vmruntime", "internal/store", "internal/daemon", "internal/doctor"}

type pkgInfo struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	res, err := sysexec.Exec{}.Run(context.Background(), sysexec.Cmd{
		Argv: []string{"go", "list", "-json=ImportPath,Imports,Deps", "./..."}, Dir: repoRoot(t)})
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(bytes.NewReader(res.Stdout))
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 30 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestNoPackageImportsUpward(t *testing.T) {
	for _, p := range listPackages(t) {
		name := strings.TrimPrefix(p.ImportPath, module+"/")
		from, ok := layers[name]
		if !ok {
			t.Errorf("%s has no layer: place it in archtest's layers", name)
			continue
		}
		for _, imp := range p.Imports {
			dep, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if to, ok := layers[dep]; ok && to >= from {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go to lower layers only", name, from, dep, to)
			}
		}
	}
}

// The server is transport only: `go list -deps ./internal/server` shows no
// service.
func TestServerLinksNoService(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != module+"/internal/server" {
			continue
		}
		for _, d := range p.Deps {
			for _, s := range services {
				if d == module+"/"+s {
					t.Errorf("internal/server depends on %s", s)
				}
			}
		}
		return
	}
	t.Fatal("internal/server not found")
}
