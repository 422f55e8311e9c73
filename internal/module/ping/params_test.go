package ping_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/module/moduletest"
	"github.com/migplatform/mig/internal/module/ping"
)

func TestParseParametersErrors(t *testing.T) {
	tests := []struct {
		name   string
		params string
		want   []string // the error must contain each
	}{
		{"no destination", `{"protocol":"icmp"}`, []string{"no destination"}},
		{"no protocol", `{"destination":"10.0.0.1"}`, []string{"no protocol"}},
		{"unknown protocol", `{"destination":"10.0.0.1","protocol":"sctp"}`, []string{`protocol "sctp"`, "icmp, tcp or udp"}},
		{"icmp with a port", `{"destination":"10.0.0.1","protocol":"icmp","destinationport":80}`, []string{"destinationport 80", "icmp has no ports"}},
		{"tcp without a port", `{"destination":"10.0.0.1","protocol":"tcp"}`, []string{"destinationport 0", "out of range"}},
		{"udp port too big", `{"destination":"10.0.0.1","protocol":"udp","destinationport":65536}`, []string{"destinationport 65536"}},
		{"negative port", `{"destination":"10.0.0.1","protocol":"tcp","destinationport":-1}`, []string{"destinationport -1"}},
		{"count too big", `{"destination":"10.0.0.1","protocol":"icmp","count":101}`, []string{"count 101", "1 to 100"}},
		{"negative count", `{"destination":"10.0.0.1","protocol":"icmp","count":-3}`, []string{"count -3"}},
		{"fractional count", `{"destination":"10.0.0.1","protocol":"icmp","count":1.5}`, []string{"count"}},
		{"negative timeout", `{"destination":"10.0.0.1","protocol":"icmp","timeout":-1}`, []string{"timeout -1s", "out of range"}},
		{"timeout too long", `{"destination":"10.0.0.1","protocol":"icmp","timeout":61}`, []string{"timeout 61s"}},
		{"huge timeout", `{"destination":"10.0.0.1","protocol":"icmp","timeout":1e300}`, []string{"timeout 1e+300s"}},
		{"tiny timeout", `{"destination":"10.0.0.1","protocol":"icmp","timeout":1e-9}`, []string{"under a millisecond"}},
		{"count times timeout", `{"destination":"10.0.0.1","protocol":"icmp","count":100,"timeout":5}`, []string{"count 100 × timeout 5s", "over the limit of 5m0s"}},
		{"bad IPv4", `{"destination":"10.22.75.256","protocol":"icmp"}`, []string{`"10.22.75.256"`, "not a valid IP address"}},
		{"bad IPv6", `{"destination":"fe80::1::2","protocol":"icmp"}`, []string{`"fe80::1::2"`}},
		{"zone", `{"destination":"fe80::1%eth0","protocol":"icmp"}`, []string{`"fe80::1%eth0"`, "zones"}},
		{"unspecified", `{"destination":"0.0.0.0","protocol":"icmp"}`, []string{`"0.0.0.0"`, "unspecified"}},
		{"multicast", `{"destination":"224.0.0.1","protocol":"icmp"}`, []string{`"224.0.0.1"`, "multicast"}},
		{"bad host name", `{"destination":"a b.example.com","protocol":"icmp"}`, []string{`"a b.example.com"`, "character"}},
		{"empty label", `{"destination":"a..example.com","protocol":"icmp"}`, []string{`"a..example.com"`, "empty"}},
		{"hyphen label", `{"destination":"-a.example.com","protocol":"icmp"}`, []string{`"-a.example.com"`}},
		{"long name", `{"destination":"` + strings.Repeat("a.", 127) + `a","protocol":"icmp"}`, []string{"over the limit of 253"}},
		{"url", `{"destination":"http://example.com/","protocol":"tcp","destinationport":80}`, []string{`"http://example.com/"`}},
		{"unknown field", `{"destination":"10.0.0.1","protocol":"icmp","ttl":3}`, []string{`"ttl"`}},
		{"trailing data", `{"destination":"10.0.0.1","protocol":"icmp"} []`, []string{"after"}},
		{"mis-cased key", `{"destination":"10.0.0.1","Protocol":"icmp"}`, []string{`"Protocol"`, "case-sensitive"}},
		{"not an object", `"10.0.0.1"`, []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ping.ParseParameters([]byte(tt.params))
			moduletest.Refused(t, tt.params, err, ping.ErrInvalidParameters, tt.want)
		})
	}
}

