package timedrift

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
)

// sntpServer answers SNTP requests on 127.0.0.1 with its clock set offset
// ahead of the local one; reply can alter each answer. It returns the
// server's address; it stops when the test ends.
func sntpServer(t *testing.T, offset time.Duration, reply func(p []byte)) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		conn.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < packetSize {
				continue
			}
			p := make([]byte, packetSize)
			p[0] = 0<<6 | 4<<3 | modeServer
			p[1] = 2
			copy(p[offOriginate:offOriginate+8], buf[offTransmit:offTransmit+8])
			now := time.Now().Add(offset)
			binary.BigEndian.PutUint64(p[offReceive:], toNTP(now))
			binary.BigEndian.PutUint64(p[offTransmit:], toNTP(now))
			if reply != nil {
				reply(p)
			}
			if _, err := conn.WriteTo(p, from); err != nil {
				return
			}
		}
	})
	return conn.LocalAddr().String()
}

func run(t *testing.T, p Parameters) (action.Result, Elements, Statistics) {
	t.Helper()
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseParameters(raw)
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(t.Context(), module.Env{})
	var (
		el Elements
		st Statistics
	)
	if err := json.Unmarshal(res.Elements, &el); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(res.Statistics, &st); err != nil {
		t.Fatal(err)
	}
	return res, el, st
}

func TestDrift(t *testing.T) {
	ahead := sntpServer(t, time.Hour, nil)
	behind := sntpServer(t, -time.Hour, nil)
	exact := sntpServer(t, 0, nil)
	slightly := sntpServer(t, 3*time.Second, nil)
	for _, tc := range []struct {
		name      string
		servers   []string
		drift     string
		wantDrift bool
		near      time.Duration
	}{
		{"server an hour ahead", []string{ahead}, "10s", true, time.Hour},
		{"server an hour behind", []string{behind}, "10s", true, -time.Hour},
		{"in sync", []string{exact}, "10s", false, 0},
		{"3s within 10s", []string{slightly}, "10s", false, 3 * time.Second},
		{"3s beyond 1s", []string{slightly}, "1s", true, 3 * time.Second},
		{"median of three", []string{ahead, exact, ahead}, "1m", true, time.Hour},
		{"median of two", []string{behind, exact}, "1m", true, -30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, el, st := run(t, Parameters{Drift: tc.drift, Servers: tc.servers, Timeout: "10s"})
			if !res.Success || len(res.Errors) != 0 {
				t.Fatalf("result %+v, want success without errors", res)
			}
			if el.HasDrift != tc.wantDrift || res.FoundAnything != tc.wantDrift {
				t.Errorf("hasdrift = %v, foundanything = %v, want %v (drift %s)", el.HasDrift, res.FoundAnything, tc.wantDrift, el.Drift)
			}
			got, err := time.ParseDuration(el.Drift)
			if err != nil {
				t.Fatal(err)
			}
			// The loopback round trip is the only error; a second is far above it.
			if d := got - tc.near; d > time.Second || d < -time.Second {
				t.Errorf("drift = %v, want about %v", got, tc.near)
			}
			if len(st.Servers) != len(tc.servers) || len(el.Drifts) != len(tc.servers) {
				t.Errorf("statistics %+v and drifts %v, want one per server", st, el.Drifts)
			}
			for _, s := range st.Servers {
				if !s.Reachable || s.Stratum != 2 {
					t.Errorf("server stat %+v, want reachable at stratum 2", s)
				}
			}
			if _, err := time.Parse(time.RFC3339Nano, el.LocalTime); err != nil {
				t.Errorf("local time %q: %v", el.LocalTime, err)
			}
		})
	}
}

