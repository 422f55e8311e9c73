package netstat_test

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
	"github.com/migplatform/mig/internal/module/netstat"
)

func TestParseParametersErrors(t *testing.T) {
	many := `["` + strings.Repeat(`10.0.0.1","`, netstat.MaxValues) + `10.0.0.1"]`
	tests := []struct {
		name   string
		params string
		want   []string // the error must contain each
	}{
		{"nothing", `{}`, []string{"no search"}},
		{"only namespaces", `{"searchnamespaces":true}`, []string{"no search"}},
		{"bad local mac regex", `{"localmac":["8c:70:("]}`, []string{"localmac", `"8c:70:("`, "does not compile"}},
		{"bad neighbour mac regex", `{"neighbormac":["[z-a]"]}`, []string{"neighbormac", `"[z-a]"`}},
		{"empty mac regex", `{"neighbormac":[""]}`, []string{"neighbormac", "empty"}},
		{"long mac regex", `{"localmac":["` + strings.Repeat("a", netstat.MaxRegexLen+1) + `"]}`, []string{"localmac", "over the limit"}},
		{"bad cidr", `{"connectedip":["10.0.0.0/33"]}`, []string{"connectedip", `"10.0.0.0/33"`, "not an IP or CIDR"}},
		{"bad ip", `{"localip":["10.0.0.256"]}`, []string{"localip", `"10.0.0.256"`}},
		{"hostname", `{"neighborip":["example.com"]}`, []string{"neighborip", `"example.com"`}},
		{"zone", `{"neighborip":["fe80::1%eth0"]}`, []string{`"fe80::1%eth0"`, "zones"}},
		{"empty ip", `{"connectedip":[""]}`, []string{"connectedip", `""`}},
		{"port zero", `{"listeningport":[0]}`, []string{"listeningport 0", "out of range"}},
		{"port too big", `{"listeningport":[65536]}`, []string{"listeningport 65536", "out of range"}},
		{"negative port", `{"listeningport":[-22]}`, []string{"listeningport -22"}},
		{"port as string", `{"listeningport":["22"]}`, []string{"listeningport"}},
		{"too many values", `{"connectedip":` + many + `}`, []string{"connectedip", "257 values", "limit of 256"}},
		{"unknown field", `{"remoteip":["10.0.0.1"]}`, []string{`"remoteip"`}},
		{"trailing data", `{"listeningport":[22]} {}`, []string{"after"}},
		{"mis-cased key", `{"ListeningPort":[22]}`, []string{`"ListeningPort"`, "case-sensitive"}},
		{"not an object", `[]`, []string{"cannot unmarshal"}},
		{"empty", ``, []string{"EOF"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := netstat.ParseParameters([]byte(tt.params))
			moduletest.Refused(t, tt.params, err, netstat.ErrInvalidParameters, tt.want)
		})
	}
}

func TestParseParametersAccepts(t *testing.T) {
	for _, p := range []string{
		`{"neighbormac":["8c:70:5a:c8:be:50"]}`,
		`{"neighbormac":["8C:70:5A"],"localmac":["^02:"]}`,
		`{"connectedip":["13.37.66.66","10.0.0.0/8","2001:db8::/32","::1"],"searchnamespaces":true}`,
		`{"localip":["10.1.2.3/24"],"neighborip":["fe80::/10"],"listeningport":[22,22,65535,1]}`,
	} {
		if _, err := netstat.ParseParameters([]byte(p)); err != nil {
			t.Errorf("ParseParameters(%s) = %v, want no error", p, err)
		}
	}
}

