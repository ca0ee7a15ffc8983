// Package splice joins two byte streams: a CLI's upgraded daemon
// connection and a guest agent stream, a forwarded TCP connection and the
// guest's.
package splice

import "io"

// Join copies both ways between a and b until both directions end. The end
// of one direction is passed on as a half-close where the destination has
// CloseWrite, else by closing it. It returns the bytes copied a->b and b->a.
func Join(a, b io.ReadWriter) (aToB, bToA int64) {
	done := make(chan struct{}, 1)
	go func() {
		bToA = pump(a, b)
		done <- struct{}{}
	}()
	aToB = pump(b, a)
	<-done
	return aToB, bToA
}

func pump(dst io.Writer, src io.Reader) int64 {
	n, _ := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	} else if c, ok := dst.(io.Closer); ok {
		_ = c.Close()
	}
	return n
}
