package netstat

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/migplatform/mig/internal/module"
)

// Parameters are the netstat module's JSON parameters (MIG's field names).
// See the package documentation.
type Parameters struct {
	// LocalMAC are regexes on the MACs of local interfaces.
	LocalMAC []string `json:"localmac,omitempty"`
	// NeighborMAC are regexes on the MACs of neighbour table entries.
	NeighborMAC []string `json:"neighbormac,omitempty"`
	// LocalIP are IPs or CIDRs of local interface addresses.
	LocalIP []string `json:"localip,omitempty"`
	// NeighborIP are IPs or CIDRs of neighbour table entries.
	NeighborIP []string `json:"neighborip,omitempty"`
	// ConnectedIP are IPs or CIDRs of the remote end of sockets.
	ConnectedIP []string `json:"connectedip,omitempty"`
	// ListeningPort are ports of listening sockets, 1 to 65535.
	ListeningPort []int `json:"listeningport,omitempty"`
	// SearchNamespaces also searches the other network namespaces.
	SearchNamespaces bool `json:"searchnamespaces,omitempty"`
}

// macSearch is one compiled MAC regex.
type macSearch struct {
	value string
	re    *regexp.Regexp
}

// ipSearch is one parsed IP or CIDR.
type ipSearch struct {
	value  string
	prefix netip.Prefix
}

// contains reports whether a, or the IPv4 address a maps, is inside the
// search's prefix.
func (s ipSearch) contains(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.WithZone("")
	return s.prefix.Contains(a) || (a.Is4In6() && s.prefix.Contains(a.Unmap()))
}

// portSearch is one listening port.
type portSearch struct {
	value string
	port  uint16
}

// runner is a validated set of searches; it implements module.Runner.
type runner struct {
	localMAC, neighborMAC          []macSearch
	localIP, neighborIP, connected []ipSearch
	listening                      []portSearch
	namespaces                     bool
}

func (r *runner) needInterfaces() bool { return len(r.localMAC)+len(r.localIP) > 0 }
func (r *runner) needNeighbours() bool { return len(r.neighborMAC)+len(r.neighborIP) > 0 }
func (r *runner) needSockets() bool    { return len(r.connected)+len(r.listening) > 0 }

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
	r := &runner{namespaces: p.SearchNamespaces}
	for _, l := range []struct {
		field string
		n     int
	}{
		{"localmac", len(p.LocalMAC)}, {"neighbormac", len(p.NeighborMAC)},
		{"localip", len(p.LocalIP)}, {"neighborip", len(p.NeighborIP)},
		{"connectedip", len(p.ConnectedIP)}, {"listeningport", len(p.ListeningPort)},
	} {
		if l.n > MaxValues {
			return nil, paramErrorf(l.field, "%s has %d values, over the limit of %d", l.field, l.n, MaxValues)
		}
	}
	var err error
	if r.localMAC, err = compileMACs("localmac", p.LocalMAC); err != nil {
		return nil, err
	}
	if r.neighborMAC, err = compileMACs("neighbormac", p.NeighborMAC); err != nil {
		return nil, err
	}
	if r.localIP, err = parseIPs("localip", p.LocalIP); err != nil {
		return nil, err
	}
	if r.neighborIP, err = parseIPs("neighborip", p.NeighborIP); err != nil {
		return nil, err
	}
	if r.connected, err = parseIPs("connectedip", p.ConnectedIP); err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for _, port := range p.ListeningPort {
		if port < 1 || port > 65535 {
			return nil, paramErrorf("listeningport", "listeningport %d is out of range (want 1 to 65535)", port)
		}
		if !seen[port] {
			seen[port] = true
			r.listening = append(r.listening, portSearch{value: strconv.Itoa(port), port: uint16(port)})
		}
	}
	if !r.needInterfaces() && !r.needNeighbours() && !r.needSockets() {
		return nil, fmt.Errorf("no search: give at least one of localmac, neighbormac, localip, neighborip, connectedip, listeningport")
	}
	return r, nil
}

// compileMACs compiles MAC regexes, case-insensitively, dropping
// duplicates.
func compileMACs(field string, values []string) ([]macSearch, error) {
	var out []macSearch
	seen := map[string]bool{}
	for _, v := range values {
		switch {
		case v == "":
			return nil, paramErrorf(field, "%s regex is empty (use \".\" to match every MAC)", field)
		case len(v) > MaxRegexLen:
			return nil, paramErrorf(field, "%s regex %.32q... is %d bytes long, over the limit of %d", field, v, len(v), MaxRegexLen)
		}
		if _, err := regexp.Compile(v); err != nil {
			return nil, paramErrorf(field, "%s regex %q does not compile: %w", field, v, err)
		}
		re, err := regexp.Compile("(?i)" + v)
		if err != nil {
			return nil, paramErrorf(field, "%s regex %q does not compile case-insensitively: %w", field, v, err)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, macSearch{value: v, re: re})
		}
	}
	return out, nil
}

// parseIPs parses IPs and CIDRs, dropping duplicates.
func parseIPs(field string, values []string) ([]ipSearch, error) {
	var out []ipSearch
	seen := map[string]bool{}
	for _, v := range values {
		prefix, err := parseIPOrCIDR(v)
		if err != nil {
			return nil, paramErrorf(field, "%s %q: %w", field, v, err)
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, ipSearch{value: v, prefix: prefix})
		}
	}
	return out, nil
}

// parseIPOrCIDR parses "10.1.2.3", "10.0.0.0/8", "fe80::1" or "fd00::/8"
// into a masked prefix.
func parseIPOrCIDR(v string) (netip.Prefix, error) {
	if strings.Contains(v, "%") {
		return netip.Prefix{}, fmt.Errorf("IPv6 zones are not supported")
	}
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not an IP or CIDR: %w", err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP or CIDR: %w", err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// paramErrorf returns a *module.ParamError for key with the formatted
// text.
func paramErrorf(key, format string, args ...any) error {
	return &module.ParamError{Key: key, Err: fmt.Errorf(format, args...)}
}
