package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/server"
)

// TestAPIFloodAndSlowClients runs the real mig-server (-c, with the API's
// and the relay's connection limits set low) and attacks its API from
// 127.0.0.2 while a legitimate client uses it from 127.0.0.1: a flood of
// idle connections, clients that send their headers or their body a byte at
// a time, 1 MiB of headers, and a flood of the relay beyond
// relay.maxconnections. The server keeps answering the legitimate client,
// the file descriptors it holds stay within the per-address limit, every
// slow connection is closed by the server, and the relay refuses the
// connections over its bound at once. Loopback only, bounded.
func TestAPIFloodAndSlowClients(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile, err := server.EnsureDevTLS(dir)
	must(t, err)
	const perAddr = 16
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	const relayMax = 32
	conf, _ := json.Marshal(map[string]any{
		"api": map[string]any{"listen": apiAddr, "cert": certFile, "key": keyFile,
			"maxconnectionsperaddress": perAddr, "readheadertimeout": "20s", "readtimeout": "5s", "idletimeout": "5s"},
		"relay":            map[string]any{"listen": relayAddr, "ca": caFile, "maxconnections": relayMax},
		"store":            "sqlite:" + filepath.Join(dir, "mig.db"),
		"enrollmenttokens": []string{"e2e-enrollment-token-0123456789"},
	})
	confFile := filepath.Join(dir, "server.json")
	must(t, os.WriteFile(confFile, conf, 0o600))
	srv := start(t, nil, bins.server, "-c", confFile)

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(caFile)
	must(t, err)
	pool.AppendCertsFromPEM(ca)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	// health is the legitimate client: a new connection each time, from
	// 127.0.0.1.
	health := func() error {
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, DisableKeepAlives: true}}
		resp, err := hc.Get("https://" + apiAddr + "/api/v1/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	waitFor(t, 30*time.Second, "mig-server's API", func() bool { return health() == nil })
	pid := srv.cmd.Process.Pid
	fds := func() int {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatalf("counting the server's file descriptors: %v", err)
		}
		return len(ents)
	}
	baseline := fds()

	// attacker dials the API from 127.0.0.2, another loopback address.
	attacker := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	// closedByServer reports whether the server closed c: a read returns
	// an error (EOF, reset) before the deadline.
	closedByServer := func(c net.Conn, within time.Duration) bool {
		_ = c.SetReadDeadline(time.Now().Add(within))
		_, err := io.Copy(io.Discard, c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return false
		}
		return true
	}

	t.Run("connection flood", func(t *testing.T) {
		atk := attack(t, "api-flood", "flood of idle connections from one address")
		const n = 10 * perAddr
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range n {
			c, err := attacker.Dial("tcp", apiAddr)
			if err != nil {
				break // refused at the door is fine too
			}
			conns = append(conns, c)
		}
		// The connections over the limit are closed by the server as it
		// accepts them: its file descriptors stay within the limit. (The
		// wait is well under api.readheadertimeout, which would close
		// them all without a limit.)
		bounded := false
		for end := time.Now().Add(10 * time.Second); !bounded && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			bounded = fds()-baseline <= perAddr+8
		}
		if !bounded {
			atk.executed("the server holds %d more file descriptors during a flood of %d connections, want at most %d", fds()-baseline, len(conns), perAddr+8)
		}
		closed := 0
		for _, c := range conns {
			if closedByServer(c, 200*time.Millisecond) {
				closed++
			}
		}
		if err := health(); err != nil {
			atk.executed("the API does not answer a legitimate client during the flood: %v", err)
		}
		if closed < len(conns)-perAddr {
			t.Errorf("the server closed %d of %d flood connections, want at least %d", closed, len(conns), len(conns)-perAddr)
		}
		atk.refused()
	})

	slow := []struct {
		name    string
		request string // what the attacker sends before dribbling
	}{
		{"headers a byte at a time", "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "},
		{"body a byte at a time", "POST /api/v1/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"token\":\""},
	}
	for _, tc := range slow {
		t.Run(tc.name, func(t *testing.T) {
			atk := attack(t, "api-flood", "slow client: "+tc.name)
			waitFor(t, 30*time.Second, "the server to close the previous connections", func() bool { return fds()-baseline <= 4 })
			var conns []*tls.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for range perAddr {
				raw, err := attacker.Dial("tcp", apiAddr)
				must(t, err)
				c := tls.Client(raw, tlsConf)
				conns = append(conns, c)
				if _, err := c.Write([]byte(tc.request)); err != nil {
					t.Fatalf("writing the slow request: %v", err)
				}
			}
			// Dribble a byte a second on each until the server closes it;
			// the bound is generous, the server's timeouts are seconds.
			deadline := time.Now().Add(60 * time.Second)
			open := len(conns)
			alive := make([]bool, len(conns))
			for i := range alive {
				alive[i] = true
			}
			for open > 0 && time.Now().Before(deadline) {
				if err := health(); err != nil {
					atk.executed("the API does not answer a legitimate client while slow clients hold it: %v", err)
					return
				}
				for i, c := range conns {
					if !alive[i] {
						continue
					}
					_ = c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.Write([]byte("a")); err != nil || closedByServer(c, 50*time.Millisecond) {
						alive[i] = false
						open--
					}
				}
				time.Sleep(time.Second)
			}
			if open > 0 {
				atk.executed("%d of %d slow connections still open after 60s", open, len(conns))
			}
			atk.refused()
		})
	}

	t.Run("relay connection flood", func(t *testing.T) {
		atk := attack(t, "relay-flood", "flood of connections beyond relay.maxconnections")
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 6 * relayMax {
			c, err := attacker.Dial("tcp", relayAddr)
			if err != nil {
				break
			}
			conns = append(conns, c)
		}
		// The relay refuses the connections over its bound at once; the
		// others it would close only after its 6s login timeout.
		closed := make(chan bool, len(conns))
		for _, c := range conns {
			go func() { closed <- closedByServer(c, 2*time.Second) }()
		}
		n := 0
		for range conns {
			if <-closed {
				n++
			}
		}
		if n < len(conns)-relayMax {
			atk.executed("the relay refused %d of %d connections at once, want at least %d (relay.maxconnections %d)", n, len(conns), len(conns)-relayMax, relayMax)
		}
		if err := health(); err != nil {
			atk.executed("the API does not answer during the relay flood: %v", err)
		}
		atk.refused()
	})

	t.Run("oversized headers", func(t *testing.T) {
		atk := attack(t, "api-flood", "oversized request headers")
		raw, err := attacker.Dial("tcp", apiAddr)
		must(t, err)
		c := tls.Client(raw, tlsConf)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		req := "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + strings.Repeat("a", 1<<20) + "\r\n\r\n"
		_, _ = c.Write([]byte(req)) // the server may close before it has read it all
		b, _ := io.ReadAll(c)
		if !strings.Contains(string(b), "431") {
			atk.executed("1 MiB of headers answered %q, want 431", firstLine(string(b)))
		}
		atk.refused()
	})

	if err := health(); err != nil {
		t.Errorf("the API does not answer after the attacks: %v", err)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
