//go:build migtest

// Package testmodule is a module named "testmodule" that misbehaves on
// request, for testing the module runner and end-to-end tests of the agent.
// It is compiled only with the build tag migtest, so production binaries
// never carry it; importing it registers it.
//
// Parameters:
//
//		{"mode": "ok"|"panic"|"hang"|"exit"|"garbage"|"sleep"|"flood"|"big",
//		 "duration": "2s", "marker": "text", "children": N, "count": N}
//
//	  - ok: succeeds, foundanything true, elements {"marker": marker}
//	  - panic: panics
//	  - hang: starts "children" copies of itself that hang too (in the same
//	    process group), writes Running on standard error, then blocks
//	    forever, ignoring its context
//	  - exit: exits the process with status 3
//	  - garbage: writes non-JSON to standard output, then returns as ok
//	  - sleep: writes Running on standard error, sleeps for duration (or
//	    until its context ends), then returns as ok (failed when its
//	    context ended)
//	  - flood: writes to standard output without end
//	  - big: succeeds with elements a JSON array of "count" strings of
//	    BigElementSize bytes each, "<index>-" then "x"s, to exceed the
//	    size limit of results
package testmodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Name is the module's name.
const Name = "testmodule"

// Modes the module understands.
const (
	ModeOK      = "ok"
	ModePanic   = "panic"
	ModeHang    = "hang"
	ModeExit    = "exit"
	ModeGarbage = "garbage"
	ModeSleep   = "sleep"
	ModeFlood   = "flood"
	ModeBig     = "big"
)

// BigElementSize is the size of each element of mode "big"; MaxCount
// bounds its "count" parameter.
const (
	BigElementSize = 4096
	MaxCount       = 10000
)

// Running is the line modes hang and sleep write to standard error when
// they start blocking, so that a test knows the module runs.
const Running = "testmodule: running"

// ExitStatus is the exit status of mode "exit".
const ExitStatus = 3

// MaxChildren bounds the "children" parameter.
const MaxChildren = 8

// ErrInvalidParameters is wrapped by every parameter error.
var ErrInvalidParameters = errors.New("invalid testmodule parameters")

func init() { module.Register(testModule{}) }

// Parameters are the module's JSON parameters.
type Parameters struct {
	Mode     string `json:"mode"`
	Duration string `json:"duration,omitempty"`
	Marker   string `json:"marker,omitempty"`
	Children int    `json:"children,omitempty"`
	Count    int    `json:"count,omitempty"`
}

// Elements are the elements of a successful result.
type Elements struct {
	Marker string `json:"marker"`
	// MaxProcs is runtime.GOMAXPROCS as the module saw it.
	MaxProcs int `json:"maxprocs"`
}

type testModule struct{}

func (testModule) Name() string    { return Name }
func (testModule) Summary() string { return "misbehaves on request, for tests" }

func (testModule) ParseParameters(raw []byte) (module.Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	r := runner{p: p}
	switch p.Mode {
	case ModeOK, ModePanic, ModeHang, ModeExit, ModeGarbage, ModeSleep, ModeFlood, ModeBig:
	default:
		return nil, fmt.Errorf("%w: unknown mode %q", ErrInvalidParameters, p.Mode)
	}
	if p.Duration != "" {
		d, err := time.ParseDuration(p.Duration)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%w: duration %q is not a non-negative duration", ErrInvalidParameters, p.Duration)
		}
		r.d = d
	}
	if p.Children < 0 || p.Children > MaxChildren {
		return nil, fmt.Errorf("%w: children %d is not between 0 and %d", ErrInvalidParameters, p.Children, MaxChildren)
	}
	if p.Count < 0 || p.Count > MaxCount {
		return nil, fmt.Errorf("%w: count %d is not between 0 and %d", ErrInvalidParameters, p.Count, MaxCount)
	}
	return r, nil
}

func (m testModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var p Parameters
	fs.StringVar(&p.Mode, "mode", ModeOK, "what to do: ok, panic, hang, exit, garbage, sleep, flood, big")
	fs.StringVar(&p.Duration, "duration", "", "how long mode sleep sleeps")
	fs.StringVar(&p.Marker, "marker", "", "text returned by mode ok")
	return func() (json.RawMessage, module.Runner, error) {
		return module.Build(m, p)
	}
}

func (testModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if !r.FoundAnything || len(r.Elements) == 0 {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("testmodule elements: %w", err)
	}
	_, err := fmt.Fprintf(w, "%s marker %s\n", agentName, el.Marker)
	return err
}

type runner struct {
	p Parameters
	d time.Duration
}

func (r runner) Run(ctx context.Context, env module.Env) action.Result {
	switch r.p.Mode {
	case ModePanic:
		panic("testmodule: panic on request")
	case ModeHang:
		for range r.p.Children {
			startHangingChild()
		}
		fmt.Fprintln(os.Stderr, Running)
		for {
			time.Sleep(time.Hour)
		}
	case ModeExit:
		os.Exit(ExitStatus)
	case ModeGarbage:
		fmt.Fprint(os.Stdout, "this is not JSON {")
	case ModeSleep:
		t := time.NewTimer(r.d)
		defer t.Stop()
		fmt.Fprintln(os.Stderr, Running)
		select {
		case <-t.C:
		case <-ctx.Done():
			return module.FailResult(fmt.Sprintf("sleep interrupted: %v", ctx.Err()))
		}
	case ModeFlood:
		line := bytes.Repeat([]byte("x"), 64<<10)
		for {
			if _, err := os.Stdout.Write(line); err != nil {
				return module.FailResult(err.Error())
			}
		}
	case ModeBig:
		return action.Result{FoundAnything: true, Success: true, Elements: bigElements(r.p.Count),
			Statistics: json.RawMessage(fmt.Sprintf(`{"count":%d}`, r.p.Count))}
	}
	el, err := json.Marshal(Elements{Marker: r.p.Marker, MaxProcs: runtime.GOMAXPROCS(0)})
	if err != nil {
		return module.FailResult(err.Error())
	}
	return action.Result{FoundAnything: true, Success: true, Elements: el}
}

// startHangingChild starts this executable again as a hanging testmodule
// child. It is never waited for: it lives until its process group is
// killed, which is what the runner must do.
func startHangingChild() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	cmd := exec.Command(exe, module.ChildFlag, Name)
	cmd.Stdin = bytes.NewReader([]byte(`{"module":"testmodule","parameters":{"mode":"hang"}}`))
	_ = cmd.Start()
}

// bigElements returns mode big's elements: a JSON array of n strings of
// BigElementSize bytes, each "<index>-" followed by "x"s.
func bigElements(n int) json.RawMessage {
	elems := make([]string, n)
	for i := range elems {
		prefix := fmt.Sprintf("%d-", i)
		elems[i] = prefix + strings.Repeat("x", BigElementSize-len(prefix))
	}
	b, _ := json.Marshal(elems)
	return b
}
