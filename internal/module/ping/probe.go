package ping

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Probe results.
const (
	ResultReply       = "reply"       // icmp: an echo reply came back
	ResultOpen        = "open"        // tcp: connected; udp: an answer came back
	ResultMaybeOpen   = "maybe open"  // udp: no answer before the timeout
	ResultClosed      = "closed"      // tcp: refused; udp: ICMP port unreachable
	ResultUnreachable = "unreachable" // an ICMP destination unreachable or time exceeded
	ResultTimeout     = "timeout"     // icmp, tcp: no answer before the timeout
	ResultError       = "error"       // the probe could not be sent
)

// Reached reports whether a probe result means the destination was
// reached.
func Reached(result string) bool {
	return result == ResultReply || result == ResultOpen || result == ResultMaybeOpen
}

// Elements are the elements of the module's result.
type Elements struct {
	// Destination is the destination as given.
	Destination string `json:"destination"`
	// Address is the IP address probed (the destination, or what its name
	// resolved to).
	Address string `json:"address,omitempty"`
	// Protocol, DestinationPort, Count and Timeout (in seconds) are the
	// parameters the probes used.
	Protocol        string  `json:"protocol"`
	DestinationPort int     `json:"destinationport,omitempty"`
	Count           int     `json:"count"`
	Timeout         float64 `json:"timeout"`
	// Reached is the number of probes that reached the destination.
	Reached int `json:"reached"`
	// Probes are the probes sent, in order.
	Probes []Probe `json:"probes"`
	// Error says why no probe could be sent (the name did not resolve).
	Error string `json:"error,omitempty"`
}

// Probe is the outcome of one probe.
type Probe struct {
	// Seq numbers the probes from 1.
	Seq int `json:"seq"`
	// Result is one of the Result constants.
	Result string `json:"result"`
	// Latency is how long the answer took, in milliseconds; absent for
	// timeouts and errors.
	Latency float64 `json:"latency,omitempty"`
	// Detail explains failures ("connection refused", "ICMP destination
	// unreachable (code 1) from 10.0.0.1").
	Detail string `json:"detail,omitempty"`
}

// Statistics are the statistics of the module's result.
type Statistics struct {
	Sent    int `json:"sent"`
	Reached int `json:"reached"`
	// MinLatency, AvgLatency and MaxLatency are over the probes that have
	// a latency, in milliseconds.
	MinLatency float64 `json:"minlatency"`
	AvgLatency float64 `json:"avglatency"`
	MaxLatency float64 `json:"maxlatency"`
	// ExecTime is how long the module ran, as a Go duration ("1.2s").
	ExecTime string `json:"exectime"`
}

// prober sends probes to one address.
type prober interface {
	probe(ctx context.Context, seq int) Probe
	close()
}

// Run resolves the destination and sends the probes.
func (r *runner) Run(ctx context.Context, _ module.Env) action.Result {
	start := time.Now()
	el := Elements{
		Destination: r.dest, Protocol: r.proto, DestinationPort: int(r.port),
		Count: r.count, Timeout: r.timeout.Seconds(), Probes: []Probe{},
	}
	res := action.Result{Success: true}
	addr, err := r.resolve(ctx)
	var p prober
	if err != nil {
		el.Error = err.Error()
	} else {
		el.Address = addr.String()
		p, err = r.newProber(addr)
		if err != nil {
			res.Success = false
			res.Errors = append(res.Errors, err.Error())
		}
	}
	if p != nil {
		for seq := 1; seq <= r.count && ctx.Err() == nil; seq++ {
			pr := p.probe(ctx, seq)
			if ctx.Err() != nil && !Reached(pr.Result) {
				break // the probe was cut short, not answered
			}
			el.Probes = append(el.Probes, pr)
		}
		p.close()
	}
	if ctx.Err() != nil {
		res.Success = false
		res.Errors = append(res.Errors, fmt.Sprintf("interrupted after %d of %d probes: %v", len(el.Probes), r.count, context.Cause(ctx)))
	}
	st := Statistics{Sent: len(el.Probes), MinLatency: math.Inf(1)}
	n := 0
	for _, pr := range el.Probes {
		if Reached(pr.Result) {
			el.Reached++
		}
		if pr.Latency > 0 {
			n++
			st.AvgLatency += pr.Latency
			st.MinLatency = min(st.MinLatency, pr.Latency)
			st.MaxLatency = max(st.MaxLatency, pr.Latency)
		}
	}
	if n > 0 {
		st.AvgLatency = round3(st.AvgLatency / float64(n))
	} else {
		st.MinLatency = 0
	}
	st.Reached = el.Reached
	st.ExecTime = time.Since(start).String()
	res.FoundAnything = el.Reached > 0
	if res.Elements, err = json.Marshal(el); err != nil {
		return module.FailResult(fmt.Sprintf("encoding elements: %v", err))
	}
	if res.Statistics, err = json.Marshal(st); err != nil {
		return module.FailResult(fmt.Sprintf("encoding statistics: %v", err))
	}
	return res
}

