package timedrift

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Parameters are the timedrift module's JSON parameters.
type Parameters struct {
	// Drift is the allowed drift, a Go duration ("10s"); empty means
	// DefaultDrift.
	Drift string `json:"drift,omitempty"`
	// Servers are the NTP servers to ask, host or host:port; empty means
	// DefaultServers.
	Servers []string `json:"servers,omitempty"`
	// Timeout is how long to wait for each server, a Go duration; empty
	// means DefaultTimeout.
	Timeout string `json:"timeout,omitempty"`
}

// Elements are what the module found.
type Elements struct {
	// LocalTime is the local time when the module ran, RFC 3339 with
	// nanoseconds.
	LocalTime string `json:"localtime"`
	// HasDrift is true when the clock drifts beyond the allowed drift.
	HasDrift bool `json:"hasdrift"`
	// AllowedDrift is the allowed drift.
	AllowedDrift string `json:"alloweddrift"`
	// Drift is the median offset of the servers that answered (how far
	// they are ahead of the local clock), a Go duration; empty when none
	// answered.
	Drift string `json:"drift,omitempty"`
	// Drifts lists, for each server that answered, its offset.
	Drifts []string `json:"drifts,omitempty"`
}

// Statistics hold each server's answer.
type Statistics struct {
	Servers []ServerStat `json:"servers"`
}

// ServerStat is one server's answer or failure.
type ServerStat struct {
	Server    string `json:"server"`
	Reachable bool   `json:"reachable"`
	Time      string `json:"time,omitempty"`
	Offset    string `json:"offset,omitempty"`
	Latency   string `json:"latency,omitempty"`
	Stratum   int    `json:"stratum,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Runner runs the timedrift module with parsed parameters.
type Runner struct {
	drift   time.Duration
	timeout time.Duration
	servers []string // host:port
}

// ParseParameters decodes and validates the module's parameters, refusing
// unknown fields. Errors wrap ErrInvalidParameters and name the bad value.
func ParseParameters(raw []byte) (*Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	return p.compile()
}

func (p Parameters) compile() (*Runner, error) {
	r := &Runner{drift: DefaultDrift, timeout: DefaultTimeout}
	if p.Drift != "" {
		d, err := time.ParseDuration(p.Drift)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: drift %q is not a positive duration such as 10s", ErrInvalidParameters, p.Drift)
		}
		r.drift = d
	}
	if p.Timeout != "" {
		d, err := time.ParseDuration(p.Timeout)
		if err != nil || d <= 0 || d > MaxTimeout {
			return nil, fmt.Errorf("%w: timeout %q is not a duration between 0 and %v", ErrInvalidParameters, p.Timeout, MaxTimeout)
		}
		r.timeout = d
	}
	servers := p.Servers
	if len(servers) == 0 {
		servers = DefaultServers
	}
	if len(servers) > MaxServers {
		return nil, fmt.Errorf("%w: %d servers, at most %d", ErrInvalidParameters, len(servers), MaxServers)
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	return r, nil
}

// serverAddr checks a server given as host or host:port and returns
// host:port.
func serverAddr(s string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("%w: server %q: %s", ErrInvalidParameters, s, why)
	}
	if s == "" || len(s) > 255 {
		return "", bad("want a host name or address, optionally with :port")
	}
	host, port := s, "123"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else if strings.Count(s, ":") == 1 {
		return "", bad(err.Error())
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", bad("port must be 1 to 65535")
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return "", bad("not a host name or IP address")
	}
	return net.JoinHostPort(host, port), nil
}

func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// Run asks every server at once and compares the median offset with the
// allowed drift.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	now := time.Now()
	stats := make([]ServerStat, len(r.servers))
	meas := make([]*Measurement, len(r.servers))
	var wg sync.WaitGroup
	for i, addr := range r.servers {
		wg.Go(func() {
			qctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			m, err := Query(qctx, addr)
			stats[i].Server = addr
			if err != nil {
				stats[i].Error = err.Error()
				return
			}
			meas[i] = &m
			stats[i].Reachable = true
			stats[i].Time = m.ServerTime.UTC().Format(time.RFC3339Nano)
			stats[i].Offset = m.Offset.String()
			stats[i].Latency = m.Delay.String()
			stats[i].Stratum = m.Stratum
		})
	}
	wg.Wait()
	el := Elements{LocalTime: now.Format(time.RFC3339Nano), AllowedDrift: r.drift.String()}
	var offsets []time.Duration
	for _, m := range meas {
		if m != nil {
			offsets = append(offsets, m.Offset)
			el.Drifts = append(el.Drifts, m.Offset.String())
		}
	}
	res := action.Result{Success: len(offsets) > 0}
	if len(offsets) > 0 {
		slices.Sort(offsets)
		median := offsets[len(offsets)/2]
		if len(offsets)%2 == 0 {
			median = (offsets[len(offsets)/2-1] + median) / 2
		}
		el.Drift = median.String()
		el.HasDrift = median > r.drift || median < -r.drift
	} else {
		res.Errors = append(res.Errors, "no NTP server answered")
		if err := ctx.Err(); err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
	}
	for _, s := range stats {
		if s.Error != "" {
			res.Errors = append(res.Errors, s.Error)
		}
	}
	res.FoundAnything = el.HasDrift
	res.Elements, _ = json.Marshal(el)
	res.Statistics, _ = json.Marshal(Statistics{Servers: stats})
	return res
}

// SetFlags registers the flags of "mig timedrift": MIG's -drift, plus
// -server (repeatable) and -timeout. The returned function builds the JSON
// parameters and parses them as ParseParameters does (see
// module.BuildFunc).
func (m timedriftModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var p Parameters
	fs.StringVar(&p.Drift, "drift", "", "allowed `duration` of drift (default "+DefaultDrift.String()+")")
	module.StringsVar(fs, &p.Servers, "server", "NTP `server`, host or host:port (repeatable; default "+strings.Join(DefaultServers, ", ")+")")
	fs.StringVar(&p.Timeout, "timeout", "", "how long to wait for each server (default "+DefaultTimeout.String()+")")
	return func() (json.RawMessage, module.Runner, error) {
		return module.Build(m, p)
	}
}

// PrintResult prints one line for an agent whose clock drifts, in MIG's
// words:
//
//	<agent> local time is 2026-03-01T10:20:30Z, drift of 12.3s is beyond 10s
//
// It prints nothing for an agent whose clock is within the allowed drift.
func (timedriftModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("timedrift module elements: %w", err)
	}
	if !el.HasDrift {
		return nil
	}
	_, err := fmt.Fprintf(w, "%s local time is %s, drift of %s is beyond %s\n", agentName, el.LocalTime, el.Drift, el.AllowedDrift)
	return err
}