func TestBadServers(t *testing.T) {
	kod := sntpServer(t, 0, func(p []byte) { p[1] = 0; copy(p[12:16], "RATE") })
	unsynced := sntpServer(t, 0, func(p []byte) { p[0] |= 3 << 6 })
	forged := sntpServer(t, time.Hour, func(p []byte) { p[offOriginate] ^= 0xff })
	good := sntpServer(t, 0, nil)
	// A port nobody listens on: take one and close it.
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := c.LocalAddr().String()
	c.Close()
	for _, tc := range []struct {
		name    string
		server  string
		wantErr string
	}{
		{"kiss-o'-death", kod, `kiss-o'-death "RATE"`},
		{"unsynchronized", unsynced, "not synchronized"},
		{"forged originate", forged, "no answer: context deadline exceeded"},
		{"nobody", closed, closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, el, _ := run(t, Parameters{Servers: []string{tc.server}, Timeout: "300ms"})
			if res.Success || res.FoundAnything || el.Drift != "" {
				t.Errorf("result %+v, elements %+v, want a failure", res, el)
			}
			if !strings.Contains(strings.Join(res.Errors, "; "), tc.wantErr) {
				t.Errorf("errors %q, want one containing %q", res.Errors, tc.wantErr)
			}
			// Next to a good server, the bad one is an error but the result stands.
			res, el, _ = run(t, Parameters{Servers: []string{tc.server, good}, Timeout: "300ms"})
			if !res.Success || el.HasDrift || len(el.Drifts) != 1 || len(res.Errors) != 1 {
				t.Errorf("with a good server: result %+v, elements %+v, want success, no drift, one error", res, el)
			}
		})
	}
}

func TestParseReply(t *testing.T) {
	nonce := []byte("12345678")
	t1 := time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC) // NTP era 1
	t4 := t1.Add(20 * time.Millisecond)
	ok := make([]byte, packetSize)
	ok[0] = 4<<3 | modeServer
	ok[1] = 1
	copy(ok[offOriginate:], nonce)
	binary.BigEndian.PutUint64(ok[offReceive:], toNTP(t1.Add(5*time.Second+5*time.Millisecond)))
	binary.BigEndian.PutUint64(ok[offTransmit:], toNTP(t1.Add(5*time.Second+15*time.Millisecond)))
	m, err := parseReply(ok, nonce, t1, t4)
	if err != nil {
		t.Fatal(err)
	}
	near := func(got, want time.Duration) bool { return got-want < time.Microsecond && want-got < time.Microsecond }
	if !near(m.Offset, 5*time.Second) || !near(m.Delay, 10*time.Millisecond) {
		t.Errorf("offset %v delay %v, want 5s and 10ms", m.Offset, m.Delay)
	}
	if y := m.ServerTime.Year(); y != 2040 {
		t.Errorf("server time %v, want it in 2040 (NTP era 1)", m.ServerTime)
	}
	for _, tc := range []struct {
		name   string
		change func(p []byte) []byte
	}{
		{"short", func(p []byte) []byte { return p[:40] }},
		{"client mode", func(p []byte) []byte { p[0] = 4<<3 | modeClient; return p }},
		{"version 0", func(p []byte) []byte { p[0] = modeServer; return p }},
		{"stratum 16", func(p []byte) []byte { p[1] = 16; return p }},
		{"zero transmit", func(p []byte) []byte { clear(p[offTransmit:]); return p }},
	} {
		p := tc.change(bytes.Clone(ok))
		if _, err := parseReply(p, nonce, t1, t4); !errors.Is(err, ErrBadReply) {
			t.Errorf("%s: error %v, want ErrBadReply", tc.name, err)
		}
	}
}

