//go:build linux

package netstat_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/netstat"
	"github.com/migplatform/mig/internal/module/netstat/netnstest"
)

func TestMain(m *testing.M) {
	netnstest.MaybeServe()
	os.Exit(m.Run())
}

// run runs the netstat module in this process, through the module
// framework, and decodes its elements.
func run(t *testing.T, params string) (action.Result, netstat.Elements) {
	t.Helper()
	res, err := module.RunLocal(t.Context(), netstat.Name, []byte(params), module.Env{})
	if err != nil {
		t.Fatalf("RunLocal(%s): %v", params, err)
	}
	var el netstat.Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatalf("elements %s: %v", res.Elements, err)
	}
	return res, el
}

// nsIno returns "net:[<inode>]" for a network namespace file.
func nsIno(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", fi.Sys().(*syscall.Stat_t).Ino)
}

// find returns the elements for which keep is true.
func find(els []netstat.Element, keep func(netstat.Element) bool) []netstat.Element {
	var out []netstat.Element
	for _, e := range els {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func hasProcess(e netstat.Element, pid int, name string) bool {
	for _, p := range e.Processes {
		if p.PID == pid && (name == "" || p.Name == name) {
			return true
		}
	}
	return false
}

// TestNamespaces runs netstat against a namespace made for the test: a
// veth pair to it, a helper process inside holding a listener and a
// connection, a connection from this process to the helper, neighbour
// entries with known MACs on both sides, and a second namespace that no
// process is in. Each search is checked with and without -namespaces.
func TestNamespaces(t *testing.T) {
	n := netnstest.New(t)
	helper := n.Start(t)
	nsID := nsIno(t, "/run/netns/"+n.Name)
	self := os.Getpid()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	comm := exe[strings.LastIndexByte(exe, '/')+1:]
	if len(comm) > 15 {
		comm = comm[:15]
	}

	// A connection from this process to the helper, through the veth pair.
	conn, err := net.Dial("tcp", net.JoinHostPort(n.PeerIP.String(), strconv.Itoa(helper.TCPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hostPort := conn.LocalAddr().(*net.TCPAddr).Port

	// Neighbours: IPv4 on the host end, IPv4 and IPv6 on the peer end.
	hostNeigh := netip.AddrFrom4(n.Prefix.Addr().As4())
	hostNeigh = hostNeigh.Next().Next().Next().Next() // .4
	netnstest.Run(t, "neigh", "add", hostNeigh.String(), "lladdr", n.MAC(1), "dev", n.HostIf, "nud", "permanent")
	peerNeigh := hostNeigh.Next()                // .5
	peerNeigh6 := n.PeerIP6.Next().Next().Next() // ::5
	n.Run(t, "neigh", "add", peerNeigh.String(), "lladdr", n.MAC(2), "dev", n.PeerIf, "nud", "permanent")
	n.Run(t, "-6", "neigh", "add", peerNeigh6.String(), "lladdr", n.MAC(3), "dev", n.PeerIf, "nud", "permanent")

	// A namespace that no process is in: a veth pair inside it, with a
	// neighbour and an address.
	empty := n.AddNamespace(t, "e")
	emptyID := nsIno(t, "/run/netns/"+empty)
	netnstest.Run(t, "-n", empty, "link", "add", "ea"+n.Tag, "address", n.MAC(4), "type", "veth", "peer", "name", "eb"+n.Tag)
	netnstest.Run(t, "-n", empty, "addr", "add", "192.0.2.77/24", "dev", "ea"+n.Tag)
	netnstest.Run(t, "-n", empty, "link", "set", "ea"+n.Tag, "up")
	netnstest.Run(t, "-n", empty, "neigh", "add", "192.0.2.78", "lladdr", n.MAC(5), "dev", "ea"+n.Tag, "nud", "permanent")

	inNS := func(e netstat.Element) bool { return e.Namespace == nsID && e.NamespaceName == n.Name }
	inEmpty := func(e netstat.Element) bool { return e.Namespace == emptyID && e.NamespaceName == empty }
	own := func(e netstat.Element) bool { return e.Namespace == "" }

	for _, namespaces := range []bool{false, true} {
		t.Run(fmt.Sprintf("namespaces=%v", namespaces), func(t *testing.T) {
			opt := ""
			if namespaces {
				opt = `,"searchnamespaces":true`
			}
			// want checks that exactly `want` elements match; outside the
			// agent's namespace nothing may be found without -namespaces.
			want := func(what string, els []netstat.Element, keep func(netstat.Element) bool, count int) {
				t.Helper()
				if got := find(els, keep); len(got) != count {
					t.Errorf("%s: %d elements, want %d; all: %+v", what, len(got), count, els)
				}
			}
			nsCount := func(c int) int {
				if namespaces {
					return c
				}
				return 0
			}

			t.Run("ci", func(t *testing.T) {
				res, el := run(t, `{"connectedip":["`+n.PeerIP.String()+`"]`+opt+`}`)
				if !res.Success || !res.FoundAnything {
					t.Fatalf("result = %+v, want success, found", res)
				}
				els := el.ConnectedIP[n.PeerIP.String()]
				want("this process's connection to the helper", els, func(e netstat.Element) bool {
					return own(e) && e.Protocol == "tcp" && e.LocalAddr == n.HostIP.String() && e.LocalPort == hostPort &&
						e.RemotePort == helper.TCPPort && e.State == "ESTABLISHED" && hasProcess(e, self, comm)
				}, 1)
				want("the helper's connection to itself", els, func(e netstat.Element) bool {
					return inNS(e) && e.LocalPort == helper.ConnPort && e.RemotePort == helper.TCPPort &&
						e.State == "ESTABLISHED" && hasProcess(e, helper.PID, comm)
				}, nsCount(1))
				want("anything in another namespace", els, func(e netstat.Element) bool { return !own(e) }, nsCount(2))
			})

			t.Run("lp", func(t *testing.T) {
				port := strconv.Itoa(helper.TCPPort)
				_, el := run(t, `{"listeningport":[`+port+`]`+opt+`}`)
				want("the helper's listener", el.ListeningPort[port], func(e netstat.Element) bool {
					return inNS(e) && e.State == "LISTEN" && strings.HasPrefix(e.Protocol, "tcp") && hasProcess(e, helper.PID, comm)
				}, nsCount(1))
				uport := strconv.Itoa(helper.UDPPort)
				_, el = run(t, `{"listeningport":[`+uport+`]`+opt+`}`)
				want("the helper's UDP socket", el.ListeningPort[uport], func(e netstat.Element) bool {
					return inNS(e) && e.State == "UNCONN" && strings.HasPrefix(e.Protocol, "udp") && hasProcess(e, helper.PID, comm)
				}, nsCount(1))
			})

			t.Run("nm", func(t *testing.T) {
				// Upper case on purpose: MAC regexes are case-insensitive.
				re := strings.ToUpper(n.MACPrefix())
				res, el := run(t, `{"neighbormac":["`+re+`"]`+opt+`}`)
				if !res.Success || !res.FoundAnything {
					t.Fatalf("result = %+v, want success, found", res)
				}
				els := el.NeighborMAC[re]
				want("the host neighbour", els, func(e netstat.Element) bool {
					return own(e) && e.RemoteAddr == hostNeigh.String() && e.RemoteMACAddr == n.MAC(1) &&
						e.Interface == n.HostIf && e.State == "PERMANENT"
				}, 1)
				want("the namespace's IPv4 neighbour", els, func(e netstat.Element) bool {
					return inNS(e) && e.RemoteAddr == peerNeigh.String() && e.RemoteMACAddr == n.MAC(2) && e.Interface == n.PeerIf
				}, nsCount(1))
				want("the namespace's IPv6 neighbour", els, func(e netstat.Element) bool {
					return inNS(e) && e.RemoteAddr == peerNeigh6.String() && e.RemoteMACAddr == n.MAC(3) &&
						e.Interface == n.PeerIf && e.State == "PERMANENT"
				}, nsCount(1))
				want("the empty namespace's neighbour", els, func(e netstat.Element) bool {
					return inEmpty(e) && e.RemoteAddr == "192.0.2.78" && e.RemoteMACAddr == n.MAC(5)
				}, nsCount(1))
				want("the peer end, learned by ARP for this process's connection", els, func(e netstat.Element) bool {
					return own(e) && e.RemoteAddr == n.PeerIP.String() && e.RemoteMACAddr == n.PeerMAC && e.Interface == n.HostIf
				}, 1)
				want("all", els, func(netstat.Element) bool { return true }, 2+nsCount(3))
			})

			t.Run("ni", func(t *testing.T) {
				_, el := run(t, `{"neighborip":["`+n.Prefix6.String()+`"]`+opt+`}`)
				want("the namespace's IPv6 neighbour", el.NeighborIP[n.Prefix6.String()], func(e netstat.Element) bool {
					return inNS(e) && e.RemoteAddr == peerNeigh6.String() && e.RemoteMACAddr == n.MAC(3)
				}, nsCount(1))
			})

			t.Run("li", func(t *testing.T) {
				_, el := run(t, `{"localip":["`+n.Prefix.String()+`","192.0.2.77"]`+opt+`}`)
				els := el.LocalIP[n.Prefix.String()]
				want("the host end's address", els, func(e netstat.Element) bool {
					return own(e) && e.LocalAddr == n.HostIP.String() && e.Interface == n.HostIf
				}, 1)
				want("the peer end's address", els, func(e netstat.Element) bool {
					return inNS(e) && e.LocalAddr == n.PeerIP.String() && e.Interface == n.PeerIf && e.LocalMACAddr == n.PeerMAC
				}, nsCount(1))
				want("the empty namespace's address", el.LocalIP["192.0.2.77"], func(e netstat.Element) bool {
					return inEmpty(e) && e.Interface == "ea"+n.Tag && e.LocalMACAddr == n.MAC(4)
				}, nsCount(1))
			})

			t.Run("lm", func(t *testing.T) {
				_, el := run(t, `{"localmac":["^`+n.PeerMAC+`$","`+n.MAC(4)+`"]`+opt+`}`)
				want("the peer end", el.LocalMAC["^"+n.PeerMAC+"$"], func(e netstat.Element) bool {
					return inNS(e) && e.Interface == n.PeerIf
				}, nsCount(1))
				want("the empty namespace's interface", el.LocalMAC[n.MAC(4)], inEmpty, nsCount(1))
			})
		})
	}
}

// TestThreadsGoBack checks that no thread of this process is left in
// another namespace after searching them.
func TestThreadsGoBack(t *testing.T) {
	n := netnstest.New(t)
	n.Start(t)
	own := nsIno(t, "/proc/thread-self/ns/net")
	for range 3 {
		run(t, `{"localmac":["."],"neighborip":["::/0"],"searchnamespaces":true}`)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		fi, err := os.Stat("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread ended
		}
		if got := fmt.Sprintf("net:[%d]", fi.Sys().(*syscall.Stat_t).Ino); got != own {
			t.Errorf("thread %s is in %s, want %s", task.Name(), got, own)
		}
	}
}

// TestStatistics checks that the statistics count what was looked at.
func TestStatistics(t *testing.T) {
	res, _ := run(t, `{"listeningport":[1],"localmac":["."],"neighborip":["::/0"],"searchnamespaces":true}`)
	var st netstat.Statistics
	if err := json.Unmarshal(res.Statistics, &st); err != nil {
		t.Fatal(err)
	}
	if st.Namespaces < 1 || st.Interfaces < 1 || st.ExecTime == "" {
		t.Errorf("statistics = %+v, want at least one namespace and interface, and an exec time", st)
	}
	if !res.Success {
		t.Errorf("result = %+v, want success", res)
	}
}
