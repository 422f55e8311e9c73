//go:build linux

package ping

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/module/netstat/netnstest"
)

// TestNamespace probes addresses inside a namespace made for the test,
// reached through a veth pair: the peer end (answering ICMP, a TCP
// listener, a UDP socket that never answers, closed ports) and an address
// of the pair's subnet that nothing has.
func TestNamespace(t *testing.T) {
	n := netnstest.New(t)
	helper := n.Start(t)
	// Give up on neighbour resolution quickly on the host end, so that
	// probes to the unused address fail with "unreachable" well before
	// their timeout.
	for _, f := range []struct{ path, value string }{
		{"/proc/sys/net/ipv4/neigh/" + n.HostIf + "/mcast_solicit", "1"},
		{"/proc/sys/net/ipv4/neigh/" + n.HostIf + "/retrans_time_ms", "200"},
		{"/proc/sys/net/ipv6/neigh/" + n.HostIf + "/mcast_solicit", "1"},
		{"/proc/sys/net/ipv6/neigh/" + n.HostIf + "/retrans_time_ms", "200"},
	} {
		if err := os.WriteFile(f.path, []byte(f.value), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unused6 := n.PeerIP6.Next().Next().Next().Next().Next() // ::7
	peer, peer6, unused := n.PeerIP.String(), n.PeerIP6.String(), n.Unused().String()
	tcpPort, udpPort := strconv.Itoa(helper.TCPPort), strconv.Itoa(helper.UDPPort)

	tests := []struct {
		name   string
		params string
		found  bool
		want   []string // acceptable results of every probe
	}{
		{"icmp", `{"destination":"` + peer + `","protocol":"icmp","count":3}`, true, []string{ResultReply}},
		{"icmp6", `{"destination":"` + peer6 + `","protocol":"icmp","count":2}`, true, []string{ResultReply}},
		{"tcp open", `{"destination":"` + peer + `","protocol":"tcp","destinationport":` + tcpPort + `,"count":2}`, true, []string{ResultOpen}},
		{"tcp6 open", `{"destination":"` + peer6 + `","protocol":"tcp","destinationport":` + tcpPort + `,"count":1}`, true, []string{ResultOpen}},
		{"tcp closed", `{"destination":"` + peer + `","protocol":"tcp","destinationport":1,"count":2}`, false, []string{ResultClosed}},
		{"udp maybe open", `{"destination":"` + peer + `","protocol":"udp","destinationport":` + udpPort + `,"count":1,"timeout":0.5}`, true, []string{ResultMaybeOpen}},
		{"udp closed", `{"destination":"` + peer + `","protocol":"udp","destinationport":1,"count":2}`, false, []string{ResultClosed}},
		{"udp6 closed", `{"destination":"` + peer6 + `","protocol":"udp","destinationport":1,"count":1}`, false, []string{ResultClosed}},
		// Nothing answers for the unused address: the host end's neighbour
		// resolution fails and the kernel says so.
		{"icmp unreachable", `{"destination":"` + unused + `","protocol":"icmp","count":2,"timeout":4}`, false, []string{ResultUnreachable}},
		{"icmp6 unreachable", `{"destination":"` + unused6.String() + `","protocol":"icmp","count":1,"timeout":4}`, false, []string{ResultUnreachable}},
		{"tcp unreachable", `{"destination":"` + unused + `","protocol":"tcp","destinationport":80,"count":1,"timeout":4}`, false, []string{ResultUnreachable}},
		{"udp unreachable", `{"destination":"` + unused + `","protocol":"udp","destinationport":53,"count":1,"timeout":4}`, false, []string{ResultUnreachable}},
		// With a timeout shorter than neighbour resolution, a timeout.
		{"icmp timeout", `{"destination":"` + unused + `","protocol":"icmp","count":1,"timeout":0.05}`, false, []string{ResultTimeout, ResultUnreachable}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, el := runPing(t, tt.params)
			if !res.Success || res.FoundAnything != tt.found {
				t.Fatalf("result = %+v, probes %+v; want success, found %v", res, el.Probes, tt.found)
			}
			if len(el.Probes) == 0 {
				t.Fatal("no probes")
			}
			for _, pr := range el.Probes {
				if !slices.Contains(tt.want, pr.Result) {
					t.Errorf("probe %+v, want a result in %q", pr, tt.want)
				}
			}
		})
	}
}

// TestICMPUnprivilegedNamespace runs TestICMPUnprivileged inside a
// namespace where unprivileged ICMP sockets are allowed
// (net.ipv4.ping_group_range belongs to the namespace), so that the
// datagram socket path runs even where the host forbids it.
func TestICMPUnprivilegedNamespace(t *testing.T) {
	n := netnstest.New(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", n.Name, exe, "-test.run=^TestICMPUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestICMPUnprivileged") {
		t.Errorf("TestICMPUnprivileged in %s: %v\n%s", n.Name, err, out)
	}
}
