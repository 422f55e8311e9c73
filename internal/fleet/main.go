package fleet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"time"

	"github.com/migplatform/mig/internal/cmdflag"
	"github.com/migplatform/mig/internal/strictjson"
)

const usage = `usage: mig-fleet [flags]

Runs N simulated MIG agents in this process, each with its own identity,
enrollment, relay connection and credentials, heartbeats and attributes
(names, os, tags vary so that targets select subsets; see package
internal/fleet). Modules run IN PROCESS, not in a child process as on a real
agent, and the file module sees a small fixture tree of each agent's own as
its root file system (mig file -path / -name '^\.boto$' -content abcdef123456
finds something on a tenth of the fleet).

  mig-fleet -server URL -ca FILE -token TOKEN -keyring FILE -acl FILE -n N
  mig-fleet -c fleet.json

The enrollment token may also come from MIG_FLEET_TOKEN. Against
mig-server -dev, everything is in ~/.mig/dev:

  mig-fleet -server https://127.0.0.1:12664/api/v1 -ca ~/.mig/dev/ca.pem \
    -token $(cat ~/.mig/dev/enrollment-token) -keyring ~/.mig/dev/investigator.pub.asc \
    -acl ~/.mig/dev/acl.json -n 1000

Each agent keeps its inbox, outbox and replay journal IN MEMORY unless
-state disk is given: a real agent writes them to disk with fsyncs before it
runs a command and before it publishes a result; the simulator skips that
cost (commands and results do not survive its restart). Identities and relay
credentials are always on disk, so the same -dir gives the same agents.

mig-fleet runs with GOGC=400 unless GOGC is set: fewer collections of a
heap holding thousands of agents, for more memory.

Several mig-fleet processes can join one server: give each its own -dir.
Each agent holds one open file; the soft limit on open files is raised to the
hard limit at start.

Flags:
`

// fileConfig is the JSON configuration file of mig-fleet.
type fileConfig struct {
	Server           string `json:"server"`
	CA               string `json:"ca"`
	EnrollmentToken  string `json:"enrollmenttoken"`
	Keyring          string `json:"keyring"`
	KeyringData      string `json:"keyringdata"`
	ACL              string `json:"acl"`
	ACLData          string `json:"acldata"`
	N                int    `json:"n"`
	Dir              string `json:"dir"`
	Prefix           string `json:"prefix"`
	Heartbeat        string `json:"heartbeat"`
	ModuleTimeout    string `json:"moduletimeout"`
	StartConcurrency int    `json:"startconcurrency"`
	State            string `json:"state"`
}

// LoadConfigFile reads a JSON configuration over c; unknown keys are errors
// naming the file.
func LoadConfigFile(c *Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var fc fileConfig
	if err := strictjson.Decode(data, &fc); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&c.Server, fc.Server)
	set(&c.CA, fc.CA)
	set(&c.EnrollmentToken, fc.EnrollmentToken)
	set(&c.Keyring, fc.Keyring)
	set(&c.KeyringData, fc.KeyringData)
	set(&c.ACL, fc.ACL)
	set(&c.ACLData, fc.ACLData)
	set(&c.Dir, fc.Dir)
	set(&c.Prefix, fc.Prefix)
	if fc.N != 0 {
		c.N = fc.N
	}
	if fc.StartConcurrency != 0 {
		c.StartConcurrency = fc.StartConcurrency
	}
	if fc.State != "" {
		disk, err := parseState(fc.State)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
		}
		c.DiskState = disk
	}
	for _, d := range []struct {
		key string
		v   string
		dst *time.Duration
	}{{"heartbeat", fc.Heartbeat, &c.Heartbeat}, {"moduletimeout", fc.ModuleTimeout, &c.ModuleTimeout}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return fmt.Errorf("%w: %s: %s %q: %w", ErrConfig, path, d.key, d.v, err)
		}
		*d.dst = v
	}
	return nil
}

