//go:build migtest

// Command childmain serves module operations as "childmain -m <module>", as
// an agent does, with the test module and every production module, for the
// runner's tests.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/module"
	_ "github.com/migplatform/mig/internal/module/all"
	_ "github.com/migplatform/mig/internal/module/testmodule"
)

func main() {
	name := flag.String("m", "", "serve one operation of this module")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := module.ServeChild(ctx, *name, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
