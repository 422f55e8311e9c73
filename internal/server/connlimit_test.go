package server

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestConnLimiter checks the API's connection bounds: connections over the
// per-address bound are closed at once, trusted proxies are exempt from it
// but not from the total, and a closed connection gives its place back.
func TestConnLimiter(t *testing.T) {
	tests := []struct {
		name       string
		max, per   int
		exempt     []netip.Prefix
		dial       int
		wantServed int
	}{
		{"per address", 10, 2, nil, 5, 2},
		{"total", 3, 3, nil, 5, 3},
		{"proxy exempt from per address", 4, 1, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 6, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := newConnLimiter(ln, tc.max, tc.per, tc.exempt, slog.New(slog.DiscardHandler))
			defer l.Close()
			accepted := make(chan net.Conn, tc.dial)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					accepted <- c
				}
			}()
			var clients []net.Conn
			for range tc.dial {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				clients = append(clients, c)
			}
			// Each client is either served (its connection stays open)
			// or closed by the limiter.
			closed := 0
			for _, c := range clients {
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); err == io.EOF {
					closed++
				}
			}
			if served := tc.dial - closed; served != tc.wantServed {
				t.Errorf("%d of %d connections served, want %d", served, tc.dial, tc.wantServed)
			}
			// Closing a served connection frees its place.
			first := <-accepted
			first.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case got := <-accepted:
				got.Close()
			case <-time.After(10 * time.Second):
				t.Errorf("a connection after one was closed was not served")
			}
		})
	}
}

func TestConfigValidateAPILimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"maxconnections", func(c *Config) { c.API.MaxConnections = 0 }, "api.maxconnections 0"},
		{"per address over total", func(c *Config) { c.API.MaxConnections, c.API.MaxConnectionsPerAddress = 10, 11 }, "api.maxconnectionsperaddress 11"},
		{"timeout", func(c *Config) { c.API.ReadTimeout = 0 }, "api.readtimeout 0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.API.Cert, c.API.Key, c.Store = "c.pem", "k.pem", "sqlite:/tmp/x.db"
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
