package netstat

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Elements are the elements of the module's result: for each kind of
// search, the matches of each searched value, keyed by the value as given
// (a listening port in decimal). Every searched value has an entry, empty
// when it matched nothing; kinds that were not searched are absent.
type Elements struct {
	LocalMAC      map[string][]Element `json:"localmac,omitempty"`
	NeighborMAC   map[string][]Element `json:"neighbormac,omitempty"`
	LocalIP       map[string][]Element `json:"localip,omitempty"`
	NeighborIP    map[string][]Element `json:"neighborip,omitempty"`
	ConnectedIP   map[string][]Element `json:"connectedip,omitempty"`
	ListeningPort map[string][]Element `json:"listeningport,omitempty"`
}

// Element is one interface, neighbour or socket that matched. Which fields
// are set depends on the kind of search:
//
//   - localmac, localip: Interface, LocalMACAddr, LocalAddr;
//   - neighbormac, neighborip: Interface, RemoteMACAddr, RemoteAddr, State;
//   - connectedip, listeningport: Protocol, LocalAddr, LocalPort,
//     RemoteAddr, RemotePort, State, Processes.
type Element struct {
	Interface     string `json:"interface,omitempty"`
	LocalMACAddr  string `json:"localmacaddr,omitempty"`
	RemoteMACAddr string `json:"remotemacaddr,omitempty"`
	LocalAddr     string `json:"localaddr,omitempty"`
	LocalPort     int    `json:"localport,omitempty"`
	RemoteAddr    string `json:"remoteaddr,omitempty"`
	RemotePort    int    `json:"remoteport,omitempty"`
	// Protocol is tcp, tcp6, udp or udp6 (the /proc/net table of the
	// socket).
	Protocol string `json:"protocol,omitempty"`
	// State is a TCP state (ESTABLISHED, LISTEN, ...), UNCONN or
	// ESTABLISHED for UDP, or a neighbour entry's state (REACHABLE, STALE,
	// PERMANENT, ...).
	State string `json:"state,omitempty"`
	// Processes hold the socket open, where the system tells.
	Processes []Process `json:"processes,omitempty"`
	// Namespace is the network namespace ("net:[4026532301]") of an element
	// found outside the agent's own namespace; empty for the agent's own.
	Namespace string `json:"namespace,omitempty"`
	// NamespaceName is the namespace's name under /run/netns, if any.
	NamespaceName string `json:"namespacename,omitempty"`
}

// Process is a process that holds a socket.
type Process struct {
	PID  int    `json:"pid"`
	Name string `json:"name"`
}

// Statistics are the statistics of the module's result.
type Statistics struct {
	// Namespaces is the number of network namespaces searched.
	Namespaces int `json:"namespaces"`
	// Interfaces, Neighbours and Sockets count what was looked at.
	Interfaces int `json:"interfaces"`
	Neighbours int `json:"neighbours"`
	Sockets    int `json:"sockets"`
	// TotalHits is the number of elements returned.
	TotalHits int `json:"totalhits"`
	// Dropped counts matches left out over MaxMatchesPerValue.
	Dropped int `json:"dropped"`
	// ExecTime is how long the module ran, as a Go duration ("1.2s").
	ExecTime string `json:"exectime"`
}

// nsInfo names a network namespace in elements.
type nsInfo struct {
	id   string // "net:[ino]"; empty for the agent's own namespace
	name string // name under /run/netns
}

// iface is one network interface with its addresses.
type iface struct {
	name  string
	mac   string
	addrs []netip.Addr
}

// neighbour is one ARP or NDP table entry.
type neighbour struct {
	ip    netip.Addr
	mac   string
	iface string
	state string
}

// socket is one line of /proc/net/{tcp,tcp6,udp,udp6}.
type socket struct {
	proto  string
	local  netip.AddrPort
	remote netip.AddrPort
	state  string
	inode  uint64
}

// listening reports whether s is a listening TCP or unconnected UDP
// socket.
func (s socket) listening() bool {
	if s.proto == "tcp" || s.proto == "tcp6" {
		return s.state == "LISTEN"
	}
	return s.remote.Port() == 0 && (!s.remote.Addr().IsValid() || s.remote.Addr().IsUnspecified())
}

