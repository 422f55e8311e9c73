package ping

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/netstat/netnstest"
)

// runPing runs the module through the framework and decodes its elements.
func runPing(t *testing.T, params string) (action.Result, Elements) {
	t.Helper()
	res, err := module.RunLocal(t.Context(), Name, []byte(params), module.Env{})
	if err != nil {
		t.Fatalf("RunLocal(%s): %v", params, err)
	}
	var el Elements
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatalf("elements %s: %v", res.Elements, err)
	}
	return res, el
}

// results returns the result of each probe.
func results(el Elements) []string {
	out := make([]string, len(el.Probes))
	for i, p := range el.Probes {
		out[i] = p.Result
	}
	return out
}

// TestLoopback probes listeners of this process on 127.0.0.1 and ports
// where nothing listens.
func TestLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpPort := ln.Addr().(*net.TCPAddr).Port
	// A port where nothing listens: one that was free a moment ago.
	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedTCP := ln2.Addr().(*net.TCPAddr).Port
	ln2.Close()

	// A UDP socket that answers, one that never does, and a closed port.
	echo, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = echo.WriteTo(buf[:n], from)
		}
	}()
	defer func() { echo.Close(); <-done }()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedUDP := u.LocalAddr().(*net.UDPAddr).Port
	u.Close()

	port := func(p int) string { return strconv.Itoa(p) }
	tests := []struct {
		name   string
		params string
		found  bool
		want   string // the result of every probe
	}{
		{"tcp open", `{"destination":"127.0.0.1","protocol":"tcp","destinationport":` + port(tcpPort) + `,"count":2}`, true, ResultOpen},
		{"tcp by name", `{"destination":"localhost","protocol":"tcp","destinationport":` + port(tcpPort) + `,"count":1}`, true, ResultOpen},
		{"tcp closed", `{"destination":"127.0.0.1","protocol":"tcp","destinationport":` + port(closedTCP) + `,"count":2}`, false, ResultClosed},
		{"udp answered", `{"destination":"127.0.0.1","protocol":"udp","destinationport":` + port(echo.LocalAddr().(*net.UDPAddr).Port) + `,"count":2}`, true, ResultOpen},
		{"udp maybe open", `{"destination":"127.0.0.1","protocol":"udp","destinationport":` + port(silent.LocalAddr().(*net.UDPAddr).Port) + `,"count":1,"timeout":0.3}`, true, ResultMaybeOpen},
		{"udp closed", `{"destination":"127.0.0.1","protocol":"udp","destinationport":` + port(closedUDP) + `,"count":3}`, false, ResultClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, el := runPing(t, tt.params)
			if !res.Success || res.FoundAnything != tt.found {
				t.Fatalf("result = %+v, want success, found %v", res, tt.found)
			}
			var p Parameters
			_ = json.Unmarshal([]byte(tt.params), &p)
			if len(el.Probes) != p.Count {
				t.Fatalf("%d probes, want %d: %+v", len(el.Probes), p.Count, el.Probes)
			}
			for i, pr := range el.Probes {
				if pr.Result != tt.want || pr.Seq != i+1 {
					t.Errorf("probe %d = %+v, want seq %d result %q", i, pr, i+1, tt.want)
				}
			}
			if el.Address != "127.0.0.1" {
				t.Errorf("address = %q, want 127.0.0.1", el.Address)
			}
		})
	}
}

// TestICMPLoopback pings 127.0.0.1 and ::1 with whichever ICMP socket the
// system allows.
func TestICMPLoopback(t *testing.T) {
	p, err := newICMPProber(netip.MustParseAddr("127.0.0.1"), time.Second, true)
	if err != nil {
		t.Skipf("no ICMP socket here: %v", err)
	}
	p.close()
	for _, dest := range []string{"127.0.0.1", "::1"} {
		res, el := runPing(t, `{"destination":"`+dest+`","protocol":"icmp","count":3,"timeout":2}`)
		if !res.Success || !res.FoundAnything || el.Reached != 3 {
			t.Errorf("ping %s: result %+v, probes %+v; want 3 replies", dest, res, el.Probes)
		}
		var st Statistics
		if err := json.Unmarshal(res.Statistics, &st); err != nil {
			t.Fatal(err)
		}
		if st.Sent != 3 || st.Reached != 3 || st.MinLatency <= 0 || st.MinLatency > st.AvgLatency || st.AvgLatency > st.MaxLatency {
			t.Errorf("ping %s: statistics %+v, want 3 sent and reached, min <= avg <= max", dest, st)
		}
	}
}

// unprivilegedEnv tells TestICMPUnprivileged that it runs inside a
// namespace made for it by TestICMPUnprivilegedNamespace, where it may
// allow unprivileged ICMP sockets and must not skip.
const unprivilegedEnv = "MIG_PING_TEST_UNPRIVILEGED"

// TestICMPUnprivileged uses an unprivileged ICMP datagram socket, where
// the system allows them.
func TestICMPUnprivileged(t *testing.T) {
	inside := os.Getenv(unprivilegedEnv) != ""
	if inside {
		if err := os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 2147483647"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := newICMPProber(netip.MustParseAddr("127.0.0.1"), 2*time.Second, false)
	if err != nil {
		if inside {
			t.Fatal(err)
		}
		t.Skipf("unprivileged ICMP sockets are not allowed here: %v", err)
	}
	defer p.close()
	for seq := 1; seq <= 2; seq++ {
		if pr := p.probe(t.Context(), seq); pr.Result != ResultReply || pr.Seq != seq {
			t.Errorf("probe %d = %+v, want a reply", seq, pr)
		}
	}
}

// TestResolveFailure resolves a name that does not exist, with a resolver
// that never leaves the machine.
func TestResolveFailure(t *testing.T) {
	saved := resolver
	resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	defer func() { resolver = saved }()
	res, el := runPing(t, `{"destination":"no-such-host.invalid","protocol":"icmp","count":1,"timeout":1}`)
	if !res.Success || res.FoundAnything || len(el.Probes) != 0 || el.Error == "" {
		t.Errorf("result %+v, elements %+v; want success, nothing found, no probe, an error", res, el)
	}
}

// TestInterrupted stops the module while a probe waits.
func TestInterrupted(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	r, err := parse([]byte(`{"destination":"127.0.0.1","protocol":"udp","count":3,"timeout":30,"destinationport":` +
		strconv.Itoa(silent.LocalAddr().(*net.UDPAddr).Port) + `}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := r.Run(ctx, module.Env{})
	if res.Success || res.FoundAnything || len(res.Errors) == 0 {
		t.Errorf("result = %+v, want a failure saying it was interrupted", res)
	}
}

func TestMain(m *testing.M) {
	netnstest.MaybeServe()
	os.Exit(m.Run())
}
