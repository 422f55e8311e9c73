// Package bench is mig-bench: it launches one signed file search against a
// running platform (a mig-server and agents, typically mig-fleet's) and
// measures how fast the results are stored, per-agent latency, the server's
// CPU and memory while idle and during the run, and the mig command line's
// own time to print every result. It checks the accounting (every targeted
// agent in exactly one terminal status) and ends its report with one
// machine-readable line:
//
//	agents=N targeted=N done=N first_s=… p50_s=… p95_s=… p99_s=… all_s=… server_rss_mib=… …
//
// Times to x % of results stored are observed by polling the action's
// counters every Config.Poll: each is late by at most one poll interval and
// one request.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/sign"
)

// DefaultSearch is the file search launched when no module flags are given:
// the seed's .boto search, which mig-fleet's fixtures answer on a tenth of
// the agents.
var DefaultSearch = []string{"-path", "/", "-name", `^\.boto$`, "-content", "abcdef123456"}

// ErrAccounting is returned when the counters of the action do not add up
// or not every targeted agent answered.
var ErrAccounting = errors.New("results are missing or miscounted")

// Config is one benchmark run.
type Config struct {
	// ClientConfig is the mig client configuration file ("" : $MIG_CONFIG
	// or ~/.migrc).
	ClientConfig string
	// PID is the server's process ID for CPU and memory; 0 skips them.
	PID int
	// Target selects the agents (default status='online').
	Target string
	// WaitAgents, when positive, waits until this many agents match the
	// target before launching, for at most WaitTimeout.
	WaitAgents  int
	WaitTimeout time.Duration
	// Idle is how long the idle server is sampled before the launch.
	Idle time.Duration
	// Expire is the action's validity.
	Expire time.Duration
	// Poll is the interval between reads of the action's counters.
	Poll time.Duration
	// Mig is the mig binary whose "mig results" is timed; "" skips it.
	Mig string
	// Search are the file module's flags (DefaultSearch when empty).
	Search []string
}

// Report is what a run measured. Durations count from the launch; a
// negative one was not reached.
type Report struct {
	ActionID   uint64
	Agents     int // agents matching the target before the launch
	Targeted   int // commands created
	Counters   action.Counters
	Found      int
	Dispatch   time.Duration // until the API answered the launch
	First      time.Duration
	P50        time.Duration
	P95        time.Duration
	P99        time.Duration
	All        time.Duration
	AgentP50   time.Duration // launch to each agent's finish time
	AgentP90   time.Duration
	AgentP99   time.Duration
	AgentMax   time.Duration
	Idle       Usage
	Run        Usage
	CLI        time.Duration
	CLILines   int
	ServerSeen bool
}

// Line is the report's machine-readable line.
func (r *Report) Line() string {
	s := func(d time.Duration) string {
		if d < 0 {
			return "na"
		}
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64)
	}
	rss, idleRSS, idleCPU, runCPU := "na", "na", "na", "na"
	if r.ServerSeen {
		rss = strconv.FormatFloat(r.Run.PeakRSSMi, 'f', 0, 64)
		idleRSS = strconv.FormatFloat(r.Idle.LastRSSMi, 'f', 0, 64)
		idleCPU = strconv.FormatFloat(100*r.Idle.CPUCores, 'f', 1, 64)
		runCPU = strconv.FormatFloat(100*r.Run.CPUCores, 'f', 1, 64)
	}
	cli := "na"
	if r.CLILines > 0 || r.CLI > 0 {
		cli = s(r.CLI)
	}
	return fmt.Sprintf("agents=%d targeted=%d done=%d first_s=%s p50_s=%s p95_s=%s p99_s=%s all_s=%s server_rss_mib=%s"+
		" idle_rss_mib=%s idle_cpu_pct=%s run_cpu_pct=%s dispatch_s=%s agent_p50_s=%s agent_p99_s=%s cli_s=%s",
		r.Agents, r.Targeted, r.Counters.Done, s(r.First), s(r.P50), s(r.P95), s(r.P99), s(r.All), rss,
		idleRSS, idleCPU, runCPU, s(r.Dispatch), s(r.AgentP50), s(r.AgentP99), cli)
}

