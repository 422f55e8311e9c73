//go:build windows

package ping

import (
	"errors"
	"syscall"
)

// Winsock error codes.
const (
	wsaeConnReset   syscall.Errno = 10054 // UDP: an ICMP port unreachable came back
	wsaeConnRefused syscall.Errno = 10061
	wsaeNetUnreach  syscall.Errno = 10051
	wsaeHostUnreach syscall.Errno = 10065
)

// isRefused reports whether err is a refused connection: a TCP reset, or
// an ICMP port unreachable for UDP, which Windows reports as a reset.
func isRefused(err error) bool {
	return errors.Is(err, wsaeConnRefused) || errors.Is(err, wsaeConnReset)
}

// isUnreachable reports whether err says the host or network cannot be
// reached.
func isUnreachable(err error) bool {
	return errors.Is(err, wsaeHostUnreach) || errors.Is(err, wsaeNetUnreach)
}
