package agent

import (
	"io"
	"log"
	"net"
	"testing"

	"github.com/mdlayher/vsock"
)

type fakeConn struct {
	net.Conn
	remote net.Addr
	closed bool
}

func (c *fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c *fakeConn) Close() error         { c.closed = true; return nil }

type fakeListener struct {
	net.Listener
	conns []*fakeConn
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if len(l.conns) == 0 {
		return nil, net.ErrClosed
	}
	c := l.conns[0]
	l.conns = l.conns[1:]
	return c, nil
}

// Only the host's vsock connections reach the agent: a guest process on
// vsock loopback is closed before anything is read.
func TestHostOnly(t *testing.T) {
	local := &fakeConn{remote: &vsock.Addr{ContextID: 1, Port: 5000}}
	self := &fakeConn{remote: &vsock.Addr{ContextID: 3, Port: 5001}}
	host := &fakeConn{remote: &vsock.Addr{ContextID: 2, Port: 5002}}
	ln := HostOnly(&fakeListener{conns: []*fakeConn{local, self, host}}, log.New(io.Discard, "", 0))
	c, err := ln.Accept()
	if err != nil || c != host {
		t.Fatalf("Accept = %v, %v; want the host's connection", c, err)
	}
	if !local.closed || !self.closed || host.closed {
		t.Errorf("closed: loopback %v, own cid %v, host %v; want the first two only", local.closed, self.closed, host.closed)
	}
}
