package file

import "syscall"

// openFlags open a file for reading without blocking on a FIFO that took
// its place since it was checked, and without updating its access time.
const openFlags = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC | syscall.O_NOATIME

// openFlagsFallback are used when openFlags are refused: O_NOATIME is
// allowed only to the file's owner (or a privileged process).
const openFlagsFallback = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
