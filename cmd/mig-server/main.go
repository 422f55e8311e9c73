// Command mig-server runs MIG's API and scheduler, with an embedded relay
// and store; "mig-server -dev" runs a whole platform on loopback with one
// local agent, and "mig-server -gen-callout-key DIR" makes the keys with
// which mig-server answers an operator-run NATS's auth callout. See the
// README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/migplatform/mig/internal/module/all"
	"github.com/migplatform/mig/internal/server"
)

func main() {
	if len(os.Args) >= 2 && (os.Args[1] == "-gen-callout-key" || os.Args[1] == "--gen-callout-key") {
		if len(os.Args) != 3 {
			fmt.Fprintln(os.Stderr, "usage: mig-server -gen-callout-key DIR")
			os.Exit(2)
		}
		if err := server.GenCalloutKeys(os.Args[2], os.Stdout); err != nil {
			fmt.Fprintf(os.Stderr, "mig-server: %v\n", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := server.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