func TestParseParametersAccepts(t *testing.T) {
	for _, p := range []string{
		`{"destination":"10.22.75.57","protocol":"icmp"}`,
		`{"destination":"10.22.75.57","protocol":"ICMP","count":100,"timeout":3}`,
		`{"destination":"2001:db8::1","protocol":"tcp","destinationport":443,"count":1,"timeout":0.25}`,
		`{"destination":"db-1.example.net.","protocol":"udp","destinationport":53}`,
		`{"destination":"localhost","protocol":"tcp","destinationport":65535,"timeout":60,"count":5}`,
	} {
		if _, err := ping.ParseParameters([]byte(p)); err != nil {
			t.Errorf("ParseParameters(%s) = %v, want no error", p, err)
		}
	}
}

func FuzzParseParameters(f *testing.F) {
	for _, seed := range []string{
		`{"destination":"10.22.75.57","protocol":"icmp"}`,
		`{"destination":"example.com","protocol":"tcp","destinationport":443,"count":2,"timeout":0.5}`,
		`{"destination":"::1","protocol":"udp","destinationport":53}`,
		`{"destination":"10.0.0.1","protocol":"icmp","count":100,"timeout":60}`,
		`{"destination":"fe80::1%lo","protocol":"icmp"}`,
		`{"destination":"1.2.3.4.5","protocol":"tcp"}`,
		`{}`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ping.ParseParameters(data)
		if err != nil {
			if !errors.Is(err, ping.ErrInvalidParameters) {
				t.Errorf("error %v does not wrap ErrInvalidParameters", err)
			}
			if r != nil {
				t.Errorf("runner %v returned with error %v", r, err)
			}
			return
		}
		if r == nil {
			t.Fatal("nil runner without error")
		}
		var p ping.Parameters
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("accepted parameters do not decode: %v", err)
		}
		if p.Destination == "" || p.Count < 0 || p.Count > ping.MaxCount || p.Timeout < 0 || p.Timeout > ping.MaxTimeout.Seconds() {
			t.Errorf("accepted out-of-range parameters %+v", p)
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ping.ParseParameters(again); err != nil {
			t.Errorf("re-encoded parameters %s refused: %v", again, err)
		}
	})
}

