// Package module is MIG's module framework. A module is an investigation
// capability (file search, netstat, ...) that registers itself like a
// database/sql driver, in an init function:
//
//	func init() { module.Register(fileModule{}) }
//
// A module declares how its JSON parameters are parsed and validated, which
// flags its "mig <module>" subcommand takes, how its results print, and how it
// runs. On an agent every operation runs in a child process ("mig-agent -m
// <module>", parameters as JSON on stdin, the Result as JSON on stdout) with a
// deadline, so that a module that crashes or hangs never takes the agent down;
// see RunChild and ServeChild.
package module

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/strictjson"
)

// Module is one investigation capability.
type Module interface {
	// Name is the module's name in actions and on the command line.
	Name() string
	// Summary is one line saying what the module does.
	Summary() string
	// ParseParameters decodes and validates the module's JSON parameters,
	// refusing unknown fields, and returns what runs them. Errors name the
	// bad value.
	ParseParameters(raw []byte) (Runner, error)
	// PrintResult writes one agent's result for an investigator, one line per
	// thing found, each line starting with the agent's name, as MIG prints
	// them. It prints nothing for a result that found nothing, unless its
	// elements say more than that (scribe: each test, false ones too):
	// "mig -show all" and "-show notfound" call it for every result that
	// found nothing but has elements, after "<agent> did not find
	// anything".
	PrintResult(w io.Writer, agentName string, r action.Result) error
}

// Flagger is a Module with flags: every module of "mig" but one that takes
// its parameters only from action files. Call it through SetFlags.
type Flagger interface {
	// SetFlags registers the flags of "mig <name>" on fs (MIG's flag names)
	// and returns a function that, once fs is parsed, builds the JSON
	// parameters and parses them once (see BuildFunc and Build).
	SetFlags(fs *flag.FlagSet) BuildFunc
}

// Runner runs a module with parsed parameters.
type Runner interface {
	// Run runs the investigation until it is done or ctx ends, and returns
	// its result. Failures are reported in the result (Success false,
	// Errors), not by panicking.
	Run(ctx context.Context, env Env) action.Result
}

// Env is what a running module knows of where it runs.
type Env struct {
	// MaxProcs bounds the CPUs a module may keep busy; 0 means no bound.
	MaxProcs int
}

var (
	mu       sync.RWMutex
	registry = map[string]Module{}
)

// Register makes a module available by name. It panics if the name is empty
// or already registered, as database/sql.Register does.
func Register(m Module) {
	mu.Lock()
	defer mu.Unlock()
	name := m.Name()
	if name == "" {
		panic("module: Register with an empty name")
	}
	if _, dup := registry[name]; dup {
		panic("module: Register called twice for " + name)
	}
	registry[name] = m
}

// Lookup returns the module registered under name.
func Lookup(name string) (Module, bool) {
	mu.RLock()
	defer mu.RUnlock()
	m, ok := registry[name]
	return m, ok
}

// Names returns the registered module names, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrUnknownModule is returned for a module name that is not registered.
var ErrUnknownModule = fmt.Errorf("unknown module")

// Parse looks up a module and parses its parameters.
func Parse(name string, raw []byte) (Module, Runner, error) {
	m, ok := Lookup(name)
	if !ok {
		return nil, nil, fmt.Errorf("%w %q (known modules: %v)", ErrUnknownModule, name, Names())
	}
	r, err := m.ParseParameters(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("module %s: %w", name, err)
	}
	return m, r, nil
}

// FailResult returns a failed result carrying errs.
func FailResult(errs ...string) action.Result {
	return action.Result{Success: false, Errors: errs}
}

// DecodeParameters decodes a module's JSON parameters into a P strictly
// (see strictjson.Decode): one JSON object, no unknown keys, keys that match
// the field names exactly (case matters) and no key twice. Its errors wrap
// invalid, the module's ErrInvalidParameters, and name the refused key.
func DecodeParameters[P any](raw []byte, invalid error) (P, error) {
	var p P
	if err := strictjson.Decode(raw, &p); err != nil {
		return p, fmt.Errorf("%w: %w", invalid, err)
	}
	return p, nil
}

// ErrorCode returns the wire code (action.Code*) for an error of Parse:
// CodeUnknownModule for a module that is not registered, else
// CodeBadParameters.
func ErrorCode(err error) string {
	if errors.Is(err, ErrUnknownModule) {
		return action.CodeUnknownModule
	}
	return action.CodeBadParameters
}
