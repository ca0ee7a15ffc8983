package privhelper

import (
	"os"
	"syscall"
)

func ownerOf(st os.FileInfo) int {
	if st == nil {
		return -1
	}
	return int(st.Sys().(*syscall.Stat_t).Uid)
}
