// Package netnstest makes Linux network namespaces joined to the test's
// own namespace by a veth pair, for the tests of the network modules
// (netstat, ping). Everything it makes has a name unique to the test run
// and is deleted when the test ends; traffic to a namespace's addresses
// never leaves the machine.
//
// New skips the test, with the reason, when it is not running as root,
// when the ip command (iproute2) is missing or when the system refuses to
// make a namespace.
//
// A test binary that uses Net.Start must call MaybeServe first thing in
// its TestMain, so that the binary can play the helper process that holds
// sockets inside a namespace.
package netnstest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Net is a network namespace with a veth pair: one end (HostIf, with
// HostIP and HostIP6) in the test's namespace, the other (PeerIf, with
// PeerIP, PeerIP6 and PeerMAC) in the namespace.
type Net struct {
	// Name is the namespace's name under /run/netns.
	Name string
	// HostIf and PeerIf are the two ends of the veth pair.
	HostIf, PeerIf string
	// Prefix is the IPv4 /24 of the pair; HostIP is .1, PeerIP .2.
	Prefix         netip.Prefix
	HostIP, PeerIP netip.Addr
	// Prefix6 is the IPv6 /64 of the pair; HostIP6 is ::1, PeerIP6 ::2.
	Prefix6          netip.Prefix
	HostIP6, PeerIP6 netip.Addr
	// PeerMAC is the MAC address of PeerIf.
	PeerMAC string
	// Tag is the random part of the names, two hex digits of which also
	// make the MACs of this run: MAC(n) is "02:5a:<tag>:<tag>:<tag>:<n>".
	Tag string
}

// MAC returns a locally administered MAC address unique to this run,
// ending in n.
func (n *Net) MAC(last byte) string {
	return fmt.Sprintf("02:5a:%s:%s:%s:%02x", n.Tag[0:2], n.Tag[2:4], n.Tag[4:6], last)
}

// MACPrefix is the regex-safe prefix of every MAC returned by MAC.
func (n *Net) MACPrefix() string {
	return fmt.Sprintf("02:5a:%s:%s:%s:", n.Tag[0:2], n.Tag[2:4], n.Tag[4:6])
}

// Unused returns an address of Prefix that nothing has: traffic to it
// goes to the veth pair and finds no neighbour.
func (n *Net) Unused() netip.Addr {
	b := n.Prefix.Addr().As4()
	b[3] = 203
	return netip.AddrFrom4(b)
}

// Skip skips t unless network namespaces can be made here.
func Skip(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("network namespaces are Linux only, not %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		t.Skip("making network namespaces needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("the ip command (iproute2) is missing: %v", err)
	}
}

// New makes a namespace with a veth pair to the test's namespace, both
// ends up with their addresses, and deletes it when t ends.
func New(t testing.TB) *Net {
	t.Helper()
	Skip(t)
	tag := randomHex(t, 3)
	n := &Net{
		Name:   "migt-" + tag,
		HostIf: "migh" + tag,
		PeerIf: "migp" + tag,
		Tag:    tag,
	}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		t.Skipf("this system refuses to make a network namespace: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Deleting the namespace deletes the peer end, and with it the
		// host end; deleting the host end first makes that immediate.
		_ = exec.Command("ip", "link", "del", n.HostIf).Run()
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.Name, err, out)
		}
	})
	n.pickPrefixes(t)
	n.PeerMAC = n.MAC(0x10)
	Run(t, "link", "add", n.HostIf, "type", "veth", "peer", "name", n.PeerIf)
	Run(t, "link", "set", n.PeerIf, "netns", n.Name)
	Run(t, "addr", "add", netip.PrefixFrom(n.HostIP, 24).String(), "dev", n.HostIf)
	Run(t, "-6", "addr", "add", netip.PrefixFrom(n.HostIP6, 64).String(), "dev", n.HostIf, "nodad")
	Run(t, "link", "set", n.HostIf, "up")
	n.Run(t, "link", "set", "lo", "up")
	n.Run(t, "link", "set", n.PeerIf, "address", n.PeerMAC)
	n.Run(t, "addr", "add", netip.PrefixFrom(n.PeerIP, 24).String(), "dev", n.PeerIf)
	n.Run(t, "-6", "addr", "add", netip.PrefixFrom(n.PeerIP6, 64).String(), "dev", n.PeerIf, "nodad")
	n.Run(t, "link", "set", n.PeerIf, "up")
	return n
}

