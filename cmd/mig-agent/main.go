// Command mig-agent is MIG's endpoint agent: "mig-agent -c config.json" runs
// it, "mig-agent -m <module>" serves one module operation for the agent (JSON
// request on stdin, result on stdout), "mig-agent -version" prints its
// version. See internal/agentcmd.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/migplatform/mig/internal/agentcmd"
	_ "github.com/migplatform/mig/internal/module/all"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := agentcmd.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
