package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	"github.com/banger-dev/banger/internal/hostnet"
)

// testHelper stands in for the privileged helper in this package's tests,
// so no test touches the host: it records the calls, refuses what a test
// did not expect, and applies DNS redirects with fw (a firewall inside a
// test's network namespace) when set.
type testHelper struct {
	fw     *hostnet.Firewall
	subnet netip.Prefix

	mu    sync.Mutex
	calls []string
}

func (h *testHelper) rec(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, fmt.Sprintf(format, args...))
}

func (h *testHelper) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

func (h *testHelper) unexpected(verb string) error {
	h.rec("%s (unexpected)", verb)
	return fmt.Errorf("test helper: %s not expected", verb)
}

func (h *testHelper) BridgeEnsure(context.Context, string, netip.Prefix) error {
	return h.unexpected("bridge-ensure")
}
func (h *testHelper) BridgeDelete(context.Context, string) error {
	return h.unexpected("bridge-delete")
}
func (h *testHelper) TapAdd(context.Context, string, string, int) error {
	return h.unexpected("tap-add")
}
func (h *testHelper) TapDel(context.Context, string) error { return h.unexpected("tap-del") }
func (h *testHelper) NATEnsure(context.Context, netip.Prefix, string) error {
	return h.unexpected("nat-ensure")
}
func (h *testHelper) NATRemove(context.Context, string) error { return h.unexpected("nat-remove") }
func (h *testHelper) SocketReclaim(context.Context, string, int) error {
	return h.unexpected("socket-reclaim")
}
func (h *testHelper) DNSRegister(_ context.Context, bridge string, addr netip.Addr, domain string) error {
	h.rec("dns-register %s %s %s", bridge, addr, domain)
	return nil
}
func (h *testHelper) DNSUnregister(_ context.Context, bridge string) error {
	h.rec("dns-unregister %s", bridge)
	return nil
}
func (h *testHelper) DNSRedirect(ctx context.Context, bridge string, port int) error {
	h.rec("dns-redirect %s %d", bridge, port)
	if h.fw == nil {
		return nil
	}
	return h.fw.EnsureDNSRedirect(ctx, hostnet.DNSRedirect{Bridge: bridge, Gateway: hostnet.Gateway(h.subnet), Port: port})
}
func (h *testHelper) DNSRedirectRemove(ctx context.Context, bridge string) error {
	h.rec("dns-redirect-remove %s", bridge)
	if h.fw == nil {
		return nil
	}
	return h.fw.RemoveDNSRedirect(ctx, bridge)
}