// pickPrefixes picks a random 10.x.y.0/24 that no route or address of this
// machine covers yet, and a random IPv6 ULA /64.
func (n *Net) pickPrefixes(t testing.TB) {
	t.Helper()
	routes := Run(t, "-4", "route", "show", "table", "all") + Run(t, "-4", "addr", "show")
	for range 50 {
		b := randomBytes(t, 2)
		a := netip.AddrFrom4([4]byte{10, 64 + b[0]%160, b[1], 0})
		prefix := a.String()[:strings.LastIndexByte(a.String(), '.')+1]
		if strings.Contains(routes, prefix) {
			continue
		}
		n.Prefix = netip.PrefixFrom(a, 24)
		n.HostIP, n.PeerIP = withLast4(a, 1), withLast4(a, 2)
		r := randomBytes(t, 5)
		var b6 [16]byte
		b6[0] = 0xfd
		copy(b6[1:6], r)
		base := netip.AddrFrom16(b6)
		n.Prefix6 = netip.PrefixFrom(base, 64)
		b6[15] = 1
		n.HostIP6 = netip.AddrFrom16(b6)
		b6[15] = 2
		n.PeerIP6 = netip.AddrFrom16(b6)
		return
	}
	t.Fatal("no free 10.x.y.0/24 found for the test namespace")
}

func withLast4(a netip.Addr, last byte) netip.Addr {
	b := a.As4()
	b[3] = last
	return netip.AddrFrom4(b)
}

// Run runs "ip args..." in the test's namespace and returns its output;
// a failure fails the test.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Run runs "ip -n <name> args..." in the namespace.
func (n *Net) Run(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"-n", n.Name}, args...)...)
}

// AddNamespace makes another, empty namespace (only lo, up) with a name
// unique to the run, and deletes it when t ends.
func (n *Net) AddNamespace(t testing.TB, suffix string) string {
	t.Helper()
	name := n.Name + "-" + suffix
	Run(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	Run(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// helperEnv is the environment variable that makes a test binary serve
// as the helper process.
const helperEnv = "MIG_NETNSTEST_HELPER"

// Helper is a helper process running inside a namespace: it listens on
// TCP and UDP ports of the namespace, holds one TCP connection to its own
// listener, and exits when its standard input closes.
type Helper struct {
	// PID is the helper's process ID.
	PID int
	// TCPPort and UDPPort are the ports it listens on (all addresses).
	TCPPort, UDPPort int
	// ConnPort is the local port of its connection to its own listener,
	// from PeerIP to PeerIP:TCPPort.
	ConnPort int
}

// Start runs the test binary as a helper process inside the namespace,
// connected to itself through PeerIP, and stops it when t ends. The test
// binary's TestMain must call MaybeServe.
func (n *Net) Start(t testing.TB) *Helper {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	cmd := exec.Command("ip", "netns", "exec", n.Name, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+n.PeerIP.String())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the helper in %s: %v", n.Name, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("helper in %s: %v", n.Name, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("helper in %s did not stop when its standard input closed", n.Name)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper in %s: reading its ports: %v", n.Name, err)
	}
	h := &Helper{PID: cmd.Process.Pid}
	if _, err := fmt.Sscanf(line, "tcp %d udp %d conn %d\n", &h.TCPPort, &h.UDPPort, &h.ConnPort); err != nil {
		t.Fatalf("helper in %s said %q: %v", n.Name, line, err)
	}
	return h
}

// MaybeServe turns the process into the helper process when Start asked
// for it, and then exits; otherwise it returns at once. Call it first in
// TestMain.
func MaybeServe() {
	peer := os.Getenv(helperEnv)
	if peer == "" {
		return
	}
	if err := serve(peer, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "netnstest helper: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve listens, connects to itself through peer, writes its ports on
// out and waits for in to close.
func serve(peer string, in io.Reader, out io.Writer) error {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return err
	}
	defer ln.Close()
	uc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	defer uc.Close()
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	conn, err := net.Dial("tcp", net.JoinHostPort(peer, strconv.Itoa(tcpPort)))
	if err != nil {
		return err
	}
	defer conn.Close()
	accepted, err := ln.Accept()
	if err != nil {
		return err
	}
	defer accepted.Close()
	// Accept every other connection (the tests' own) and hold it until the
	// end, so that they stay ESTABLISHED.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		held []net.Conn
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	})
	defer func() {
		ln.Close()
		wg.Wait()
		for _, c := range held {
			c.Close()
		}
	}()
	if _, err := fmt.Fprintf(out, "tcp %d udp %d conn %d\n", tcpPort, uc.LocalAddr().(*net.UDPAddr).Port,
		conn.LocalAddr().(*net.TCPAddr).Port); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, in)
	return err
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randomHex(t testing.TB, n int) string {
	return hex.EncodeToString(randomBytes(t, n))
}
