//go:build linux

package netstat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// netlinkTimeout bounds each receive of a netlink dump.
const netlinkTimeout = 5 * time.Second

// maxNetlinkMessages bounds the messages of one dump.
const maxNetlinkMessages = 1 << 20

var netlinkSeq atomic.Uint32

// netlinkDump sends an rtnetlink dump request of type typ for family, with
// a zeroed request body of bodyLen bytes, and returns the answer's
// messages. The socket belongs to the network namespace of the calling OS
// thread.
func netlinkDump(typ uint16, family uint8, bodyLen int) ([]nlMessage, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(netlinkTimeout.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return nil, fmt.Errorf("netlink receive timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	seq := netlinkSeq.Add(1)
	req := make([]byte, nlmsgHdrLen+bodyLen)
	binary.NativeEndian.PutUint32(req[0:4], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:6], typ)
	binary.NativeEndian.PutUint16(req[6:8], nlmFRequest|nlmFDump)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	req[nlmsgHdrLen] = family
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink request: %w", err)
	}
	var out []nlMessage
	buf := make([]byte, 64<<10)
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		msgs, done, err := parseNetlink(buf[:n], seq)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			out = append(out, nlMessage{typ: m.typ, body: bytes.Clone(m.body)})
		}
		if done {
			return out, nil
		}
		if len(out) > maxNetlinkMessages {
			return nil, fmt.Errorf("netlink dump is over %d messages", maxNetlinkMessages)
		}
	}
}

// dumpLinks returns the interfaces of the calling thread's namespace by
// index.
func dumpLinks() (map[int32]link, error) {
	msgs, err := netlinkDump(rtmGetLink, unix.AF_UNSPEC, ifInfoMsgLen)
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	links := map[int32]link{}
	for _, m := range msgs {
		if m.typ != rtmNewLink {
			continue
		}
		l, err := parseLink(m)
		if err != nil {
			return nil, fmt.Errorf("listing interfaces: %w", err)
		}
		links[l.index] = l
	}
	return links, nil
}

// dumpAddrs returns the interface addresses of the calling thread's
// namespace.
func dumpAddrs() ([]ifAddr, error) {
	msgs, err := netlinkDump(rtmGetAddr, unix.AF_UNSPEC, ifAddrMsgLen)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var out []ifAddr
	for _, m := range msgs {
		if m.typ != rtmNewAddr {
			continue
		}
		a, err := parseAddr(m)
		if err != nil {
			return nil, fmt.Errorf("listing addresses: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}

// dumpNeighbours6 returns the IPv6 neighbour (NDP) entries of the calling
// thread's namespace that have a link-layer address.
func dumpNeighbours6(links map[int32]link) ([]neighbour, error) {
	msgs, err := netlinkDump(rtmGetNeigh, unix.AF_INET6, ndMsgLen)
	if err != nil {
		return nil, fmt.Errorf("listing IPv6 neighbours: %w", err)
	}
	var out []neighbour
	for _, m := range msgs {
		if m.typ != rtmNewNeigh {
			continue
		}
		n, err := parseNeigh(m)
		if err != nil {
			return nil, fmt.Errorf("listing IPv6 neighbours: %w", err)
		}
		// Like "ip neigh", leave out entries without an address and the
		// NOARP entries of multicast and point-to-point links.
		if n.mac == "" || n.state&(nudIncomplete|nudFailed|nudNoARP) != 0 {
			continue
		}
		name := links[n.index].name
		if name == "" {
			name = fmt.Sprintf("if%d", n.index)
		}
		out = append(out, neighbour{ip: n.ip, mac: n.mac, iface: name, state: stateName(n.state)})
	}
	return out, nil
}

// inNetns runs fn on an OS thread that has entered the network namespace
// of nsPath (a /proc/<pid>/ns/net link or a /run/netns bind mount), and
// waits for it. The thread goes back to its own namespace afterwards; if
// it cannot, its goroutine ends still locked to it, so that the Go runtime
// never runs anything else on a thread left in another namespace.
func inNetns(nsPath string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			}
		}()
		own, err := os.Open(filepath.Join(procRoot, "thread-self", "ns", "net"))
		if err != nil {
			restored = true
			errc <- fmt.Errorf("entering namespace: own namespace: %w", err)
			return
		}
		defer own.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			restored = true
			errc <- fmt.Errorf("entering namespace: %w", err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			restored = true
			errc <- fmt.Errorf("entering namespace %s: setns: %w", nsPath, err)
			return
		}
		ferr := fn()
		restored = unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil
		errc <- ferr
	}()
	return <-errc
}
