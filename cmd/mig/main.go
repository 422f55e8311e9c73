// Command mig is the investigator's command line of MIG: it builds actions
// from module flags ("mig file -path /etc -name '^passwd$'"), signs them with
// the investigator's OpenPGP key, launches them through the MIG API and
// prints the agents' answers. See internal/cli for the commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/cli"
	_ "github.com/migplatform/mig/internal/module/all" // every module
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
