//go:build !windows

package ping

import (
	"errors"
	"syscall"
)

// isRefused reports whether err is a refused connection: a TCP reset, or
// an ICMP port unreachable for UDP.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

// isUnreachable reports whether err says the host or network cannot be
// reached.
func isUnreachable(err error) bool {
	return errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}
