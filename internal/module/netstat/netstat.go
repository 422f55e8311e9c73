// Package netstat is MIG's netstat module: it answers "who is connected to
// this IP", "where is this MAC address" and "who listens on this port" by
// looking at an endpoint's network interfaces, neighbour tables (ARP and
// NDP) and sockets, and returns what matched, never traffic.
//
// # Parameters
//
//	{"localmac":      ["^8c:70:5a"],        // regexes on the MACs of local interfaces
//	 "neighbormac":   ["8c:70:5a:c8:be:50"], // regexes on MACs in the ARP/NDP tables
//	 "localip":       ["10.0.0.0/8"],        // IPs or CIDRs of local interface addresses
//	 "neighborip":    ["fe80::/10"],         // IPs or CIDRs of neighbour table entries
//	 "connectedip":   ["13.37.66.66"],       // IPs or CIDRs of remote ends of TCP/UDP sockets
//	 "listeningport": [22, 8080],            // local ports of listening TCP and bound UDP sockets
//	 "searchnamespaces": true}               // also look inside other network namespaces
//
// At least one search is required; every value is one search whose
// matches are returned under that value. MAC regexes match
// case-insensitively against MACs written as lower-case, colon-separated
// hexadecimal ("8c:70:5a:c8:be:50"). An IP without a prefix length is a
// single address; an IPv4 CIDR also matches IPv4-mapped IPv6 addresses
// ("::ffff:10.1.2.3") of tcp6 and udp6 sockets.
//
// A socket matches connectedip when its remote address is set and inside
// the CIDR, whatever the TCP state (ESTABLISHED, TIME_WAIT, SYN_SENT, ...);
// UDP sockets match when they are connected. A socket matches
// listeningport when it is a TCP socket in the LISTEN state, or an
// unconnected UDP socket, bound to that port.
//
// # Linux
//
// Linux 3.17 or later (for /proc/thread-self). Sockets come from
// /proc/net/{tcp,tcp6,udp,udp6}, IPv4 neighbours from
// /proc/net/arp, IPv6 neighbours, interfaces and their addresses from
// rtnetlink (RTM_GETNEIGH, RTM_GETLINK, RTM_GETADDR). The owning processes
// of matching sockets (pid and name) are found by reading the
// /proc/<pid>/fd links of every process; a socket held by several
// processes lists each of them.
//
// With searchnamespaces, every distinct network namespace is searched
// once: those of processes (/proc/<pid>/ns/net), read through
// /proc/<pid>/net/* of one process per namespace, and those that only
// exist as a bind mount under /run/netns (made by "ip netns add"). Netlink
// queries in another namespace, and everything about a namespace that no
// process is in, run on an OS thread locked for the purpose, which enters
// the namespace with setns(2) and goes back to its own afterwards (a thread
// that cannot go back is discarded); that needs CAP_SYS_ADMIN, and
// without it those parts are reported in the result's errors while the
// rest is returned. Namespaces are read a few at a time (at most 4, and no
// more than Env.MaxProcs). Elements found outside the agent's own
// namespace carry the namespace ("net:[4026532301]") and its /run/netns
// name when it has one.
//
// # Other systems
//
// On macOS and Windows, localmac and localip are answered from the
// standard library's list of interfaces; the other searches, and
// searchnamespaces, are reported as not supported in the result's errors
// (Success false).
//
// # Results
//
// Elements are an Elements; statistics are a Statistics. FoundAnything is
// true when any search matched.
package netstat

import (
	"errors"

	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "netstat"

// Limits on parameters and results.
const (
	// MaxValues bounds the values of each search list.
	MaxValues = 256
	// MaxMatchesPerValue bounds the elements returned for one value; the
	// rest are counted in the statistics and noted in the errors.
	MaxMatchesPerValue = 1000
	// MaxRegexLen bounds the length of a MAC regex.
	MaxRegexLen = 1024
)

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid netstat parameters")

// ErrNotSupported is wrapped by the errors of searches this system cannot
// answer.
var ErrNotSupported = errors.New("not supported on this system")

func init() { module.Register(netstatModule{}) }

// netstatModule implements module.Module.
type netstatModule struct{}

func (netstatModule) Name() string { return Name }

func (netstatModule) Summary() string {
	return "find local and neighbour MACs and IPs, connections and listening ports, with their processes"
}

func (netstatModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}