func FuzzParseParameters(f *testing.F) {
	for _, seed := range []string{
		`{"neighbormac":["8c:70:5a:c8:be:50"]}`,
		`{"localmac":["^8c"],"localip":["10.0.0.0/8"],"neighborip":["fe80::1"],"connectedip":["13.37.66.66"],"listeningport":[22],"searchnamespaces":true}`,
		`{"connectedip":["10.0.0.0/33"]}`,
		`{"listeningport":[0,70000]}`,
		`{"localmac":["("]}`,
		`{"neighborip":["fe80::1%eth0"]}`,
		`{}`,
		`[1]`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := netstat.ParseParameters(data)
		if err != nil {
			if !errors.Is(err, netstat.ErrInvalidParameters) {
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
		if !json.Valid(data) {
			t.Errorf("invalid JSON %q accepted", data)
		}
		var p netstat.Parameters
		if err := json.Unmarshal(data, &p); err != nil {
			t.Fatalf("accepted parameters do not decode: %v", err)
		}
		for _, port := range p.ListeningPort {
			if port < 1 || port > 65535 {
				t.Errorf("port %d accepted", port)
			}
		}
		again, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := netstat.ParseParameters(again); err != nil {
			t.Errorf("re-encoded parameters %s refused: %v", again, err)
		}
	})
}

func TestFlags(t *testing.T) {
	m, ok := module.Lookup(netstat.Name)
	if !ok {
		t.Fatal("netstat module is not registered")
	}
	tests := []struct {
		name    string
		args    []string
		want    string // canonical JSON parameters
		wantErr []string
	}{
		{
			name: "seed: where is a MAC",
			args: []string{"-nm", "8c:70:5a:c8:be:50"},
			want: `{"neighbormac":["8c:70:5a:c8:be:50"]}`,
		},
		{
			name: "every flag",
			args: []string{"-lm", "^02:", "-nm", "a", "-nm", "b", "-li", "10.0.0.0/8", "-ni", "fe80::/10",
				"-ci", "13.37.66.66", "-ci", "2001:db8::1", "-lp", "22", "-lp", "8080", "-namespaces"},
			want: `{"connectedip":["13.37.66.66","2001:db8::1"],"listeningport":[22,8080],"localip":["10.0.0.0/8"],` +
				`"localmac":["^02:"],"neighborip":["fe80::/10"],"neighbormac":["a","b"],"searchnamespaces":true}`,
		},
		{name: "no search", args: []string{"-namespaces"}, wantErr: []string{"no search"}},
		{name: "bad cidr", args: []string{"-ci", "10.1.1.1/40"}, wantErr: []string{"flag -ci", `connectedip "10.1.1.1/40"`}},
		{name: "bad regex", args: []string{"-nm", "8c:70:("}, wantErr: []string{"flag -nm", `"8c:70:("`}},
		{name: "port out of range", args: []string{"-lp", "70000"}, wantErr: []string{"flag -lp", "70000", "out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := moduletest.Build(t, m, tt.args, tt.wantErr)
			if raw == nil {
				return
			}
			got, err := action.Canonical(raw)
			if err != nil {
				t.Fatalf("build() = %s, not canonicalizable: %v", raw, err)
			}
			if string(got) != tt.want {
				t.Errorf("build() = %s\nwant      %s", got, tt.want)
			}
		})
	}
}

func TestFlagsBadPort(t *testing.T) {
	m, _ := module.Lookup(netstat.Name)
	fs := flag.NewFlagSet("netstat", flag.ContinueOnError)
	fs.SetOutput(&bytes.Buffer{})
	module.SetFlags(m, fs)
	err := fs.Parse([]string{"-lp", "ssh"})
	if err == nil || !strings.Contains(err.Error(), `"ssh"`) {
		t.Errorf("Parse(-lp ssh) error = %v, want one naming \"ssh\"", err)
	}
}

func TestPrintResultGolden(t *testing.T) {
	m, ok := module.Lookup(netstat.Name)
	if !ok {
		t.Fatal("netstat module is not registered")
	}
	el, err := json.Marshal(netstat.Elements{
		LocalMAC: map[string][]netstat.Element{
			"^8c:70": {{Interface: "eth0", LocalMACAddr: "8c:70:5a:c8:be:50"}},
		},
		NeighborMAC: map[string][]netstat.Element{
			"8c:70:5a:c8:be:50": {
				{Interface: "eth0", RemoteMACAddr: "8c:70:5a:c8:be:50", RemoteAddr: "10.22.75.1", State: "COMPLETE"},
				{Interface: "veth1", RemoteMACAddr: "8c:70:5a:c8:be:50", RemoteAddr: "fe80::8e70:5aff:fec8:be50", State: "STALE",
					Namespace: "net:[4026532301]", NamespaceName: "blue"},
			},
			"^00:00": {},
		},
		LocalIP: map[string][]netstat.Element{
			"10.0.0.0/8": {{Interface: "eth0", LocalMACAddr: "8c:70:5a:c8:be:51", LocalAddr: "10.22.75.57"}},
			"::1":        {{Interface: "lo", LocalAddr: "::1"}},
		},
		NeighborIP: map[string][]netstat.Element{
			"10.22.75.1": {{Interface: "eth0", RemoteMACAddr: "00:16:3e:00:00:01", RemoteAddr: "10.22.75.1", State: "PERMANENT"}},
		},
		ConnectedIP: map[string][]netstat.Element{
			"13.37.66.66": {
				{Protocol: "tcp", LocalAddr: "10.22.75.57", LocalPort: 51234, RemoteAddr: "13.37.66.66", RemotePort: 443,
					State: "ESTABLISHED", Processes: []netstat.Process{{PID: 4242, Name: "curl"}}},
				{Protocol: "tcp6", LocalAddr: "::ffff:10.22.75.57", LocalPort: 22, RemoteAddr: "::ffff:13.37.66.66", RemotePort: 60001,
					State: "ESTABLISHED", Processes: []netstat.Process{{PID: 800, Name: "sshd"}, {PID: 801, Name: "sshd"}}},
				{Protocol: "udp", LocalAddr: "172.17.0.2", LocalPort: 5353, RemoteAddr: "13.37.66.66", RemotePort: 53,
					State: "ESTABLISHED", Namespace: "net:[4026532999]"},
			},
		},
		ListeningPort: map[string][]netstat.Element{
			"22": {
				{Protocol: "tcp", LocalAddr: "0.0.0.0", LocalPort: 22, State: "LISTEN", Processes: []netstat.Process{{PID: 800, Name: "sshd"}}},
				{Protocol: "udp6", LocalAddr: "::", LocalPort: 22, State: "UNCONN"},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, agent := range []string{"web1.example.net", "db2.example.net"} {
		if err := m.PrintResult(&got, agent, action.Result{FoundAnything: true, Success: true, Elements: el}); err != nil {
			t.Fatalf("PrintResult: %v", err)
		}
	}
	moduletest.Golden(t, "printresult.golden", got.Bytes())
}

func TestPrintResultEmpty(t *testing.T) {
	m, _ := module.Lookup(netstat.Name)
	for _, r := range []action.Result{
		{Success: true},
		{Success: true, Elements: json.RawMessage(`{"neighbormac":{"8c:70:5a:c8:be:50":[]}}`)},
		{Success: false, Errors: []string{"boom"}},
	} {
		var b bytes.Buffer
		if err := m.PrintResult(&b, "agent1", r); err != nil {
			t.Errorf("PrintResult(%+v) error = %v", r, err)
		}
		if b.Len() != 0 {
			t.Errorf("PrintResult(%+v) = %q, want nothing", r, b.String())
		}
	}
	if err := m.PrintResult(&bytes.Buffer{}, "agent1", action.Result{Elements: json.RawMessage(`[1]`)}); err == nil {
		t.Error("PrintResult of bad elements: error = nil, want one")
	}
}