// resolver resolves host names; tests replace it with one that never
// leaves the machine.
var resolver = net.DefaultResolver

// resolve returns the address to probe.
func (r *runner) resolve(ctx context.Context) (netip.Addr, error) {
	if r.addr.IsValid() {
		return r.addr, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	addrs, err := resolver.LookupNetIP(ctx, "ip", r.dest)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolving %s: %w", r.dest, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolving %s: no address", r.dest)
	}
	return addrs[0].Unmap(), nil
}

func (r *runner) newProber(addr netip.Addr) (prober, error) {
	switch r.proto {
	case ProtoTCP:
		return &tcpProber{dst: netip.AddrPortFrom(addr, r.port), timeout: r.timeout}, nil
	case ProtoUDP:
		return &udpProber{dst: netip.AddrPortFrom(addr, r.port), timeout: r.timeout}, nil
	default:
		return newICMPProber(addr, r.timeout, true)
	}
}

// ms converts a duration to milliseconds, with microsecond precision and
// never 0 for an answer.
func ms(d time.Duration) float64 {
	return max(round3(float64(d)/float64(time.Millisecond)), 0.001)
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// deadline is when a probe started at start gives up.
func deadline(ctx context.Context, start time.Time, timeout time.Duration) time.Time {
	d := start.Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// failure turns a probe error into a result.
func failure(seq int, err error, elapsed time.Duration, timeout time.Duration) Probe {
	var ne net.Error
	switch {
	case isRefused(err):
		return Probe{Seq: seq, Result: ResultClosed, Latency: ms(elapsed), Detail: "connection refused"}
	case isUnreachable(err):
		return Probe{Seq: seq, Result: ResultUnreachable, Latency: ms(elapsed), Detail: errnoText(err)}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return Probe{Seq: seq, Result: ResultTimeout, Detail: "no answer in " + timeout.String()}
	}
	return Probe{Seq: seq, Result: ResultError, Detail: err.Error()}
}

// errnoText is the system's text of the errno inside err, or err's text.
func errnoText(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// tcpProber connects.
type tcpProber struct {
	dst     netip.AddrPort
	timeout time.Duration
}

func (p *tcpProber) probe(ctx context.Context, seq int) Probe {
	start := time.Now()
	ctx, cancel := context.WithDeadline(ctx, deadline(ctx, start, p.timeout))
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.dst.String())
	elapsed := time.Since(start)
	if err != nil {
		return failure(seq, err, elapsed, p.timeout)
	}
	c.Close()
	return Probe{Seq: seq, Result: ResultOpen, Latency: ms(elapsed)}
}

func (p *tcpProber) close() {}

// udpProber sends a datagram on a connected socket and waits for an
// answer or an error.
type udpProber struct {
	dst     netip.AddrPort
	timeout time.Duration
}

// udpPayload is what UDP probes carry.
var udpPayload = []byte("mig ping\n")

func (p *udpProber) probe(ctx context.Context, seq int) Probe {
	start := time.Now()
	end := deadline(ctx, start, p.timeout)
	d := net.Dialer{Control: udpControl}
	c, err := d.DialContext(ctx, "udp", p.dst.String())
	if err != nil {
		return failure(seq, err, time.Since(start), p.timeout)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	if err := c.SetReadDeadline(end); err != nil {
		return Probe{Seq: seq, Result: ResultError, Detail: err.Error()}
	}
	start = time.Now()
	if _, err := c.Write(udpPayload); err != nil {
		return failure(seq, err, time.Since(start), p.timeout)
	}
	buf := make([]byte, 1500)
	_, err = c.Read(buf)
	elapsed := time.Since(start)
	if err == nil {
		return Probe{Seq: seq, Result: ResultOpen, Latency: ms(elapsed), Detail: "answered"}
	}
	pr := failure(seq, err, elapsed, p.timeout)
	if pr.Result == ResultTimeout {
		pr.Result = ResultMaybeOpen
		pr.Detail = "no answer and no ICMP error in " + p.timeout.String()
	}
	return pr
}

func (p *udpProber) close() {}

// icmpProber sends echo requests on one ICMP socket.
type icmpProber struct {
	conn       *icmp.PacketConn
	dst        netip.Addr
	privileged bool // a raw socket: sees every ICMP message, IDs are ours
	proto      int  // 1 or 58
	id         int
	timeout    time.Duration
	token      [8]byte
	buf        []byte
}

// newICMPProber opens a raw ICMP socket when allowRaw is set and raw
// sockets are allowed, else an unprivileged datagram one.
func newICMPProber(dst netip.Addr, timeout time.Duration, allowRaw bool) (*icmpProber, error) {
	p := &icmpProber{dst: dst, timeout: timeout, buf: make([]byte, 1500)}
	rawNet, dgramNet, listen := "ip4:icmp", "udp4", "0.0.0.0"
	p.proto = 1
	if dst.Is6() {
		rawNet, dgramNet, listen = "ip6:ipv6-icmp", "udp6", "::"
		p.proto = 58
	}
	var rnd [10]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("icmp: random identifier: %w", err)
	}
	p.id = int(binary.BigEndian.Uint16(rnd[:2]))
	copy(p.token[:], rnd[2:])
	rawErr := errors.New("not tried")
	if allowRaw {
		var c *icmp.PacketConn
		if c, rawErr = icmp.ListenPacket(rawNet, listen); rawErr == nil {
			p.conn, p.privileged = c, true
			return p, nil
		}
	}
	c, dgramErr := icmp.ListenPacket(dgramNet, listen)
	if dgramErr != nil {
		return nil, fmt.Errorf("icmp: no raw socket (%v; run as root or with CAP_NET_RAW) and no unprivileged ICMP socket (%v; on Linux, see net.ipv4.ping_group_range)",
			rawErr, dgramErr)
	}
	p.conn = c
	return p, nil
}

func (p *icmpProber) close() { p.conn.Close() }

func (p *icmpProber) probe(ctx context.Context, seq int) Probe {
	var typ icmp.Type = ipv4.ICMPTypeEcho
	if p.proto == 58 {
		typ = ipv6.ICMPTypeEchoRequest
	}
	data := make([]byte, 16)
	copy(data, p.token[:])
	start := time.Now()
	binary.BigEndian.PutUint64(data[8:], uint64(start.UnixNano()))
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: p.id, Seq: seq & 0xffff, Data: data}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return Probe{Seq: seq, Result: ResultError, Detail: err.Error()}
	}
	var dst net.Addr = &net.IPAddr{IP: p.dst.AsSlice()}
	if !p.privileged {
		dst = &net.UDPAddr{IP: p.dst.AsSlice()}
	}
	stop := context.AfterFunc(ctx, func() { _ = p.conn.SetReadDeadline(time.Now()) })
	defer stop()
	if err := p.conn.SetReadDeadline(deadline(ctx, start, p.timeout)); err != nil {
		return Probe{Seq: seq, Result: ResultError, Detail: err.Error()}
	}
	if _, err := p.conn.WriteTo(b, dst); err != nil {
		return failure(seq, err, time.Since(start), p.timeout)
	}
	for {
		n, peer, err := p.conn.ReadFrom(p.buf)
		if err != nil {
			return failure(seq, err, time.Since(start), p.timeout)
		}
		if pr, ok := p.match(p.buf[:n], peer, seq, data); ok {
			if pr.Latency == 0 {
				pr.Latency = ms(time.Since(start))
			}
			return pr
		}
	}
}

