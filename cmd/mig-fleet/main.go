// Command mig-fleet runs many simulated MIG agents in one process, against a
// running mig-server, to see, test and measure a fleet on one machine. Its
// agents run modules in process; see internal/fleet and mig-fleet -h.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/fleet"
	_ "github.com/migplatform/mig/internal/module/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleet.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
