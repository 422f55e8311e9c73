package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/cmdflag"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/version"
)

const usage = `usage: mig-server [flags]

  mig-server -dev                 run a whole platform on loopback with one local agent
  mig-server -dev -agents 1000    the same with 1000 simulated agents (in-process modules)
  mig-server -c server.json       run the server from a configuration file
  mig-server -c server.json -add-investigator NAME -pubkey KEY.asc
                                  add an administrator investigator and exit
  mig-server -gen-callout-key DIR make the keys for a NATS cluster's auth callout
                                  in DIR and print the nats-server and mig-server
                                  configuration to use them

Flags:
`

// Main is mig-server's command line. It returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// Module child processes of the local -dev agent: mig-server -m <module>.
	if len(args) >= 2 && args[0] == "-m" {
		return module.ServeChild(ctx, args[1], os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("mig-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var (
		confPath  = fs.String("c", "", "configuration file (JSON)")
		dev       = fs.Bool("dev", false, "run a development platform: API, relay, store and one local agent on loopback")
		dir       = fs.String("dir", "", "with -dev: state directory (default ~/.mig/dev)")
		apiAddr   = fs.String("api", "", "API listen address (default "+DefaultAPIAddr+")")
		relayAddr = fs.String("relay", "", "relay listen address (default "+DefaultRelayAddr+")")
		noAgent   = fs.Bool("no-agent", false, "with -dev: do not start the local agent")
		agents    = fs.Int("agents", 0, "with -dev: also run N simulated agents in this process (see mig-fleet)")
		addInv    = fs.String("add-investigator", "", "add an administrator investigator with this name and exit")
		pubkey    = fs.String("pubkey", "", "with -add-investigator: armored OpenPGP public key file")
		logLevel  = fs.String("loglevel", "", "debug, info, warn or error")
		printVer  = fs.Bool("version", false, "print the version and exit")
		callout   = fs.String("gen-callout-key", "", "write the keys of a NATS cluster's auth callout in `DIR`, print the configuration to use them, and exit")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cmdflag.IsSet(fs, "gen-callout-key") {
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "mig-server: -gen-callout-key DIR: unexpected argument %q\n", fs.Arg(0))
			return 2
		}
		if err := GenCalloutKeys(*callout, stdout); err != nil {
			fmt.Fprintf(stderr, "mig-server: %v\n", err)
			return 1
		}
		return 0
	}
	if *printVer {
		fmt.Fprintln(stdout, "mig-server", version.Version)
		return 0
	}
	level := slog.LevelInfo
	if *logLevel != "" {
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			fmt.Fprintf(stderr, "mig-server: -loglevel %q: want debug, info, warn or error\n", *logLevel)
			return 2
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *dev {
		err := RunDev(ctx, DevOptions{Dir: *dir, APIAddr: *apiAddr, RelayAddr: *relayAddr, NoAgent: *noAgent, Agents: *agents}, logger, stdout)
		if err != nil {
			fmt.Fprintf(stderr, "mig-server: %v\n", err)
			return 1
		}
		return 0
	}
	if *confPath == "" {
		fmt.Fprintln(stderr, "mig-server: give -dev, or -c with a configuration file")
		fs.Usage()
		return 2
	}
	cfg := DefaultConfig()
	if err := LoadConfigFile(&cfg, *confPath); err != nil {
		fmt.Fprintf(stderr, "mig-server: %v\n", err)
		return 2
	}
	if err := checkConfigFile(*confPath, cfg.secretSettings()); err != nil {
		fmt.Fprintf(stderr, "mig-server: %v\n", err)
		return 1
	}
	ApplyEnv(&cfg, os.Getenv)
	if *apiAddr != "" {
		cfg.API.Listen = *apiAddr
	}
	if *relayAddr != "" {
		cfg.Relay.Listen = *relayAddr
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "mig-server: config %s: %v\n", *confPath, err)
		return 2
	}
	if *addInv != "" {
		if err := addInvestigator(ctx, cfg, *addInv, *pubkey, logger); err != nil {
			fmt.Fprintf(stderr, "mig-server: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "investigator %q added\n", *addInv)
		return 0
	}
	srv, err := Start(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintf(stderr, "mig-server: %v\n", err)
		return 1
	}
	defer srv.Close()
	select {
	case <-ctx.Done():
		return 0
	case err := <-srv.Err():
		fmt.Fprintf(stderr, "mig-server: %v\n", err)
		return 1
	}
}

func addInvestigator(ctx context.Context, cfg Config, name, pubFile string, logger *slog.Logger) error {
	if pubFile == "" {
		return errors.New("-add-investigator needs -pubkey FILE")
	}
	pub, err := os.ReadFile(pubFile)
	if err != nil {
		return err
	}
	if err := checkStoreFiles(cfg.Store); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	inv, err := api.NewInvestigator(name, string(pub), api.AllPermissions, time.Now())
	if err != nil {
		return err
	}
	_, err = st.CreateInvestigator(store.WithAudit(ctx, api.InvestigatorCreateRecord(inv, audit.ActorServer)), inv)
	return err
}