// match reports whether an ICMP message answers probe seq with data: an
// echo reply from the destination, or (raw sockets only) an error about
// the probe.
func (p *icmpProber) match(b []byte, peer net.Addr, seq int, data []byte) (Probe, bool) {
	m, err := icmp.ParseMessage(p.proto, b)
	if err != nil {
		return Probe{}, false
	}
	from := addrOf(peer)
	switch body := m.Body.(type) {
	case *icmp.Echo:
		if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
			return Probe{}, false
		}
		if from != p.dst || body.Seq != seq&0xffff || !bytes.Equal(body.Data, data) || (p.privileged && body.ID != p.id) {
			return Probe{}, false
		}
		return Probe{Seq: seq, Result: ResultReply}, true
	case *icmp.DstUnreach:
		if p.privileged && p.quotes(body.Data, seq) {
			return Probe{Seq: seq, Result: ResultUnreachable,
				Detail: fmt.Sprintf("ICMP destination unreachable (code %d) from %s", m.Code, from)}, true
		}
	case *icmp.TimeExceeded:
		if p.privileged && p.quotes(body.Data, seq) {
			return Probe{Seq: seq, Result: ResultUnreachable,
				Detail: fmt.Sprintf("ICMP time exceeded (code %d) from %s", m.Code, from)}, true
		}
	}
	return Probe{}, false
}

