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

// ReadyEnv, when set, makes the child write ReadyLine to stderr once it
// handles SIGTERM and SIGINT itself.
const (
	ReadyEnv  = "MIGTEST_CHILD_READY"
	ReadyLine = "childmain: handling signals"
)

func main() {
	name := flag.String("m", "", "serve one operation of this module")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	if os.Getenv(ReadyEnv) != "" {
		// The signal tests wait for this line: before it, SIGTERM would
		// still kill the process the way Go's runtime does by default.
		os.Stderr.WriteString(ReadyLine + "\n")
	}
	code := module.ServeChild(ctx, *name, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
