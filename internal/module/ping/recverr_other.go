//go:build !linux

package ping

import "syscall"

// udpControl does nothing here: only ICMP port unreachable errors reach
// the socket.
func udpControl(string, string, syscall.RawConn) error { return nil }
