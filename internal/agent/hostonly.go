package agent

import (
	"log"
	"net"

	"github.com/mdlayher/vsock"
)

// hostCID is VMADDR_CID_HOST: connections from the host (Firecracker's
// hybrid vsock muxer included) come from it.
const hostCID = 2

// HostOnly wraps a vsock listener so only the host's connections are
// served. The agent runs commands as root: a process inside the guest
// reaching it over vsock loopback (CID 1, or the guest's own CID) would
// be a way to root, so such connections are closed at once.
func HostOnly(ln net.Listener, logger *log.Logger) net.Listener {
	return &hostOnly{Listener: ln, logger: logger}
}

type hostOnly struct {
	net.Listener
	logger *log.Logger
}

func (h *hostOnly) Accept() (net.Conn, error) {
	for {
		c, err := h.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if a, ok := c.RemoteAddr().(*vsock.Addr); ok && a.ContextID == hostCID {
			return c, nil
		}
		h.logger.Printf("vsock: refused a connection from %v: only the host (cid %d) may use the agent", c.RemoteAddr(), hostCID)
		c.Close()
	}
}
