package hostnet

import (
	"context"
	"errors"
	"net/netip"
)

// Helper is the subset of privhelper.Helper this package drives (declared
// here so hostnet does not import privhelper, which imports hostnet).
type Helper interface {
	BridgeDelete(ctx context.Context, name string) error
	TapDel(ctx context.Context, name string) error
	NATRemove(ctx context.Context, bridge string) error
	DNSRegister(ctx context.Context, bridge string, addr netip.Addr, domain string) error
	DNSUnregister(ctx context.Context, bridge string) error
	DNSRedirectRemove(ctx context.Context, bridge string) error
}

// RegisterResolved asks the helper to route `*.domain` queries to addr via
// the bridge in systemd-resolved. ErrResolvedAbsent (wrapped) means skipped.
func RegisterResolved(ctx context.Context, h Helper, bridge string, addr netip.Addr, domain string) error {
	return h.DNSRegister(ctx, bridge, addr, domain)
}

// UnregisterResolved undoes RegisterResolved.
func UnregisterResolved(ctx context.Context, h Helper, bridge string) error {
	return h.DNSUnregister(ctx, bridge)
}

// Teardown removes the taps, banger's NAT, the guests' DNS redirect, the DNS
// registration and the bridge, in that order, continuing past failures. It returns what it removed
// (each delete is idempotent, so a name means "no longer there") and every
// failure joined.
func Teardown(ctx context.Context, h Helper, bridge string, taps []string) ([]string, error) {
	var removed []string
	var errs []error
	for _, t := range taps {
		if err := h.TapDel(ctx, t); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "tap "+t)
	}
	if err := h.NATRemove(ctx, bridge); err != nil {
		errs = append(errs, err)
	} else {
		removed = append(removed, "nat")
	}
	if err := h.DNSRedirectRemove(ctx, bridge); err != nil {
		errs = append(errs, err)
	} else {
		removed = append(removed, "dns redirect")
	}
	if err := h.DNSUnregister(ctx, bridge); err != nil {
		if !errors.Is(err, ErrResolvedAbsent) {
			errs = append(errs, err)
		}
	} else {
		removed = append(removed, "dns "+bridge)
	}
	if err := h.BridgeDelete(ctx, bridge); err != nil {
		errs = append(errs, err)
	} else {
		removed = append(removed, "bridge "+bridge)
	}
	return removed, errors.Join(errs...)
}
