// Command mig-bench measures a running MIG platform: it launches one file
// search against every targeted agent and reports latency percentiles, the
// server's CPU and memory, and the command line's time to print the results.
// See internal/fleet/bench and mig-bench -h.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/fleet/bench"
	_ "github.com/migplatform/mig/internal/module/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
