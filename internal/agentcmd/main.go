// Package agentcmd is mig-agent's command line: "mig-agent -c config.json"
// runs the agent, "mig-agent -m <module>" serves one module operation for
// the agent (JSON request on stdin, result on stdout), "mig-agent -version"
// prints its version, "mig-agent repack -c agent.json -o OUT" writes a copy
// of the agent that carries its configuration, and "mig-agent -show-config"
// prints what a binary carries and the configuration it would run with.
// cmd/mig-agent only calls Main, as cmd/mig calls
// cli.Main and cmd/mig-server server.Main.
package agentcmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/relay/dialer"
	"github.com/migplatform/mig/internal/version"
)

// Main runs mig-agent with args (without the program name) and returns the
// process exit code: 0, 1 when the agent failed, 2 for a bad command line.
// A module child (-m) answers on stdout and reads its request from stdin.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "repack" {
		return repack(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("mig-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "", "configuration file (default: the compiled-in configuration)")
	mod := fs.String("m", "", "serve one operation of this module (used by the agent itself)")
	printVersion := fs.Bool("version", false, "print the version and exit")
	printConfig := fs.Bool("show-config", false, "print the configuration this binary carries (enrollment token redacted) and the one it would run with, and exit")
	setFlags := agent.SetFlagsPacked(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case *printVersion:
		fmt.Fprintln(stdout, version.Version)
		return 0
	case *mod != "":
		return module.ServeChild(ctx, *mod, stdin, stdout, stderr)
	case *printConfig:
		if err := showConfig(*conf, setFlags, stdout); err != nil {
			fmt.Fprintf(stderr, "mig-agent: %v\n", err)
			return 1
		}
		return 0
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	if err := run(ctx, *conf, setFlags, log); err != nil {
		log.Error("mig-agent failed", "err", err)
		return 1
	}
	return 0
}

// loadConfig returns the configuration the agent runs with, and what its
// executable carries appended (nil if nothing). A repacked agent's appended
// configuration is the default; a bad or tampered one is an error.
func loadConfig(path string, setFlags func(*agent.Config, *agent.Packed) error) (*agent.Packed, agent.Config, error) {
	var p *agent.Packed
	if exe, err := os.Executable(); err == nil {
		if p, err = agent.ReadPacked(exe); err != nil {
			return nil, agent.Config{}, err
		}
	}
	var cfg agent.Config
	var err error
	if p != nil {
		cfg, err = agent.LoadPackedConfig(p, path)
	} else {
		cfg, err = agent.LoadConfig(path)
	}
	if err != nil {
		return nil, agent.Config{}, err
	}
	if err := setFlags(&cfg, p); err != nil {
		return nil, agent.Config{}, err
	}
	return p, cfg, nil
}

func run(ctx context.Context, path string, setFlags func(*agent.Config, *agent.Packed) error, log *slog.Logger) error {
	_, cfg, err := loadConfig(path, setFlags)
	if err != nil {
		return err
	}
	if err := cfg.MaterializeCA(); err != nil {
		return err
	}
	runtime.GOMAXPROCS(cfg.MaxProcs)
	a, err := agent.New(cfg, log, dialer.New(log))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
