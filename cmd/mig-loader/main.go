// Command mig-loader installs and updates mig-agent: "mig-loader -c
// /etc/mig/loader.json" runs one check (a timer runs it), "-dryrun" reports
// what it would do, "-show-config" prints its configuration, "-version" its
// version. See internal/loader.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/loader"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := loader.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
