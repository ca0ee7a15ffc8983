package main

import "testing"

func TestTailWriterKeepsTheEnd(t *testing.T) {
	w := &tailWriter{max: 5}
	w.Write([]byte("abc"))
	w.Write([]byte("defgh"))
	if string(w.buf) != "defgh" || !w.dropped {
		t.Errorf("tail %q dropped %v; want defgh, true", w.buf, w.dropped)
	}
}
