//go:build unix && !linux

package file

import "syscall"

// openFlags open a file for reading without blocking on a FIFO that took
// its place since it was checked.
const openFlags = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC

// openFlagsFallback are the same as openFlags on this system.
const openFlagsFallback = openFlags