// snapshot is what was read of one network namespace.
type snapshot struct {
	ns         nsInfo
	ifaces     []iface
	neighbours []neighbour
	sockets    []socket
}

// collection is what a platform's collector found.
type collection struct {
	snaps []snapshot
	// errs are problems that left part of the answer out.
	errs []string
	// failed is set when the agent's own namespace could not be read for
	// some search, or a search is not supported here.
	failed bool
}

// hit is a matching element and, for sockets, its inode.
type hit struct {
	el    Element
	inode uint64
}

// Run collects what the searches need and matches it.
func (r *runner) Run(ctx context.Context, env module.Env) action.Result {
	start := time.Now()
	c := collect(ctx, r, env)
	el, stats, inodes := r.match(c.snaps)
	if len(inodes) > 0 {
		owners, err := socketOwners(ctx, inodes)
		if err != nil {
			c.errs = append(c.errs, fmt.Sprintf("finding the processes of sockets: %v", err))
		}
		for _, m := range []map[string][]hit{el.connected, el.listening} {
			for _, hits := range m {
				for i := range hits {
					hits[i].el.Processes = owners[hits[i].inode]
				}
			}
		}
	}
	out := el.elements()
	if stats.Dropped > 0 {
		c.errs = append(c.errs, fmt.Sprintf("%d matches left out over the limit of %d per searched value: narrow the search",
			stats.Dropped, MaxMatchesPerValue))
	}
	stats.ExecTime = time.Since(start).String()
	res := action.Result{Success: !c.failed, Errors: c.errs}
	if err := ctx.Err(); err != nil {
		res.Success = false
		res.Errors = append(res.Errors, fmt.Sprintf("interrupted: %v", context.Cause(ctx)))
	}
	res.FoundAnything = stats.TotalHits > 0
	var err error
	if res.Elements, err = json.Marshal(out); err != nil {
		return module.FailResult(fmt.Sprintf("encoding elements: %v", err))
	}
	if res.Statistics, err = json.Marshal(stats); err != nil {
		return module.FailResult(fmt.Sprintf("encoding statistics: %v", err))
	}
	return res
}

// hits are the matches of each kind, by searched value.
type hits struct {
	localMAC, neighborMAC, localIP, neighborIP, connected, listening map[string][]hit
}

func newHits[T any](searches []T, value func(T) string) map[string][]hit {
	if len(searches) == 0 {
		return nil
	}
	m := make(map[string][]hit, len(searches))
	for _, s := range searches {
		m[value(s)] = []hit{}
	}
	return m
}