// progress is the number of results stored at a time after the launch.
type progress struct {
	at   time.Duration
	done int
}

// timeTo returns when at least k results were stored, or -1.
func timeTo(ps []progress, k int) time.Duration {
	for _, p := range ps {
		if p.done >= k {
			return p.at
		}
	}
	return -1
}

// quantileCount is how many of n results make fraction q: at least one.
func quantileCount(q float64, n int) int {
	return max(1, int(math.Ceil(q*float64(n)-1e-9)))
}

// percentile returns the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return -1
	}
	return sorted[quantileCount(q, len(sorted))-1]
}

// Run launches the search and measures it, writing a human report to out.
// A run whose accounting does not add up returns its report and an error
// wrapping ErrAccounting. Its steps, in order: wait for the agents, sample
// the idle server, sign and launch, follow the counters until every
// command is done, then read the per-agent times and time "mig results".
func Run(ctx context.Context, cfg Config, out io.Writer) (*Report, error) {
	cfg = cfg.withDefaults()
	params, err := searchParameters(cfg.Search)
	if err != nil {
		return nil, err
	}
	ccfg, err := client.LoadConfig(cfg.ClientConfig)
	if err != nil {
		return nil, err
	}
	c, err := client.New(ccfg)
	if err != nil {
		return nil, err
	}
	r := &Report{First: -1, P50: -1, P95: -1, P99: -1, All: -1, AgentP50: -1, AgentP90: -1, AgentP99: -1, AgentMax: -1}

	if r.Agents, err = waitAgents(ctx, c, cfg); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "mig-bench: %d agents match %s\n", r.Agents, cfg.Target)
	if r.Agents == 0 {
		return r, fmt.Errorf("no agent matches %q", cfg.Target)
	}

	// Sample the server from now on.
	smp, stopSampler, err := startSampler(ctx, cfg.PID)
	if err != nil {
		return nil, err
	}
	defer stopSampler()
	r.ServerSeen = smp != nil
	idleFrom := time.Now()
	if cfg.Idle > 0 && smp != nil {
		if !sleep(ctx, cfg.Idle) {
			return nil, ctx.Err()
		}
		r.Idle = Summarize(smp.between(idleFrom, time.Now()))
		fmt.Fprintf(out, "idle server over %s: cpu %.1f%% of one core, rss %.0f MiB\n",
			r.Idle.Span.Round(time.Millisecond), 100*r.Idle.CPUCores, r.Idle.LastRSSMi)
	}

	a := &action.Action{Name: "mig-bench file " + strings.Join(cfg.Search, " "), Target: cfg.Target,
		Operations: []action.Operation{{Module: "file", Parameters: params}}}
	client.PrepareAction(a, cfg.Expire, time.Now())
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if err := sign.SignAction(a, c.Signer()); err != nil {
		return nil, fmt.Errorf("signing action %d: %w", a.ID, err)
	}
	r.ActionID = a.ID

	t0 := time.Now()
	ps, err := launchAndFollow(ctx, c, a, cfg.Poll, t0, r)
	if err != nil {
		return nil, err
	}
	runEnd := time.Now()
	if sent := r.Targeted; sent > 0 {
		r.First = timeTo(ps, 1)
		r.P50 = timeTo(ps, quantileCount(0.50, sent))
		r.P95 = timeTo(ps, quantileCount(0.95, sent))
		r.P99 = timeTo(ps, quantileCount(0.99, sent))
		r.All = timeTo(ps, sent)
	}
	if smp != nil {
		r.Run = Summarize(smp.between(t0, runEnd))
	}

	lat, found, err := agentTimes(ctx, c, a.ID, t0)
	if err != nil {
		return nil, err
	}
	r.Found = found
	if len(lat) > 0 {
		r.AgentP50, r.AgentP90, r.AgentP99, r.AgentMax = percentile(lat, 0.5), percentile(lat, 0.9), percentile(lat, 0.99), lat[len(lat)-1]
	}
	if cfg.Mig != "" {
		if r.CLI, r.CLILines, err = timeResults(ctx, cfg, a.ID); err != nil {
			return nil, err
		}
	}

	r.write(out)
	n := r.Counters
	if n.Sent != r.Targeted || n.Done != r.Targeted || n.Success+n.Failed+n.TimeOut+n.Expired+n.Cancelled != n.Sent {
		return r, fmt.Errorf("%w: %d targeted, counters %+v", ErrAccounting, r.Targeted, n)
	}
	return r, nil
}

