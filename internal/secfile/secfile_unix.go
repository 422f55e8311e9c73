//go:build unix

package secfile

import (
	"io/fs"
	"os"
	"syscall"
)

const enabled = true

// foreignOwner returns the owner of a file when it is neither the
// program's effective user nor, if rootOK, root.
func foreignOwner(fi fs.FileInfo, rootOK bool) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	if int(st.Uid) == os.Geteuid() || (rootOK && st.Uid == 0) {
		return 0, false
	}
	return st.Uid, true
}