// Main is mig-fleet's command line. It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mig-fleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var (
		confPath = fs.String("c", "", "configuration file (JSON; keys as the flags, token as enrollmenttoken)")
		server   = fs.String("server", "", "API base URL, e.g. https://127.0.0.1:12664/api/v1")
		ca       = fs.String("ca", "", "PEM file trusted for the server's and the relay's TLS")
		token    = fs.String("token", "", "enrollment token (or MIG_FLEET_TOKEN)")
		keyring  = fs.String("keyring", "", "investigators' armored public keys")
		aclFile  = fs.String("acl", "", "module ACL (JSON)")
		n        = fs.Int("n", 0, "number of agents")
		dir      = fs.String("dir", "", "state and fixtures of the agents (default "+DefaultDir()+")")
		prefix   = fs.String("prefix", "", "agent name prefix (default derived from -dir)")
		hb       = fs.Duration("heartbeat", 0, "heartbeat interval (default 60s)")
		modTO    = fs.Duration("moduletimeout", 0, "longest an operation may run (default 1m)")
		conc     = fs.Int("start-concurrency", 0, "agents enrolling and connecting at once (default 64)")
		logLevel = fs.String("loglevel", "info", "debug, info, warn or error (agents log at warn and above unless debug)")
		state    = fs.String("state", "memory", "where agents keep inbox, outbox and journal: memory (fast, lost on restart) or disk (as a real agent)")
		pprofAt  = fs.String("pprof", "", "serve net/http/pprof on this address (e.g. 127.0.0.1:6061) to profile the fleet")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mig-fleet: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "mig-fleet: -loglevel %q: want debug, info, warn or error\n", *logLevel)
		return 2
	}
	var cfg Config
	if *confPath != "" {
		if err := LoadConfigFile(&cfg, *confPath); err != nil {
			fmt.Fprintf(stderr, "mig-fleet: %v\n", err)
			return 2
		}
	}
	if v := os.Getenv("MIG_FLEET_TOKEN"); v != "" {
		cfg.EnrollmentToken = v
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "server":
			cfg.Server = *server
		case "ca":
			cfg.CA = *ca
		case "token":
			cfg.EnrollmentToken = *token
		case "keyring":
			cfg.Keyring, cfg.KeyringData = *keyring, ""
		case "acl":
			cfg.ACL, cfg.ACLData = *aclFile, ""
		case "n":
			cfg.N = *n
		case "dir":
			cfg.Dir = *dir
		case "prefix":
			cfg.Prefix = *prefix
		case "heartbeat":
			cfg.Heartbeat = *hb
		case "moduletimeout":
			cfg.ModuleTimeout = *modTO
		case "start-concurrency":
			cfg.StartConcurrency = *conc
		}
	})
	if disk, err := parseState(*state); err != nil {
		fmt.Fprintf(stderr, "mig-fleet: -state: %v\n", err)
		return 2
	} else if cmdflag.IsSet(fs, "state") {
		cfg.DiskState = disk
	}
	cfg.AgentLogLevel = max(level, slog.LevelWarn)
	if level == slog.LevelDebug {
		cfg.AgentLogLevel = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if os.Getenv("GOGC") == "" {
		// Thousands of agents' goroutine stacks are scanned by every
		// collection; collect less often (GOGC=400 unless set).
		debug.SetGCPercent(fleetGCPercent)
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		logger.Warn("cannot raise the open files limit", "err", err)
	}
	if limit > 0 && uint64(cfg.N)+256 > limit {
		fmt.Fprintf(stderr, "mig-fleet: -n %d needs about %d open files and the limit is %d: run several mig-fleet processes, each with its own -dir\n",
			cfg.N, cfg.N+256, limit)
		return 2
	}
	f, err := New(cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "mig-fleet: %v\n", err)
		return 2
	}
	if *pprofAt != "" {
		stopPprof, err := servePprof(*pprofAt, logger)
		if err != nil {
			fmt.Fprintf(stderr, "mig-fleet: -pprof %s: %v\n", *pprofAt, err)
			return 2
		}
		defer stopPprof()
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-f.Ready():
		fmt.Fprintf(stdout, "mig-fleet: %d agents connected in %s (prefix %s, dir %s, open files limit %d)\n",
			cfg.N, time.Since(start).Round(time.Millisecond), f.Config().Prefix, f.Config().Dir, limit)
	case err := <-done:
		return finish(stdout, stderr, f, err)
	}
	return finish(stdout, stderr, f, <-done)
}

// fleetGCPercent is mig-fleet's GOGC unless the environment sets one.
const fleetGCPercent = 400

// parseState reads a -state value: it reports whether agents keep their
// state on disk.
func parseState(v string) (disk bool, err error) {
	switch v {
	case "memory":
		return false, nil
	case "disk":
		return true, nil
	}
	return false, fmt.Errorf("state %q: want memory or disk", v)
}

// finish prints the fleet's counters and returns the exit code of Run's
// error.
func finish(stdout, stderr io.Writer, f *Fleet, err error) int {
	s := f.Stats()
	fmt.Fprintf(stdout, "mig-fleet: stopped; agents=%d started=%d commands=%d results=%d\n",
		s.Agents, s.Started, s.Commands, s.Results)
	if err != nil {
		fmt.Fprintf(stderr, "mig-fleet: %v\n", err)
		return 1
	}
	return 0
}

// servePprof serves the runtime profiles on addr until the returned function
// is called.
func servePprof(addr string, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Warn("pprof server stopped", "err", err)
		}
	}()
	logger.Info("profiles served", "url", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}