// withDefaults fills the fields left zero.
func (cfg Config) withDefaults() Config {
	if cfg.Target == "" {
		cfg.Target = "status='online'"
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 20 * time.Millisecond
	}
	if cfg.Expire <= 0 {
		cfg.Expire = 5 * time.Minute
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 10 * time.Minute
	}
	if len(cfg.Search) == 0 {
		cfg.Search = DefaultSearch
	}
	return cfg
}

// searchParameters turns the file module's flags into its parameters.
func searchParameters(search []string) (json.RawMessage, error) {
	m, ok := module.Lookup("file")
	if !ok {
		return nil, fmt.Errorf("the file module is not in this binary")
	}
	fs := flag.NewFlagSet("file", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	build := module.SetFlags(m, fs)
	if err := fs.Parse(search); err != nil {
		return nil, fmt.Errorf("file module flags %q: %w", search, err)
	}
	params, _, err := build()
	if err != nil {
		return nil, fmt.Errorf("file module flags %q: %w", search, err)
	}
	return params, nil
}

// waitAgents counts the agents matching the target, waiting (for at most
// cfg.WaitTimeout) until there are cfg.WaitAgents of them.
func waitAgents(ctx context.Context, c *client.Client, cfg Config) (int, error) {
	waitUntil := time.Now().Add(cfg.WaitTimeout)
	for {
		n, err := c.CountAgents(ctx, cfg.Target)
		if err != nil {
			return 0, err
		}
		if n >= cfg.WaitAgents || cfg.WaitAgents <= 0 {
			return n, nil
		}
		if time.Now().After(waitUntil) {
			return 0, fmt.Errorf("only %d agents match %q after %s, want %d", n, cfg.Target, cfg.WaitTimeout, cfg.WaitAgents)
		}
		if !sleep(ctx, 500*time.Millisecond) {
			return 0, ctx.Err()
		}
	}
}

// startSampler samples the server process pid every 100 ms until stop is
// called; with pid 0 it samples nothing and returns a nil sampler.
func startSampler(ctx context.Context, pid int) (smp *sampler, stop func(), err error) {
	if pid <= 0 {
		return nil, func() {}, nil
	}
	if _, err := ReadProc(pid); err != nil {
		return nil, nil, err
	}
	smp = &sampler{pid: pid, every: 100 * time.Millisecond}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); smp.run(sctx) }()
	return smp, func() { cancel(); <-done }, nil
}

// launchAndFollow creates the signed action and polls its counters every
// poll while the API dispatches and until every command is done (or the
// action's expiry plus 30 s). It fills r's Dispatch, Targeted and Counters
// and returns the progress observed, timed from t0.
func launchAndFollow(ctx context.Context, c *client.Client, a *action.Action, poll time.Duration, t0 time.Time, r *Report) ([]progress, error) {
	type created struct {
		a   *action.Action
		err error
		at  time.Time
	}
	createdc := make(chan created, 1)
	go func() {
		st, err := c.CreateAction(ctx, a)
		createdc <- created{st, err, time.Now()}
	}()
	var ps []progress
	sent := -1
	deadline := a.ExpireAfter.Add(30 * time.Second)
	for {
		if sent < 0 {
			select {
			case cr := <-createdc:
				if cr.err != nil {
					return nil, fmt.Errorf("launching action %d: %w", a.ID, cr.err)
				}
				r.Dispatch = cr.at.Sub(t0)
				sent = cr.a.Counters.Sent
			default:
			}
		}
		got, err := c.Action(ctx, a.ID)
		now := time.Now()
		switch {
		case err == nil:
			ps = append(ps, progress{at: now.Sub(t0), done: got.Counters.Done})
			r.Counters = got.Counters
		case sent >= 0:
			return nil, fmt.Errorf("following action %d: %w", a.ID, err)
		}
		if sent >= 0 && r.Counters.Sent == sent && r.Counters.Done >= sent {
			break
		}
		if now.After(deadline) {
			break
		}
		if !sleep(ctx, poll) {
			return nil, ctx.Err()
		}
	}
	r.Targeted = sent
	return ps, nil
}

