//go:build unix

package agent

import (
	"io/fs"
	"os"
	"syscall"
)

const checksModes = true

// foreignOwner returns the owner of a file when it is not the agent's
// effective user.
func foreignOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	if int(st.Uid) != os.Geteuid() {
		return st.Uid, true
	}
	return 0, false
}
