// Package ping is MIG's ping module: it answers "which endpoints cannot
// reach this destination" by probing a host from every targeted agent with
// ICMP echo requests, TCP connections or UDP datagrams, and returns the
// latencies and failures of the probes.
//
// # Parameters
//
//	{"destination": "10.22.75.57",   // an IP address or a host name; required
//	 "protocol": "icmp",             // icmp, tcp or udp; required
//	 "destinationport": 443,         // tcp and udp only, and required there
//	 "count": 3,                     // probes, 1 to MaxCount (DefaultCount)
//	 "timeout": 5}                   // seconds per probe, up to MaxTimeout (DefaultTimeout)
//
// Probes are sent one after the other, each waiting for its answer or its
// timeout; count × timeout may not exceed MaxTotal. A host name is resolved
// on the agent, and the first address the resolver returns is probed.
//
// # Protocols
//
//   - icmp: an echo request. As root (or with CAP_NET_RAW) the module uses a
//     raw ICMP socket, and also reports "unreachable" when an ICMP
//     destination unreachable or time exceeded answers the probe; otherwise
//     it uses an unprivileged ICMP datagram socket where the system allows
//     them (Linux: net.ipv4.ping_group_range; macOS), where only replies
//     and timeouts can be seen.
//   - tcp: a full connect: "open" when it is accepted, "closed" when it is
//     refused (the host answered).
//   - udp: a datagram, then a wait for an answer: "open" when one comes,
//     "closed" on an ICMP port unreachable (connection refused),
//     "unreachable" on an ICMP host or network unreachable (Linux asks for
//     those with IP_RECVERR), and "maybe open" when nothing comes back
//     before the timeout, as MIG reported it.
//
// # Results
//
// Elements are an Elements, statistics a Statistics. A probe reached the
// destination when its result is "reply", "open" or "maybe open", and
// FoundAnything is true when any probe did, so "mig ping -show notfound"
// lists the agents that could not reach the destination. Success is false
// only when the module could not probe at all (no ICMP socket allowed) or
// was interrupted.
package ping

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "ping"

// Protocols.
const (
	ProtoICMP = "icmp"
	ProtoTCP  = "tcp"
	ProtoUDP  = "udp"
)

// Defaults and limits of the parameters.
const (
	DefaultCount   = 3
	DefaultTimeout = 5 * time.Second
	MaxCount       = 100
	MaxTimeout     = 60 * time.Second
	// MaxTotal bounds count × timeout.
	MaxTotal = 5 * time.Minute
	// MaxDestinationLen bounds a host name.
	MaxDestinationLen = 253
)

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid ping parameters")

func init() { module.Register(pingModule{}) }

// pingModule implements module.Module.
type pingModule struct{}

func (pingModule) Name() string { return Name }

func (pingModule) Summary() string {
	return "probe a destination with ICMP, TCP or UDP; return latencies and failures"
}

func (pingModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}

// Parameters are the ping module's JSON parameters (MIG's field names).
type Parameters struct {
	// Destination is an IP address or a host name.
	Destination string `json:"destination"`
	// DestinationPort is the port of tcp and udp probes.
	DestinationPort int `json:"destinationport,omitempty"`
	// Protocol is icmp, tcp or udp.
	Protocol string `json:"protocol"`
	// Count is the number of probes (DefaultCount when 0).
	Count int `json:"count,omitempty"`
	// Timeout is how long each probe waits, in seconds (DefaultTimeout
	// when 0).
	Timeout float64 `json:"timeout,omitempty"`
}

// runner is a validated set of parameters; it implements module.Runner.
type runner struct {
	dest    string
	addr    netip.Addr // when dest is an IP address
	proto   string
	port    uint16
	count   int
	timeout time.Duration
}

// ParseParameters decodes and validates the module's JSON parameters,
// refusing unknown fields, and returns their runner. Every error wraps
// ErrInvalidParameters and names the bad value.
func ParseParameters(raw []byte) (module.Runner, error) {
	r, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func parse(raw []byte) (*runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	r, err := compile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
	}
	return r, nil
}

