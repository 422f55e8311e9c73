//go:build unix

package pkgdb

import (
	"os"
	"syscall"
)

// openFlags open without blocking: a FIFO planted where a database is
// expected would otherwise block the open until a writer came.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK
