package server

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// connLimiter is a net.Listener that bounds the connections it keeps open:
// max in all, and perAddr from one client address (trusted proxies, which
// carry many clients, are exempt from the latter). A connection over a bound
// is accepted and closed at once, so that it neither waits in the kernel's
// backlog, where it would delay the clients behind it, nor costs a
// goroutine. With the server's read and idle timeouts, this bounds what a
// flood of connections or a slow client can hold: perAddr connections, each
// for at most a timeout.
type connLimiter struct {
	net.Listener
	max, perAddr int
	exempt       []netip.Prefix
	log          *slog.Logger

	mu      sync.Mutex
	total   int
	byAddr  map[netip.Addr]int
	dropped int       // connections closed over a bound since lastLog
	lastLog time.Time // when the last warning about dropped connections was logged
}

func newConnLimiter(ln net.Listener, max, perAddr int, exempt []netip.Prefix, log *slog.Logger) *connLimiter {
	return &connLimiter{Listener: ln, max: max, perAddr: perAddr, exempt: exempt, log: log,
		byAddr: map[netip.Addr]int{}}
}

// Accept returns the next connection within the bounds.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		if l.admit(addr) {
			return &limitedConn{Conn: c, l: l, addr: addr}, nil
		}
		_ = c.Close()
	}
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

func (l *connLimiter) admit(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	limited := !slices.ContainsFunc(l.exempt, func(p netip.Prefix) bool { return p.Contains(addr) })
	if l.total >= l.max || limited && l.byAddr[addr] >= l.perAddr {
		l.dropped++
		if now := time.Now(); now.Sub(l.lastLog) >= 10*time.Second {
			l.log.Warn("API connections over the limit closed", "dropped", l.dropped, "open", l.total,
				"from", addr.String(), "open_from", l.byAddr[addr],
				"maxconnections", l.max, "maxconnectionsperaddress", l.perAddr)
			l.dropped, l.lastLog = 0, now
		}
		return false
	}
	l.total++
	l.byAddr[addr]++
	return true
}

func (l *connLimiter) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
		delete(l.byAddr, addr)
	}
}

// limitedConn gives its place back to its limiter when it is closed.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	addr netip.Addr
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.addr) })
	return err
}
