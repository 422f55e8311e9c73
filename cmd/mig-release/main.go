// Command mig-release builds MIG's Linux packages from a checkout of the
// module: "go run ./cmd/mig-release -o dist/ [-version V] [-arch amd64,arm64]"
// writes mig-agent_<v>_<arch>.deb/.rpm and mig-server_<v>_<arch>.deb/.rpm.
// See internal/release and docs/PACKAGING.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/migplatform/mig/internal/release"
)

func main() {
	out := flag.String("o", "dist", "output directory")
	ver := flag.String("version", "", "version of the binaries (default: git describe, or dev)")
	arch := flag.String("arch", strings.Join(release.Arches, ","), "comma-separated architectures (GOARCH)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := release.Build(ctx, release.Options{Dir: *out, Version: *ver, Arches: strings.Split(*arch, ","), Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "mig-release: %v\n", err)
		stop()
		os.Exit(1)
	}
}