func TestFlagsAndValidation(t *testing.T) {
	m, ok := module.Lookup(Name)
	if !ok {
		t.Fatal("timedrift module is not registered")
	}
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{[]string{"-drift", "5s"}, `{"drift":"5s"}`, ""},
		{[]string{"-drift", "1m", "-server", "ntp.example.net", "-server", "10.0.0.1:1123", "-server", "[::1]:123", "-timeout", "2s"},
			`{"drift":"1m","servers":["ntp.example.net","10.0.0.1:1123","[::1]:123"],"timeout":"2s"}`, ""},
		{nil, `{}`, ""},
		{[]string{"-drift", "five"}, "", `drift "five"`},
		{[]string{"-drift", "-5s"}, "", `drift "-5s"`},
		{[]string{"-timeout", "2h"}, "", `timeout "2h"`},
		{[]string{"-server", "bad host"}, "", `server "bad host"`},
		{[]string{"-server", "ntp:0"}, "", `server "ntp:0"`},
		{[]string{"-server", "ntp:x"}, "", `server "ntp:x"`},
		{[]string{"-server", "-ntp"}, "", `server "-ntp"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet(Name, flag.ContinueOnError)
			build := module.SetFlags(m, fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			got, r, err := build()
			if (err == nil) != (r != nil) {
				t.Errorf("build() runner = %v with error %v, want a runner exactly when there is no error", r, err)
			}
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalidParameters) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("build error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("build = %s, %v, want %s", got, err, tc.want)
			}
		})
	}
	many := `{"servers":["` + strings.Repeat(`a","`, MaxServers) + `a"]}`
	for _, in := range []string{many, `{"drift":"1s","x":1}`, `{"drift":1}`, `{} {}`} {
		if _, err := ParseParameters([]byte(in)); !errors.Is(err, ErrInvalidParameters) {
			t.Errorf("ParseParameters(%.50s) error = %v, want ErrInvalidParameters", in, err)
		}
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(Name)
	var got bytes.Buffer
	for _, el := range []Elements{
		{LocalTime: "2026-03-01T10:20:30.123456789Z", HasDrift: true, AllowedDrift: "10s", Drift: "1h0m0.004s", Drifts: []string{"1h0m0.004s"}},
		{LocalTime: "2026-03-01T10:20:31Z", HasDrift: true, AllowedDrift: "1s", Drift: "-3.5s", Drifts: []string{"-3.5s", "-3.4s", "-3.6s"}},
		{LocalTime: "2026-03-01T10:20:32Z", AllowedDrift: "10s", Drift: "2ms"},
		{LocalTime: "2026-03-01T10:20:33Z", AllowedDrift: "10s"},
	} {
		raw, err := json.Marshal(el)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PrintResult(&got, "host"+el.LocalTime[17:19], action.Result{FoundAnything: el.HasDrift, Success: true, Elements: raw}); err != nil {
			t.Fatal(err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func FuzzParseParameters(f *testing.F) {
	for _, s := range []string{
		`{"drift":"5s"}`,
		`{"drift":"1m","servers":["ntp.example.net","10.0.0.1:1123","[::1]:123"],"timeout":"2s"}`,
		`{"servers":["a:b:c"]}`, `{"drift":"-1s"}`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseParameters(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidParameters) || r != nil {
				t.Errorf("error %v (runner %v) does not wrap ErrInvalidParameters", err, r)
			}
			return
		}
		if r.drift <= 0 || r.timeout <= 0 || r.timeout > MaxTimeout || len(r.servers) == 0 || len(r.servers) > MaxServers {
			t.Errorf("parameters %q accepted as %+v", data, r)
		}
		for _, s := range r.servers {
			if _, _, err := net.SplitHostPort(s); err != nil {
				t.Errorf("server %q: %v", s, err)
			}
		}
	})
}

func FuzzParseReply(f *testing.F) {
	p := make([]byte, packetSize)
	p[0] = 4<<3 | modeServer
	p[1] = 2
	copy(p[offOriginate:], "noncenon")
	binary.BigEndian.PutUint64(p[offReceive:], toNTP(time.Unix(1e9, 0)))
	binary.BigEndian.PutUint64(p[offTransmit:], toNTP(time.Unix(1e9, 0)))
	f.Add(p)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		t1 := time.Unix(1e9, 0)
		if _, err := parseReply(data, []byte("noncenon"), t1, t1.Add(time.Millisecond)); err != nil && !errors.Is(err, ErrBadReply) {
			t.Errorf("error %v does not wrap ErrBadReply", err)
		}
	})
}