// agentTimes reads the action's stored commands: each finished agent's
// time from t0, sorted, and how many commands found something.
func agentTimes(ctx context.Context, c *client.Client, id uint64, t0 time.Time) (lat []time.Duration, found int, err error) {
	err = eachCommandPage(ctx, c, id, client.CommandsQuery{NoResults: true}, func(cmds []action.Command) {
		for _, cmd := range cmds {
			if action.IsTerminal(cmd.Status) && !cmd.FinishTime.IsZero() {
				lat = append(lat, cmd.FinishTime.Sub(t0))
			}
		}
	})
	if err != nil {
		return nil, 0, err
	}
	slices.Sort(lat)
	err = eachCommandPage(ctx, c, id, client.CommandsQuery{NoResults: true, Found: true}, func(cmds []action.Command) {
		found += len(cmds)
	})
	return lat, found, err
}

// eachCommandPage calls fn with every page of the action's commands that q
// selects, 5000 at a time.
func eachCommandPage(ctx context.Context, c *client.Client, id uint64, q client.CommandsQuery, fn func([]action.Command)) error {
	q.Limit = 5000
	for q.After = 0; ; {
		page, err := c.Commands(ctx, id, q)
		if err != nil {
			return err
		}
		fn(page.Commands)
		if page.Next == 0 || len(page.Commands) == 0 {
			return nil
		}
		q.After = page.Next
	}
}

// timeResults times the command line printing every result of the action
// and counts the lines it printed.
func timeResults(ctx context.Context, cfg Config, id uint64) (time.Duration, int, error) {
	cmd := exec.CommandContext(ctx, cfg.Mig, "results", strconv.FormatUint(id, 10), "-show", "all")
	cmd.Env = os.Environ()
	if cfg.ClientConfig != "" {
		cmd.Env = append(cmd.Env, client.ConfigEnv+"="+cfg.ClientConfig)
	}
	lines := &lineCounter{}
	cmd.Stdout = lines
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, fmt.Errorf("%s results %d: %w: %s", cfg.Mig, id, err, strings.TrimSpace(stderr.String()))
	}
	return time.Since(start), lines.n, nil
}

// write prints the human report.
func (r *Report) write(out io.Writer) {
	s := func(d time.Duration) string {
		if d < 0 {
			return "not reached"
		}
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
	n := r.Counters
	fmt.Fprintf(out, "action %d: %d agents targeted, %d done: %d success, %d failed, %d timeout, %d expired, %d cancelled; %d found something\n",
		r.ActionID, r.Targeted, n.Done, n.Success, n.Failed, n.TimeOut, n.Expired, n.Cancelled, r.Found)
	fmt.Fprintf(out, "launch -> API answered (dispatch done): %s\n", s(r.Dispatch))
	fmt.Fprintf(out, "launch -> results stored: first %s, 50%% %s, 95%% %s, 99%% %s, 100%% %s\n",
		s(r.First), s(r.P50), s(r.P95), s(r.P99), s(r.All))
	fmt.Fprintf(out, "per-agent latency (launch -> agent finished): p50 %s, p90 %s, p99 %s, max %s\n",
		s(r.AgentP50), s(r.AgentP90), s(r.AgentP99), s(r.AgentMax))
	if r.ServerSeen {
		fmt.Fprintf(out, "server during the run (%s): cpu %.1f%% of one core, peak rss %.0f MiB\n",
			r.Run.Span.Round(time.Millisecond), 100*r.Run.CPUCores, r.Run.PeakRSSMi)
	}
	if r.CLILines > 0 || r.CLI > 0 {
		fmt.Fprintf(out, "mig results: %d lines in %s\n", r.CLILines, s(r.CLI))
	}
	fmt.Fprintln(out, r.Line())
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n += strings.Count(string(p), "\n")
	return len(p), nil
}

// sleep waits d or until ctx ends, and reports whether it waited d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// findMig returns the mig binary next to this executable, or in $PATH, or
// "".
func findMig() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "mig")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("mig"); err == nil {
		return p
	}
	return ""
}
