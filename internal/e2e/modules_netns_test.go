//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// nsPlatform is a whole MIG platform ("mig-server -dev -no-agent" on its
// default ports, and one real mig-agent process) inside a network namespace
// made for the test, linked by a veth pair to a second namespace, the peer.
// The agent sees only what the test put in its namespace: its interfaces,
// its neighbour table, its sockets and its routes.
type nsPlatform struct {
	ns, peer  string // names under /run/netns
	env       []string
	dir       string // the dev platform's state directory
	agentName string
}

// Addresses of the veth pair and of the neighbour the test adds.
const (
	nsAddr       = "10.231.7.1"
	peerAddr     = "10.231.7.2"
	neighbourIP  = "10.231.7.9"
	neighbourMAC = "8c:70:5a:c8:be:50" // the seed's MAC
	unreachable  = "10.22.75.57"       // the seed's destination: no route to it in the namespace
)

// ipCmd runs ip(8) and fails the test on error.
func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNS makes a network namespace with its loopback up, deleted at the end
// of the test.
func newNS(t *testing.T, prefix string) string {
	t.Helper()
	name := prefix + "-" + strings.ToLower(rand.Text()[:8])
	ipCmd(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ipCmd(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// inNS runs fn on an OS thread that entered the named network namespace;
// sockets fn makes belong to that namespace. The thread is never unlocked,
// so it ends with fn's goroutine and no other goroutine runs in the
// namespace.
func inNS(t *testing.T, name string, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(filepath.Join("/run/netns", name))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", name, err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// startNSPlatform makes the namespaces, then starts mig-server -dev and a
// mig-agent named agentName with the given ACL in the first one.
func startNSPlatform(t *testing.T, agentName, acl string) *nsPlatform {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8)")
	}
	p := &nsPlatform{agentName: agentName}
	p.ns = newNS(t, "mige2e")
	p.peer = newNS(t, "mige2e-peer")
	ipCmd(t, "-n", p.ns, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", p.peer)
	ipCmd(t, "-n", p.ns, "addr", "add", nsAddr+"/24", "dev", "veth0")
	ipCmd(t, "-n", p.peer, "addr", "add", peerAddr+"/24", "dev", "veth1")
	ipCmd(t, "-n", p.ns, "link", "set", "veth0", "up")
	ipCmd(t, "-n", p.peer, "link", "set", "veth1", "up")
	ipCmd(t, "-n", p.ns, "neigh", "add", neighbourIP, "lladdr", neighbourMAC, "dev", "veth0", "nud", "permanent")

	home := t.TempDir()
	p.dir = filepath.Join(home, ".mig", "dev")
	p.env = []string{"HOME=" + home, "MIG_CONFIG="}
	// The namespace is the test's own, so the default ports are free: the
	// seed command lines run exactly as written.
	srv := start(t, p.env, "ip", "netns", "exec", p.ns, bins.server, "-dev", "-no-agent")
	waitFor(t, 30*time.Second, "mig-server -dev to print its API address", func() bool {
		return strings.Contains(srv.output(), "API:")
	})
	cfg := p.agentConfig(t, acl)
	start(t, nil, "ip", "netns", "exec", p.ns, bins.agent, "-c", cfg)
	waitFor(t, 30*time.Second, "the agent to be online", func() bool {
		out, _, code := p.mig(t, "agents", "-render", "json")
		return code == 0 && strings.Contains(out, `"online"`) && strings.Contains(out, agentName)
	})
	return p
}

// devKeyFingerprint returns the dev investigator's armored public key and
// its fingerprint.
func (p *nsPlatform) devKey(t *testing.T) (pub []byte, fp string) {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(p.dir, "investigator.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	return pub, fingerprintOf(t, pub)
}

// agentConfig writes the agent's configuration: it enrolls with the
// platform, trusts the keys of keyring.asc in the state directory (the dev
// investigator's, plus any the test adds before) and applies acl, in which
// "DEV" stands for the dev investigator's fingerprint.
func (p *nsPlatform) agentConfig(t *testing.T, acl string) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(p.dir, "enrollment-token"))
	if err != nil {
		t.Fatal(err)
	}
	pub, fp := p.devKey(t)
	keyring := string(pub)
	if extra, err := os.ReadFile(filepath.Join(p.dir, "extra-keys.asc")); err == nil {
		keyring += "\n" + string(extra)
	}
	cfg := map[string]any{
		"server":          "https://127.0.0.1:12664/api/v1",
		"ca":              filepath.Join(p.dir, "ca.pem"),
		"enrollmenttoken": strings.TrimSpace(string(token)),
		"statedir":        filepath.Join(t.TempDir(), "agent-state"),
		"keyringdata":     keyring,
		"acldata":         strings.ReplaceAll(acl, "DEV", fp),
		"heartbeat":       "2s",
		"moduleexe":       bins.agent,
		"name":            p.agentName,
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mig runs the mig command line inside the namespace and returns stdout,
// stderr and the exit code.
func (p *nsPlatform) mig(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", p.ns, bins.mig}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("")
	code := 0
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("mig %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// want runs mig and checks that it succeeds and that stdout holds every
// string of want and none of wantNot.
func (p *nsPlatform) want(t *testing.T, args []string, want []string, wantNot ...string) string {
	t.Helper()
	out, errOut, code := p.mig(t, args...)
	if code != 0 {
		t.Fatalf("mig %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("mig %q: stdout lacks %q\nstdout:\n%s\nstderr:\n%s", args, w, out, errOut)
		}
	}
	for _, w := range wantNot {
		if strings.Contains(out, w) {
			t.Errorf("mig %q: stdout has %q\nstdout:\n%s\nstderr:\n%s", args, w, out, errOut)
		}
	}
	return out
}

// TestNetworkModulesInNamespaces runs netstat and ping through the whole
// platform (mig, mig-server, its relay and store, a real mig-agent process
// and its module child processes) in network namespaces made by the test,
// including the two seed command lines exactly as written.
func TestNetworkModulesInNamespaces(t *testing.T) {
	const acl = `{"default":{"minimumweight":1,"investigators":{"dev":{"fingerprint":"DEV","weight":1}}}}`
	p := startNSPlatform(t, "sc13-e2e", acl)

	// In the peer namespace: a TCP listener that accepts and holds
	// connections, and a UDP socket that never answers.
	var (
		tcpLn   net.Listener
		udpConn net.PacketConn
	)
	inNS(t, p.peer, func() (err error) {
		if tcpLn, err = net.Listen("tcp4", peerAddr+":0"); err != nil {
			return err
		}
		udpConn, err = net.ListenPacket("udp4", peerAddr+":0")
		return err
	})
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		tcpLn.Close()
		udpConn.Close()
		for c := range accepted {
			c.Close()
		}
	})
	tcpPort := tcpLn.Addr().(*net.TCPAddr).Port
	udpPort := udpConn.LocalAddr().(*net.UDPAddr).Port
	// In the agent's namespace: a connection to the peer, held by this test
	// process.
	var conn net.Conn
	inNS(t, p.ns, func() (err error) {
		conn, err = net.Dial("tcp4", net.JoinHostPort(peerAddr, fmt.Sprint(tcpPort)))
		return err
	})
	t.Cleanup(func() { conn.Close() })
	self := fmt.Sprintf("pid %d ", os.Getpid())

	t.Run("seed: mig netstat -nm 8c:70:5a:c8:be:50", func(t *testing.T) {
		p.want(t, []string{"netstat", "-nm", "8c:70:5a:c8:be:50"},
			[]string{"sc13-e2e found neighbor mac 8c:70:5a:c8:be:50 with ip " + neighbourIP + " on veth0 (PERMANENT)"})
	})
	t.Run("netstat -ni and -li and -lm", func(t *testing.T) {
		p.want(t, []string{"netstat", "-ni", "10.231.7.0/24", "-li", nsAddr, "-lm", "."}, []string{
			"sc13-e2e found neighbor ip " + neighbourIP + " with mac " + neighbourMAC,
			"sc13-e2e found local ip " + nsAddr + " on veth0",
			"sc13-e2e found local mac ",
		})
	})
	t.Run("netstat -ci finds the connection and its process", func(t *testing.T) {
		p.want(t, []string{"netstat", "-ci", peerAddr},
			[]string{fmt.Sprintf("sc13-e2e found connected tuple %s:%d with local tuple %s:", peerAddr, tcpPort, nsAddr),
				"(tcp ESTABLISHED, " + self})
	})
	t.Run("netstat -lp needs -namespaces for the peer's listener", func(t *testing.T) {
		lp := fmt.Sprint(tcpPort)
		p.want(t, []string{"netstat", "-show", "all", "-lp", lp}, []string{"sc13-e2e did not find anything"})
		p.want(t, []string{"netstat", "-lp", lp, "-namespaces"},
			[]string{fmt.Sprintf("sc13-e2e found listening port %d on %s (tcp LISTEN, %s", tcpPort, peerAddr, self),
				"in netns " + p.peer + " net:["})
	})
	t.Run(`seed: mig ping -t "name LIKE '%sc13%'" -show notfound -d 10.22.75.57 -p icmp`, func(t *testing.T) {
		out, errOut, code := p.mig(t, "ping", "-t", "name LIKE '%sc13%'", "-show", "notfound", "-d", "10.22.75.57", "-p", "icmp")
		if code != 0 || !strings.Contains(out, "sc13-e2e did not find anything") || strings.Contains(out, "probes reached") {
			t.Errorf("exit %d; want only the agent that did not reach the destination\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "1 agents will be targeted") && !strings.Contains(errOut, "1 agent will be targeted") {
			t.Errorf("the target did not select the agent; stderr:\n%s", errOut)
		}
		// A target that selects no agent is said so, not a silent success.
		_, errOut, code = p.mig(t, "ping", "-t", "name LIKE '%sc14%'", "-show", "notfound", "-d", "10.22.75.57", "-p", "icmp")
		if code == 0 && !strings.Contains(errOut, "0 agent") {
			t.Errorf("a target matching no agent: exit 0, stderr:\n%s", errOut)
		}
	})
	t.Run("ping icmp, tcp and udp to the peer", func(t *testing.T) {
		p.want(t, []string{"ping", "-d", peerAddr, "-p", "icmp", "-c", "2"},
			[]string{"sc13-e2e icmp ping of " + peerAddr + " #1: reply in ", "sc13-e2e icmp ping of " + peerAddr + ": 2 of 2 probes reached the destination"})
		p.want(t, []string{"ping", "-d", peerAddr, "-p", "tcp", "-dp", fmt.Sprint(tcpPort), "-c", "1"},
			[]string{fmt.Sprintf("sc13-e2e tcp ping of %s:%d #1: open in ", peerAddr, tcpPort)})
		p.want(t, []string{"ping", "-d", peerAddr, "-p", "udp", "-dp", fmt.Sprint(udpPort), "-c", "1", "-timeout", "1s"},
			[]string{fmt.Sprintf("sc13-e2e udp ping of %s:%d #1: maybe open", peerAddr, udpPort)})
		// Nothing listens on port 1 of the peer: the probe says closed, and,
		// as the port was not reached, the agent found nothing.
		p.want(t, []string{"ping", "-show", "all", "-render", "json", "-d", peerAddr, "-p", "tcp", "-dp", "1", "-c", "1"},
			[]string{`"result":"closed"`, `"foundanything":false`})
		p.want(t, []string{"ping", "-show", "notfound", "-d", unreachable, "-p", "tcp", "-dp", "22", "-c", "1", "-timeout", "1s"},
			[]string{"sc13-e2e did not find anything"})
	})
	t.Run("bad input is refused before sending", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			bad  string // the value the error must name
		}{
			{[]string{"netstat", "-ci", "10.0.0.300"}, "10.0.0.300"},
			{[]string{"netstat", "-nm", "8c:70:(5a"}, "8c:70:(5a"},
			{[]string{"netstat", "-lp", "70000"}, "70000"},
			{[]string{"netstat", "-lp", "ssh"}, "ssh"},
			{[]string{"ping", "-d", peerAddr, "-p", "sctp"}, "sctp"},
			{[]string{"ping", "-d", peerAddr, "-p", "tcp"}, "port"},
			{[]string{"ping", "-d", "not a host!", "-p", "icmp"}, "not a host!"},
			{[]string{"ping", "-d", peerAddr, "-c", "-3"}, "-3"},
		} {
			_, errOut, code := p.mig(t, tc.args...)
			if code == 0 || strings.Contains(errOut, "will be targeted") || !strings.Contains(errOut, tc.bad) {
				t.Errorf("mig %q: exit %d, stderr:\n%s", tc.args, code, errOut)
			}
		}
	})
}

// TestHostModulesThroughAgent runs memory, pkg, sshkey and timedrift
// through the whole platform with a real agent process, and checks that
// agentdestroy runs only with the ACL weight the agent's configuration
// demands for it.
func TestHostModulesThroughAgent(t *testing.T) {
	const acl = `{"default":{"minimumweight":1,"investigators":{"dev":{"fingerprint":"DEV","weight":1}}},
		"agentdestroy":{"minimumweight":2,"investigators":{"dev":{"fingerprint":"DEV","weight":1}}}}`
	p := startNSPlatform(t, "host-e2e", acl)

	t.Run("memory: a marker in a process's memory", func(t *testing.T) {
		// bash joins two halves into the marker, so the whole marker is only
		// in its heap; the regex does not match its own text, so mig, the
		// server and the module, which hold the regex, do not match.
		a, b := "MIGE2E-", strings.ToUpper(rand.Text()[:12])
		cmd := exec.Command("bash", "-c", `M="$A$B"; read -r _`)
		cmd.Env = append(os.Environ(), "A="+a, "B="+b)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		want := fmt.Sprintf("host-e2e process 'bash' [pid:%d] matched name:'^bash$', content:'MIGE2E[-]%s' (at 0x", cmd.Process.Pid, b)
		var out string
		// bash may not have run the assignment yet when the first scan
		// happens; ask again until it has (not a timing assertion).
		waitFor(t, 60*time.Second, "the marker to be found", func() bool {
			out, _, _ = p.mig(t, "memory", "-name", "^bash$", "-content", "MIGE2E[-]"+b)
			return strings.Contains(out, want)
		})
		if n := strings.Count(out, "MIGE2E"); n != 1 {
			t.Errorf("want one process with the marker, got:\n%s", out)
		}
		p.want(t, []string{"memory", "-show", "all", "-name", "^bash$", "-content", "MIGE2E[-]" + b, "-maxlength", "1"},
			nil, fmt.Sprintf("[pid:%d]", cmd.Process.Pid))
	})
	t.Run("memory: bad input", func(t *testing.T) {
		for _, tc := range [][]string{
			{"memory", "-bytes", "zz"},
			{"memory", "-content", "(unclosed"},
			{"memory", "-name", "x", "-maxlength", "-5"},
			{"memory", "-name", "x", "-matchall", "-matchany"},
		} {
			_, errOut, code := p.mig(t, tc...)
			if code == 0 || strings.Contains(errOut, "will be targeted") || !strings.Contains(errOut, strings.TrimPrefix(tc[len(tc)-1], "-")) {
				t.Errorf("mig %q: exit %d, stderr:\n%s", tc, code, errOut)
			}
		}
	})
	t.Run("pkg: dpkg of this machine", func(t *testing.T) {
		st, err := os.ReadFile("/var/lib/dpkg/status")
		if err != nil || !bytes.Contains(st, []byte("\nPackage: bash\n")) {
			t.Skip("no dpkg database with bash here")
		}
		p.want(t, []string{"pkg", "-name", "^bash$"}, []string{"host-e2e name=bash version=", " type=dpkg arch="})
		_, errOut, code := p.mig(t, "pkg", "-name", "(unclosed")
		if code == 0 || !strings.Contains(errOut, "(unclosed") {
			t.Errorf("bad -name: exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("sshkey: keys made by ssh-keygen", func(t *testing.T) {
		if _, err := exec.LookPath("ssh-keygen"); err != nil {
			t.Skip("no ssh-keygen")
		}
		dir, err := os.MkdirTemp("/tmp", "mig-e2e-ssh-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		key := filepath.Join(dir, "id_ed25519")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "e2e passphrase", "-C", "e2e@test", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		fpOut, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		fp := strings.Fields(string(fpOut))[1]
		p.want(t, []string{"sshkey", "-path", dir}, []string{
			"host-e2e " + key + " [kind:private, type:ED25519",
			"host-e2e " + key + ".pub [kind:public, type:ED25519",
			"sha256:" + fp,
			"encrypted:true]",
		})
		_, errOut, code := p.mig(t, "sshkey", "-path", "relative/dir")
		if code == 0 || !strings.Contains(errOut, "relative/dir") {
			t.Errorf("relative -path: exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("timedrift against an NTP server of the test", func(t *testing.T) {
		var pc net.PacketConn
		inNS(t, p.ns, func() (err error) {
			pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
			return err
		})
		t.Cleanup(func() { pc.Close() })
		go serveSNTP(pc, time.Hour)
		server := pc.LocalAddr().String()
		p.want(t, []string{"timedrift", "-server", server, "-drift", "30s"},
			[]string{"host-e2e local time is ", "beyond 30s"})
		p.want(t, []string{"timedrift", "-show", "notfound", "-server", server, "-drift", "2h"},
			[]string{"host-e2e did not find anything"})
		_, errOut, code := p.mig(t, "timedrift", "-drift", "soon")
		if code == 0 || !strings.Contains(errOut, "soon") {
			t.Errorf("bad -drift: exit %d, stderr:\n%s", code, errOut)
		}
	})
	t.Run("agentdestroy needs the weight the agent's ACL demands", func(t *testing.T) {
		atk := attack(t, "forged-action", "agentdestroy under-weighted")
		dummy, exited := startIdleAgentCopy(t)
		f := destroyAction(t, dummy.Process.Pid, "dev")
		// One investigator of weight 1, the module demands 2: the agent
		// refuses and the process lives on.
		out, errOut, _ := p.mig(t, "action", "-i", f)
		if !strings.Contains(errOut, "host-e2e failed") || strings.Contains(out, "stopped mig-agent") {
			t.Fatalf("agentdestroy with weight 1 of 2 was not refused\nstdout:\n%s\nstderr:\n%s", out, errOut)
		}
		if !strings.Contains(errOut, "weight 1") {
			t.Errorf("the refusal does not say the weight fell short:\n%s", errOut)
		}
		select {
		case <-exited:
			atk.executed("the process exited although the action was refused")
		default:
		}
		atk.refused()
		// JSON only: there are no flags.
		if _, errOut, code := p.mig(t, "agentdestroy", "-pid", "2"); code == 0 || strings.Contains(errOut, "will be targeted") {
			t.Errorf("mig agentdestroy with flags: exit %d, stderr:\n%s", code, errOut)
		}
	})
}

// serveSNTP answers SNTP requests on pc with the local time moved by skew,
// until pc is closed.
func serveSNTP(pc net.PacketConn, skew time.Duration) {
	buf := make([]byte, 512)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 48 {
			continue
		}
		now := time.Now().Add(skew)
		ts := uint64(now.Unix()+2208988800)<<32 | (uint64(now.Nanosecond())<<32)/1e9
		reply := make([]byte, 48)
		reply[0] = 4<<3 | 4 // version 4, server
		reply[1] = 1        // stratum 1
		copy(reply[12:16], "TEST")
		copy(reply[24:32], buf[40:48]) // originate: the request's transmit
		binary.BigEndian.PutUint64(reply[32:], ts)
		binary.BigEndian.PutUint64(reply[40:], ts)
		_, _ = pc.WriteTo(reply, addr)
	}
}

// startIdleAgentCopy starts a copy of the real mig-agent binary that waits:
// "mig-agent -m testmodule" reads its parameters from stdin, which stays
// open. It returns the process and a channel closed when it exits.
func startIdleAgentCopy(t *testing.T) (*exec.Cmd, chan struct{}) {
	t.Helper()
	old := filepath.Join(t.TempDir(), "mig-agent")
	data, err := os.ReadFile(bins.agent)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, data, 0o755); err != nil {
		t.Fatal(err)
	}
	dummy := exec.Command(old, "-m", "testmodule")
	stdin, err := dummy.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := dummy.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = dummy.Wait(); close(exited) }()
	t.Cleanup(func() { stdin.Close(); _ = dummy.Process.Kill(); <-exited })
	return dummy, exited
}

// destroyAction writes an agentdestroy action file for pid and version.
func destroyAction(t *testing.T, pid int, version string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "destroy.json")
	op := fmt.Sprintf(`{"module": "agentdestroy", "parameters": {"pid": %d, "version": %q}}`, pid, version)
	if err := os.WriteFile(f, []byte(op), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestAgentDestroyThroughAgent stops a real mig-agent process through the
// platform, where the agent's ACL gives the investigator enough weight for
// agentdestroy, after refusing a version that is not the process's.
func TestAgentDestroyThroughAgent(t *testing.T) {
	const acl = `{"agentdestroy":{"minimumweight":1,"investigators":{"dev":{"fingerprint":"DEV","weight":1}}}}`
	p := startNSPlatform(t, "destroy-e2e", acl)
	dummy, exited := startIdleAgentCopy(t)
	out, errOut, _ := p.mig(t, "action", "-i", destroyAction(t, dummy.Process.Pid, "9.9.9"))
	if !strings.Contains(errOut, `version "dev", want "9.9.9"`) || strings.Contains(out, "stopped") {
		t.Fatalf("a wrong version was not refused\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	select {
	case <-exited:
		t.Fatal("the process exited although its version is not the requested one")
	default:
	}
	p.want(t, []string{"action", "-i", destroyAction(t, dummy.Process.Pid, "dev")},
		// SIGTERM, or SIGKILL after the grace period: a module child
		// process waits for its parameters whatever the signal.
		[]string{fmt.Sprintf("destroy-e2e stopped mig-agent pid %d version dev with SIG", dummy.Process.Pid)})
	<-exited
	// Modules without an ACL entry have no default here: denied.
	atk := attack(t, "forged-action", "module without an ACL entry")
	_, errOut, _ = p.mig(t, "netstat", "-lp", "22")
	if !strings.Contains(errOut, "destroy-e2e failed") {
		atk.executed("netstat ran without an ACL entry:\n%s", errOut)
	}
	atk.refused()
}
