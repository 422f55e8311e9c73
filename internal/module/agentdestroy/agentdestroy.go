// Package agentdestroy is MIG's agentdestroy module: it stops another
// mig-agent process on the endpoint, typically an old agent left running
// after an upgrade, after checking that the process is a mig-agent of the
// version the investigator named.
//
// # Parameters (JSON only)
//
//	{"pid": 4242, "version": "1.2.3"}
//
// The module has no "mig agentdestroy" flags, as in MIG: write an action
// file and launch it with "mig action -i FILE".
//
// # Checks
//
// On Linux the module opens a pidfd for the process (so that a reused pid
// can never receive the signal), then checks that /proc/<pid>/exe is a Go
// program whose main package is MainPackage and whose version (the value of
// internal/version.Version set with -ldflags -X when it was built, "dev"
// otherwise) equals the requested version, and that the base name of its
// command line's first word starts with "mig-agent". It refuses its own
// process and its parent (the agent that runs it). It then sends SIGTERM,
// waits up to GracePeriod for the process to exit, and sends SIGKILL if it
// has not.
//
// # Access control
//
// Stopping agents is sensitive: give the module a higher minimum weight
// than the other modules in every agent's ACL, for example
//
//	{"agentdestroy": {"minimumweight": 3, "investigators": {...}},
//	 "default":      {"minimumweight": 1, "investigators": {...}}}
//
// so that one investigator's signature is not enough.
//
// # Results
//
// Elements are an Elements; FoundAnything and Success are true when the
// process was stopped. On platforms other than Linux the module returns a
// failed result saying it is not supported there.
package agentdestroy

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/version"
)

// Name is the module's name.
const Name = "agentdestroy"

// MainPackage is the import path of the agent's main package, as recorded
// in the build information of a mig-agent binary.
const MainPackage = "github.com/migplatform/mig/cmd/mig-agent"

// VersionVariable is the variable that holds an agent's version (the
// version of every MIG binary), set at build time with -ldflags
// "-X VersionVariable=...".
const VersionVariable = version.Variable

// Sentinel errors.
var (
	// ErrInvalidParameters is wrapped by every error about the module's
	// parameters.
	ErrInvalidParameters = errors.New("invalid agentdestroy parameters")
	// ErrNotAgent is wrapped when the process is not a mig-agent of the
	// requested version.
	ErrNotAgent = errors.New("process is not the requested mig-agent")
	// ErrSelf is wrapped when the pid is the module's own process or the
	// agent running it.
	ErrSelf = errors.New("refusing to stop the running agent")
)

// versionRE is what a version may look like.
var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~:-]{0,127}$`)

// Parameters are the module's JSON parameters.
type Parameters struct {
	// PID is the process to stop.
	PID int `json:"pid"`
	// Version is the agent version the process must have.
	Version string `json:"version"`
}

// Elements say what happened.
type Elements struct {
	PID     int    `json:"pid"`
	Version string `json:"version"`
	// Stopped is true when the process exited.
	Stopped bool `json:"stopped"`
	// Signal is the last signal sent: "SIGTERM" or "SIGKILL".
	Signal string `json:"signal,omitempty"`
}

// Runner runs the module with parsed parameters.
type Runner struct {
	p Parameters
	// mainPackage is MainPackage, changed by tests to a dummy agent's.
	mainPackage string
	// grace is GracePeriod, shortened by tests.
	grace time.Duration
}

// GracePeriod is how long a process has to exit after SIGTERM before it
// gets SIGKILL.
const GracePeriod = 10 * time.Second

func init() { module.Register(destroyModule{}) }

type destroyModule struct{}

func (destroyModule) Name() string { return Name }

func (destroyModule) Summary() string {
	return "stop another mig-agent process by pid after checking its version (JSON actions only)"
}

func (destroyModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}

// ParseParameters decodes and validates the module's parameters, refusing
// unknown fields. Errors wrap ErrInvalidParameters and name the bad value.
func ParseParameters(raw []byte) (*Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	if p.PID <= 1 || p.PID > 1<<22 {
		return nil, fmt.Errorf("%w: pid %d must be 2 to %d", ErrInvalidParameters, p.PID, 1<<22)
	}
	if !versionRE.MatchString(p.Version) {
		return nil, fmt.Errorf("%w: version %q must be 1 to 128 letters, digits or ._+~:-", ErrInvalidParameters, p.Version)
	}
	return &Runner{p: p, mainPackage: MainPackage, grace: GracePeriod}, nil
}

// SetFlags refuses: as in MIG, agentdestroy has no flags. Its build function
// returns an error saying to use an action file.
func (destroyModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	return func() (json.RawMessage, module.Runner, error) {
		return nil, nil, fmt.Errorf(`%w: agentdestroy takes no flags; write an action file with {"module": "agentdestroy", "parameters": {"pid": N, "version": "..."}} and launch it with "mig action -i FILE"`, ErrInvalidParameters)
	}
}

// PrintResult writes one line for an agent where a process was stopped:
//
//	<agent> stopped mig-agent pid <pid> version <version> with <signal>
func (destroyModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("agentdestroy module elements: %w", err)
	}
	if !el.Stopped {
		return nil
	}
	_, err := fmt.Fprintf(w, "%s stopped mig-agent pid %d version %s with %s\n", agentName, el.PID, el.Version, el.Signal)
	return err
}
