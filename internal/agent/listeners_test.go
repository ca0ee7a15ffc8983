package agent

import (
	"reflect"
	"testing"

	"github.com/banger-dev/banger/internal/agentproto"
)

func TestParseListeners(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   4: garbage
   5: ZZZZZZZZ:1F90 00000000:0000 0A
`
	want := []agentproto.Listener{{Addr: "0.0.0.0", Port: 22}, {Addr: "127.0.0.1", Port: 8080}}
	if got := parseListeners([]byte(tcp)); !reflect.DeepEqual(got, want) {
		t.Errorf("tcp: %+v, want %+v", got, want)
	}
	tcp6 := `  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A
   1: 00000000000000000000000001000000:1F92 00000000000000000000000000000000:0000 0A
`
	want = []agentproto.Listener{{Addr: "::", Port: 8081}, {Addr: "::1", Port: 8082}}
	if got := parseListeners([]byte(tcp6)); !reflect.DeepEqual(got, want) {
		t.Errorf("tcp6: %+v, want %+v", got, want)
	}
}
