package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/relay/natsrelay"
)

// parseCount is a module, registered only in this test binary, that counts
// how often its parameters are parsed and how often a runner runs.
const parseCount = "parsecount"

var parses, runs atomic.Int64

type countModule struct{}

type countRunner struct{ tag string }

func init() { module.Register(countModule{}) }

func (countModule) Name() string    { return parseCount }
func (countModule) Summary() string { return "counts parses (agent tests)" }

func (countModule) ParseParameters(raw []byte) (module.Runner, error) {
	parses.Add(1)
	var p struct {
		Tag string `json:"tag"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	if p.Tag == "" {
		return nil, errors.New("tag is empty")
	}
	return countRunner{tag: p.Tag}, nil
}

func (countModule) SetFlags(*flag.FlagSet) func() (json.RawMessage, error) {
	return func() (json.RawMessage, error) { return json.RawMessage(`{"tag":"x"}`), nil }
}

func (countModule) PrintResult(io.Writer, string, action.Result) error { return nil }

func (r countRunner) Run(context.Context, module.Env) action.Result {
	runs.Add(1)
	return action.Result{Success: true, FoundAnything: true, Elements: json.RawMessage(`["` + r.tag + `"]`)}
}

func countOp(tag string) action.Operation {
	raw, _ := json.Marshal(map[string]string{"tag": tag})
	return action.Operation{Module: parseCount, Parameters: raw}
}

// TestParametersParsedOnce checks that the agent parses each operation's
// parameters once, when it checks the command, and runs what that parse
// built; that a custom ModuleRunner still gets the parameters as signed;
// and that a command with one bad operation runs none of them.
func TestParametersParsedOnce(t *testing.T) {
	p := newPlatform(t)
	var mu sync.Mutex
	var custom []string
	tests := []struct {
		name string
		opts Options
		// wantParses is how many parses per operation this process makes.
		wantParses int64
	}{
		{"RunParsed", Options{MemoryState: true, RunParsed: module.RunParsed}, 1},
		{"RunModule", Options{MemoryState: true, RunModule: func(ctx context.Context, name string, params []byte, env module.Env) (action.Result, error) {
			mu.Lock()
			custom = append(custom, string(params))
			mu.Unlock()
			return module.RunLocal(ctx, name, params, env)
		}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewWithOptions(inProcessConfig(t, p), slog.New(slog.DiscardHandler), natsrelay.Dial, tt.opts)
			if err != nil {
				t.Fatalf("NewWithOptions: %v", err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			var wg sync.WaitGroup
			wg.Go(func() { _ = a.Run(ctx) })
			defer func() { cancel(); wg.Wait() }()
			p.hello(t, a.ID())

			parses.Store(0)
			runs.Store(0)
			id := newID()
			p.send(t, a.ID(), id, signed(t, newAction("name LIKE '%'", countOp("a"), countOp("b")), "alice"))
			r := p.resultsFor(t, a.ID(), id)[id]
			if r.Status != action.CmdSuccess || len(r.Results) != 2 {
				t.Fatalf("result status %q code %q with %d results, want success with 2", r.Status, r.Code, len(r.Results))
			}
			for i, want := range []string{`["a"]`, `["b"]`} {
				if got := string(r.Results[i].Elements); got != want {
					t.Errorf("operation %d elements = %s, want %s", i, got, want)
				}
			}
			if got, want := parses.Load(), 2*tt.wantParses; got != want {
				t.Errorf("parameters parsed %d times for 2 operations, want %d", got, want)
			}
			if got := runs.Load(); got != 2 {
				t.Errorf("runners ran %d times, want 2", got)
			}

			// The second operation's parameters are refused: the first
			// does not run either.
			runs.Store(0)
			id = newID()
			p.send(t, a.ID(), id, signed(t, newAction("name LIKE '%'", countOp("a"), countOp("")), "alice"))
			if r := p.resultsFor(t, a.ID(), id)[id]; r.Code != action.CodeBadParameters {
				t.Errorf("bad second operation: code %q, want %q", r.Code, action.CodeBadParameters)
			}
			if got := runs.Load(); got != 0 {
				t.Errorf("runners ran %d times for a refused command, want 0", got)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{`{"tag":"a"}`, `{"tag":"b"}`}; len(custom) != 2 || custom[0] != want[0] || custom[1] != want[1] {
		t.Errorf("RunModule got parameters %q, want %q", custom, want)
	}
}
