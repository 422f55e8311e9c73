//go:build migtest

// Command migfleet is mig-fleet with the test module compiled in (build tag
// migtest), so that the end-to-end tests can give a simulated fleet
// commands that take as long as they need ("testmodule" in mode "sleep").
// Production builds of cmd/mig-fleet never carry that module.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/fleet"
	_ "github.com/migplatform/mig/internal/module/all"
	_ "github.com/migplatform/mig/internal/module/testmodule"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := fleet.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
