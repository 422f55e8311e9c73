//go:build !unix

package pkgdb

import "os"

// openFlags open read-only; other systems have no FIFO in the file system
// to block on.
const openFlags = os.O_RDONLY
