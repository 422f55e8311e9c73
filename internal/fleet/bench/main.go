package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

const usage = `usage: mig-bench [flags] [-- file module flags]

Launches one signed file search (by default the seed's
  -path / -name '^\.boto$' -content abcdef123456)
against a running mig-server and its agents (for example mig-fleet's), and
measures the time from the launch to the first result and to 50/95/99/100 %
of results stored, per-agent latency, the server's CPU and RSS while idle and
during the run (-pid), and the time "mig results" takes to print every
result. The last line of the report is machine-readable.

  mig-bench -pid $(pgrep -x mig-server) -agents 1000
  mig-bench -t "tags->>'operator'='IT'" -- -path /etc -name '^passwd$'

Flags:
`

// Main is mig-bench's command line. It returns the process exit code: 0, 1
// when the run failed or its accounting does not add up, 2 for bad flags.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mig-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var cfg Config
	fs.StringVar(&cfg.ClientConfig, "config", "", "mig client configuration (default $MIG_CONFIG or ~/.migrc)")
	fs.IntVar(&cfg.PID, "pid", 0, "the server's process ID, for its CPU and RSS (0: not measured)")
	fs.StringVar(&cfg.Target, "t", "status='online'", "target of the search")
	fs.IntVar(&cfg.WaitAgents, "agents", 0, "wait until this many agents match the target before launching")
	fs.DurationVar(&cfg.WaitTimeout, "wait", 10*time.Minute, "longest wait for -agents")
	fs.DurationVar(&cfg.Idle, "idle", 5*time.Second, "how long the idle server is measured before the launch")
	fs.DurationVar(&cfg.Expire, "e", 5*time.Minute, "expiration of the action")
	fs.DurationVar(&cfg.Poll, "poll", 20*time.Millisecond, "interval between reads of the action's counters")
	mig := fs.String("mig", findMig(), `mig binary timed printing every result ("" skips it)`)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg.Mig = *mig
	cfg.Search = fs.Args()
	if _, err := Run(ctx, cfg, stdout); err != nil {
		fmt.Fprintf(stderr, "mig-bench: %v\n", err)
		return 1
	}
	return 0
}
