// Command mig-server runs MIG's API and scheduler, with an embedded relay
// and store; "mig-server -dev" runs a whole platform on loopback with one
// local agent, and "mig-server -gen-callout-key DIR" makes the keys with
// which mig-server answers an operator-run NATS's auth callout. See the
// README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/migplatform/mig/internal/module/all"
	"github.com/migplatform/mig/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := server.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
