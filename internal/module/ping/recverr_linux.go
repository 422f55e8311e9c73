//go:build linux

package ping

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// udpControl asks Linux for every ICMP error about a UDP probe's socket
// (IP_RECVERR), so that a host or network unreachable is reported to the
// socket, not only a port unreachable.
func udpControl(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if network == "udp6" {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}