// TestFlagsSeed checks the seed command line: "mig ping -t \"name LIKE
// '%sc13%'\" -show notfound -d 10.22.75.57 -p icmp". -t and -show are
// global flags of mig, which it registers on the same flag set after the
// module's; the module must leave them free.
func TestFlagsSeed(t *testing.T) {
	m, ok := module.Lookup(ping.Name)
	if !ok {
		t.Fatal("ping module is not registered")
	}
	fs := flag.NewFlagSet("mig ping", flag.ContinueOnError)
	build := module.SetFlags(m, fs)
	for _, global := range []string{"t", "show"} {
		if fs.Lookup(global) != nil {
			t.Fatalf("the ping module registers -%s, which the seed command line uses as mig's global flag", global)
		}
	}
	target := fs.String("t", "", "target")
	show := fs.String("show", "found", "show")
	args := []string{"-t", "name LIKE '%sc13%'", "-show", "notfound", "-d", "10.22.75.57", "-p", "icmp"}
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	raw, r, err := build()
	if err != nil || r == nil {
		t.Fatalf("build() = %v, error %v; want a runner", r, err)
	}
	got, err := action.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"destination":"10.22.75.57","protocol":"icmp"}`; string(got) != want {
		t.Errorf("build() = %s, want %s", got, want)
	}
	if *target != "name LIKE '%sc13%'" || *show != "notfound" {
		t.Errorf("-t = %q, -show = %q; want the seed's target and notfound", *target, *show)
	}
}

func TestFlags(t *testing.T) {
	m, _ := module.Lookup(ping.Name)
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr []string
	}{
		{name: "defaults", args: []string{"-d", "10.0.0.1"}, want: `{"destination":"10.0.0.1","protocol":"icmp"}`},
		{name: "tcp", args: []string{"-d", "db.example.net", "-p", "tcp", "-dp", "5432", "-c", "5", "-timeout", "1500ms"},
			want: `{"count":5,"destination":"db.example.net","destinationport":5432,"protocol":"tcp","timeout":1.5}`},
		{name: "seconds", args: []string{"-d", "::1", "-p", "udp", "-dp", "53", "-timeout", "2"},
			want: `{"destination":"::1","destinationport":53,"protocol":"udp","timeout":2}`},
		{name: "no destination", args: []string{"-p", "icmp"}, wantErr: []string{"flag -d", "no destination"}},
		{name: "bad protocol", args: []string{"-d", "10.0.0.1", "-p", "gre"}, wantErr: []string{"flag -p", `"gre"`}},
		{name: "tcp without port", args: []string{"-d", "10.0.0.1", "-p", "tcp"}, wantErr: []string{"flag -dp", "destinationport 0"}},
		{name: "icmp with port", args: []string{"-d", "10.0.0.1", "-dp", "22"}, wantErr: []string{"flag -dp", "destinationport 22"}},
		{name: "count zero", args: []string{"-d", "10.0.0.1", "-c", "0"}, wantErr: []string{"flag -c", "count 0"}},
		{name: "count too big", args: []string{"-d", "10.0.0.1", "-c", "1000"}, wantErr: []string{"flag -c", "count 1000"}},
		{name: "too long altogether", args: []string{"-d", "10.0.0.1", "-c", "100", "-timeout", "10s"}, wantErr: []string{"over the limit"}},
		{name: "negative duration", args: []string{"-d", "10.0.0.1", "-timeout", "-1s"}, wantErr: []string{"not positive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := moduletest.Build(t, m, tt.args, tt.wantErr)
			if raw == nil {
				return
			}
			got, err := action.Canonical(raw)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("build() = %s\nwant      %s", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"soon", "0", "61", "-2"} {
		fs := flag.NewFlagSet("ping", flag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		module.SetFlags(m, fs)
		if err := fs.Parse([]string{"-timeout", bad}); err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("Parse(-timeout %s) error = %v, want one naming %q", bad, err, bad)
		}
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, _ := module.Lookup(ping.Name)
	results := []struct {
		agent string
		el    ping.Elements
	}{
		{"web1.example.net", ping.Elements{Destination: "10.22.75.57", Address: "10.22.75.57", Protocol: "icmp", Count: 3, Timeout: 5, Reached: 2,
			Probes: []ping.Probe{
				{Seq: 1, Result: ping.ResultReply, Latency: 0.412},
				{Seq: 2, Result: ping.ResultTimeout, Detail: "no answer in 5s"},
				{Seq: 3, Result: ping.ResultReply, Latency: 12.5},
			}}},
		{"db2.example.net", ping.Elements{Destination: "db.example.net", Address: "10.0.0.5", Protocol: "tcp", DestinationPort: 5432,
			Count: 2, Timeout: 1, Reached: 1,
			Probes: []ping.Probe{
				{Seq: 1, Result: ping.ResultOpen, Latency: 0.2},
				{Seq: 2, Result: ping.ResultClosed, Latency: 0.15, Detail: "connection refused"},
			}}},
		{"dns3.example.net", ping.Elements{Destination: "2001:db8::53", Address: "2001:db8::53", Protocol: "udp", DestinationPort: 53,
			Count: 1, Timeout: 5, Reached: 1,
			Probes: []ping.Probe{{Seq: 1, Result: ping.ResultMaybeOpen, Detail: "no answer and no ICMP error in 5s"}}}},
	}
	var got bytes.Buffer
	for _, r := range results {
		el, err := json.Marshal(r.el)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PrintResult(&got, r.agent, action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
			t.Fatalf("PrintResult: %v", err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func TestPrintResultNotFound(t *testing.T) {
	m, _ := module.Lookup(ping.Name)
	el, _ := json.Marshal(ping.Elements{Destination: "10.0.0.1", Protocol: "icmp", Count: 1,
		Probes: []ping.Probe{{Seq: 1, Result: ping.ResultTimeout}}})
	for _, r := range []action.Result{
		{Success: true, Elements: el},
		{Success: true},
		{Success: false, Errors: []string{"boom"}},
	} {
		var b bytes.Buffer
		if err := m.PrintResult(&b, "agent1", r); err != nil || b.Len() != 0 {
			t.Errorf("PrintResult(%+v) = %q, %v; want nothing", r, b.String(), err)
		}
	}
	if err := m.PrintResult(&bytes.Buffer{}, "agent1", action.Result{FoundAnything: true, Elements: json.RawMessage(`[1]`)}); err == nil {
		t.Error("PrintResult of bad elements: error = nil, want one")
	}
}