func compile(p Parameters) (*runner, error) {
	r := &runner{dest: p.Destination, count: DefaultCount, timeout: DefaultTimeout}
	addr, err := checkDestination(p.Destination)
	if err != nil {
		return nil, &module.ParamError{Key: "destination", Err: err}
	}
	r.addr = addr
	r.proto = strings.ToLower(p.Protocol)
	switch r.proto {
	case ProtoICMP:
		if p.DestinationPort != 0 {
			return nil, paramErrorf("destinationport", "destinationport %d: icmp has no ports (use tcp or udp)", p.DestinationPort)
		}
	case ProtoTCP, ProtoUDP:
		if p.DestinationPort < 1 || p.DestinationPort > 65535 {
			return nil, paramErrorf("destinationport", "destinationport %d is out of range for %s (want 1 to 65535)", p.DestinationPort, r.proto)
		}
		r.port = uint16(p.DestinationPort)
	case "":
		return nil, paramErrorf("protocol", "no protocol (want icmp, tcp or udp)")
	default:
		return nil, paramErrorf("protocol", "protocol %q is not icmp, tcp or udp", p.Protocol)
	}
	if p.Count != 0 {
		if p.Count < 1 || p.Count > MaxCount {
			return nil, paramErrorf("count", "count %d is out of range (want 1 to %d)", p.Count, MaxCount)
		}
		r.count = p.Count
	}
	if p.Timeout != 0 {
		// Checked in seconds first, so that huge values do not overflow.
		if !(p.Timeout > 0) || p.Timeout > MaxTimeout.Seconds() {
			return nil, fmt.Errorf("timeout %gs is out of range (want more than 0 and at most %s)", p.Timeout, MaxTimeout)
		}
		r.timeout = time.Duration(p.Timeout * float64(time.Second))
		if r.timeout < time.Millisecond {
			return nil, fmt.Errorf("timeout %gs is under a millisecond", p.Timeout)
		}
	}
	if total := time.Duration(r.count) * r.timeout; total > MaxTotal {
		return nil, fmt.Errorf("count %d × timeout %s = %s is over the limit of %s", r.count, r.timeout, total, MaxTotal)
	}
	return r, nil
}

// checkDestination checks an IP address or a host name. It returns the
// address when dest is one.
func checkDestination(dest string) (netip.Addr, error) {
	switch {
	case dest == "":
		return netip.Addr{}, fmt.Errorf("no destination")
	case len(dest) > MaxDestinationLen:
		return netip.Addr{}, fmt.Errorf("destination %.32q... is %d characters long, over the limit of %d", dest, len(dest), MaxDestinationLen)
	}
	if a, err := netip.ParseAddr(dest); err == nil {
		switch {
		case a.Zone() != "":
			return netip.Addr{}, fmt.Errorf("destination %q: IPv6 zones are not supported", dest)
		case a.IsUnspecified():
			return netip.Addr{}, fmt.Errorf("destination %q is the unspecified address", dest)
		case a.IsMulticast():
			return netip.Addr{}, fmt.Errorf("destination %q is a multicast address", dest)
		}
		return a.Unmap(), nil
	}
	if strings.Trim(dest, "0123456789.") == "" || strings.Contains(dest, ":") {
		return netip.Addr{}, fmt.Errorf("destination %q is not a valid IP address", dest)
	}
	name := strings.TrimSuffix(dest, ".")
	for _, label := range strings.Split(name, ".") {
		if err := checkLabel(label); err != nil {
			return netip.Addr{}, fmt.Errorf("destination %q is not an IP address or a host name: %w", dest, err)
		}
	}
	return netip.Addr{}, nil
}

// checkLabel checks one label of a host name: letters, digits, '-' and
// '_', 1 to 63 of them, not starting or ending with '-'.
func checkLabel(label string) error {
	if label == "" || len(label) > 63 {
		return fmt.Errorf("label %q is empty or over 63 characters", label)
	}
	if label[0] == '-' || label[len(label)-1] == '-' {
		return fmt.Errorf("label %q starts or ends with '-'", label)
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("label %q has the character %q", label, c)
		}
	}
	return nil
}

// paramErrorf returns a *module.ParamError for key with the formatted
// text.
func paramErrorf(key, format string, args ...any) error {
	return &module.ParamError{Key: key, Err: fmt.Errorf(format, args...)}
}
