//go:build unix

package fleet

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's soft limit on open files to its hard
// limit and returns the new soft limit. Each simulated agent holds one open
// file (its relay connection).
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open files limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("raise the open files limit to %d: %w", lim.Max, err)
		}
	}
	return uint64(lim.Cur), nil
}