// match runs every search over the snapshots. It returns the matches, the
// statistics without ExecTime, and the inodes of matching sockets.
func (r *runner) match(snaps []snapshot) (hits, Statistics, map[uint64]bool) {
	macValue := func(s macSearch) string { return s.value }
	ipValue := func(s ipSearch) string { return s.value }
	h := hits{
		localMAC:    newHits(r.localMAC, macValue),
		neighborMAC: newHits(r.neighborMAC, macValue),
		localIP:     newHits(r.localIP, ipValue),
		neighborIP:  newHits(r.neighborIP, ipValue),
		connected:   newHits(r.connected, ipValue),
		listening:   newHits(r.listening, func(s portSearch) string { return s.value }),
	}
	var st Statistics
	add := func(m map[string][]hit, value string, x hit) {
		if len(m[value]) >= MaxMatchesPerValue {
			st.Dropped++
			return
		}
		m[value] = append(m[value], x)
		st.TotalHits++
	}
	inodes := map[uint64]bool{}
	st.Namespaces = len(snaps)
	for _, sn := range snaps {
		ns := func(e Element) Element {
			e.Namespace, e.NamespaceName = sn.ns.id, sn.ns.name
			return e
		}
		st.Interfaces += len(sn.ifaces)
		for _, in := range sn.ifaces {
			for _, s := range r.localMAC {
				if in.mac != "" && s.re.MatchString(in.mac) {
					add(h.localMAC, s.value, hit{el: ns(Element{Interface: in.name, LocalMACAddr: in.mac})})
				}
			}
			for _, s := range r.localIP {
				for _, a := range in.addrs {
					if s.contains(a) {
						add(h.localIP, s.value, hit{el: ns(Element{Interface: in.name, LocalMACAddr: in.mac, LocalAddr: a.String()})})
					}
				}
			}
		}
		st.Neighbours += len(sn.neighbours)
		for _, n := range sn.neighbours {
			el := ns(Element{Interface: n.iface, RemoteMACAddr: n.mac, RemoteAddr: n.ip.String(), State: n.state})
			for _, s := range r.neighborMAC {
				if s.re.MatchString(n.mac) {
					add(h.neighborMAC, s.value, hit{el: el})
				}
			}
			for _, s := range r.neighborIP {
				if s.contains(n.ip) {
					add(h.neighborIP, s.value, hit{el: el})
				}
			}
		}
		st.Sockets += len(sn.sockets)
		for _, so := range sn.sockets {
			el := ns(Element{Protocol: so.proto, LocalAddr: so.local.Addr().String(), LocalPort: int(so.local.Port()),
				RemoteAddr: so.remote.Addr().String(), RemotePort: int(so.remote.Port()), State: so.state})
			remote := so.remote.Addr()
			if remote.IsValid() && !remote.IsUnspecified() && !(remote.Is4In6() && remote.Unmap().IsUnspecified()) {
				for _, s := range r.connected {
					if s.contains(remote) {
						add(h.connected, s.value, hit{el: el, inode: so.inode})
						inodes[so.inode] = true
					}
				}
			}
			if so.listening() {
				for _, s := range r.listening {
					if so.local.Port() == s.port {
						e := el
						e.RemoteAddr, e.RemotePort = "", 0
						add(h.listening, s.value, hit{el: e, inode: so.inode})
						inodes[so.inode] = true
					}
				}
			}
		}
	}
	delete(inodes, 0)
	return h, st, inodes
}

// elements turns the hits into sorted Elements.
func (h hits) elements() Elements {
	conv := func(m map[string][]hit) map[string][]Element {
		if m == nil {
			return nil
		}
		out := make(map[string][]Element, len(m))
		for v, hs := range m {
			els := make([]Element, len(hs))
			for i, x := range hs {
				els[i] = x.el
			}
			slices.SortFunc(els, compareElements)
			out[v] = slices.CompactFunc(els, func(a, b Element) bool { return compareElements(a, b) == 0 })
		}
		return out
	}
	return Elements{
		LocalMAC: conv(h.localMAC), NeighborMAC: conv(h.neighborMAC),
		LocalIP: conv(h.localIP), NeighborIP: conv(h.neighborIP),
		ConnectedIP: conv(h.connected), ListeningPort: conv(h.listening),
	}
}

// compareElements orders elements: the agent's own namespace first, then
// by interface, protocol, addresses and ports.
func compareElements(a, b Element) int {
	return cmp.Or(
		cmp.Compare(a.Namespace, b.Namespace),
		cmp.Compare(a.Interface, b.Interface),
		cmp.Compare(a.Protocol, b.Protocol),
		cmpAddr(a.LocalAddr, b.LocalAddr),
		cmp.Compare(a.LocalPort, b.LocalPort),
		cmpAddr(a.RemoteAddr, b.RemoteAddr),
		cmp.Compare(a.RemotePort, b.RemotePort),
		cmp.Compare(a.LocalMACAddr, b.LocalMACAddr),
		cmp.Compare(a.RemoteMACAddr, b.RemoteMACAddr),
		cmp.Compare(a.State, b.State),
		slices.CompareFunc(a.Processes, b.Processes, func(x, y Process) int {
			return cmp.Or(cmp.Compare(x.PID, y.PID), cmp.Compare(x.Name, y.Name))
		}),
	)
}

// cmpAddr compares two addresses numerically when both parse.
func cmpAddr(a, b string) int {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx == nil && erry == nil {
		return x.Compare(y)
	}
	return cmp.Compare(a, b)
}
