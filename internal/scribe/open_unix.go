//go:build unix

package scribe

import (
	"os"
	"syscall"
)

// openFlags open without blocking: a FIFO that took the place of a file
// since the walk saw it would otherwise block the open until a writer came.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK
