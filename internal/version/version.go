// Package version holds the version of MIG's binaries, the one the agent
// reports in its heartbeats, mig-server in its health endpoint, and both
// print with -version. A release build sets it for every binary with the
// linker's -X flag:
//
//	go build -ldflags "-X github.com/migplatform/mig/internal/version.Version=1.2.3" ./cmd/...
//
// It imports nothing, so that every binary can link it.
package version

// Unset is Version when the build did not set it.
const Unset = "dev"

// Variable is Version's name for the linker's -X flag. The agentdestroy
// module reads it back from a running agent's build information.
const Variable = "github.com/migplatform/mig/internal/version.Version"

// Version is the version of this build: Unset unless -ldflags "-X
// Variable=..." set it.
var Version = Unset
