// Command mig-agent is MIG's endpoint agent: "mig-agent -c config.json" runs
// it, "mig-agent -m <module>" serves one module operation for the agent (JSON
// request on stdin, result on stdout), "mig-agent -version" prints its version.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/module"
	_ "github.com/migplatform/mig/internal/module/all"
	"github.com/migplatform/mig/internal/relay/dialer"
)

func main() {
	conf := flag.String("c", "", "configuration file (default: the compiled-in configuration)")
	mod := flag.String("m", "", "serve one operation of this module (used by the agent itself)")
	version := flag.Bool("version", false, "print the version and exit")
	setFlags := agent.SetFlags(flag.CommandLine)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case *version:
		fmt.Println(agent.Version)
	case *mod != "":
		code := module.ServeChild(ctx, *mod, os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	default:
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		if err := run(ctx, *conf, setFlags, log); err != nil {
			log.Error("mig-agent failed", "err", err)
			os.Exit(1)
		}
	}
}

func run(ctx context.Context, path string, setFlags func(*agent.Config) error, log *slog.Logger) error {
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		return err
	}
	if err := setFlags(&cfg); err != nil {
		return err
	}
	runtime.GOMAXPROCS(cfg.MaxProcs)
	a, err := agent.New(cfg, log, dialer.New(log))
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