// quotes reports whether the original datagram quoted in an ICMP error is
// our echo request seq to the destination.
func (p *icmpProber) quotes(orig []byte, seq int) bool {
	var dst netip.Addr
	var icmpHdr []byte
	if p.proto == 1 {
		if len(orig) < 20 || orig[0]>>4 != 4 {
			return false
		}
		ihl := int(orig[0]&0x0f) * 4
		if ihl < 20 || len(orig) < ihl+8 || orig[9] != 1 {
			return false
		}
		dst = netip.AddrFrom4([4]byte(orig[16:20]))
		icmpHdr = orig[ihl : ihl+8]
		if icmpHdr[0] != byte(ipv4.ICMPTypeEcho) {
			return false
		}
	} else {
		if len(orig) < 48 || orig[0]>>4 != 6 || orig[6] != 58 {
			return false
		}
		dst = netip.AddrFrom16([16]byte(orig[24:40]))
		icmpHdr = orig[40:48]
		if icmpHdr[0] != byte(ipv6.ICMPTypeEchoRequest) {
			return false
		}
	}
	return dst == p.dst && int(binary.BigEndian.Uint16(icmpHdr[4:6])) == p.id &&
		int(binary.BigEndian.Uint16(icmpHdr[6:8])) == seq&0xffff
}

// addrOf returns the IP address of a peer.
func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	default:
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// describe is the destination as printed: "10.0.0.1", "[2001:db8::1]:53",
// "db.example.net:5432 (10.0.0.5)".
func describe(el Elements) string {
	s := el.Destination
	if el.DestinationPort != 0 {
		s = net.JoinHostPort(s, strconv.Itoa(el.DestinationPort))
	}
	if el.Address != "" && el.Address != el.Destination {
		s += " (" + el.Address + ")"
	}
	return s
}
