package module_test

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
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// childExe is the path of testdata/childmain built with the migtest tag:
// a real agent-like binary serving "-m <module>" with the test module.
var (
	childOnce sync.Once
	childPath string
	childErr  error
	childDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if childDir != "" {
		os.RemoveAll(childDir)
	}
	os.Exit(code)
}

func childExe(t *testing.T) string {
	t.Helper()
	childOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			childErr = err
			return
		}
		childDir, err = os.MkdirTemp("", "migchild")
		if err != nil {
			childErr = err
			return
		}
		childPath = filepath.Join(childDir, "childmain")
		if runtime.GOOS == "windows" {
			childPath += ".exe"
		}
		cmd := exec.Command(goTool, "build", "-tags", "migtest", "-o", childPath, "./testdata/childmain")
		if out, err := cmd.CombinedOutput(); err != nil {
			childErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if errors.Is(childErr, exec.ErrNotFound) {
		t.Skipf("no go tool to build the child: %v", childErr)
	}
	if childErr != nil {
		t.Fatal(childErr)
	}
	return childPath
}

func TestRunChild(t *testing.T) {
	exe := childExe(t)
	tests := []struct {
		name       string
		module     string
		params     string
		env        module.Env
		wantErr    error  // nil: want a result
		errHas     string // text the error must contain
		wantOK     bool   // want Success
		wantElems  string // elements must contain this
		wantErrors string // a result error must contain this
	}{
		{name: "ok", module: "testmodule", params: `{"mode":"ok","marker":"hello"}`,
			wantOK: true, wantElems: `"marker":"hello"`},
		{name: "maxprocs", module: "testmodule", params: `{"mode":"ok"}`, env: module.Env{MaxProcs: 1},
			wantOK: true, wantElems: `"maxprocs":1`},
		{name: "sleep", module: "testmodule", params: `{"mode":"sleep","duration":"50ms","marker":"slept"}`,
			wantOK: true, wantElems: `"marker":"slept"`},
		{name: "panic", module: "testmodule", params: `{"mode":"panic"}`,
			wantErr: module.ErrCrashed, errHas: "panic: testmodule: panic on request"},
		{name: "exit", module: "testmodule", params: `{"mode":"exit"}`,
			wantErr: module.ErrCrashed, errHas: "exit status 3"},
		{name: "garbage", module: "testmodule", params: `{"mode":"garbage"}`,
			wantErr: module.ErrCrashed, errHas: "not one result"},
		{name: "oversize stdout", module: "testmodule", params: `{"mode":"flood"}`,
			wantErr: module.ErrCrashed, errHas: "over the limit"},
		{name: "bad parameters", module: "testmodule", params: `{"mode":"dance"}`,
			wantErrors: `unknown mode "dance"`},
		{name: "unknown module", module: "nosuchmodule", params: `{}`,
			wantErrors: "unknown module"},
		{name: "file module", module: "file",
			params:    `{"searches":{"s":{"paths":["` + t.TempDir() + `"]}}}`,
			wantOK:    true,
			wantElems: `"s":[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			res, err := module.RunChild(ctx, exe, tt.module, []byte(tt.params), tt.env)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RunChild error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("RunChild error = %q, want it to contain %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("RunChild error = %v, want none", err)
			}
			if res.Success != tt.wantOK {
				t.Errorf("Success = %v, want %v (errors %q)", res.Success, tt.wantOK, res.Errors)
			}
			if !strings.Contains(string(res.Elements), tt.wantElems) {
				t.Errorf("Elements = %s, want them to contain %s", res.Elements, tt.wantElems)
			}
			if tt.wantErrors != "" && !strings.Contains(strings.Join(res.Errors, "\n"), tt.wantErrors) {
				t.Errorf("Errors = %q, want one containing %q", res.Errors, tt.wantErrors)
			}
		})
	}
}

// TestRunChildHangKillsGroup checks that a child that hangs, ignoring its
// context, is killed with the processes it started.
func TestRunChildHangKillsGroup(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	exe := childExe(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type outcome struct {
		res action.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := module.RunChild(ctx, exe, "testmodule", []byte(`{"mode":"hang","children":2}`), module.Env{})
		done <- outcome{res, err}
	}()

	// Wait for the child and its two children to run, then time out.
	deadline := time.Now().Add(20 * time.Second)
	for n := 0; n < 3; n = len(processesOf(t, exe)) {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("saw %d processes of %s, want 3", n, exe)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	out := <-done
	if !errors.Is(out.err, module.ErrTimeout) {
		t.Fatalf("RunChild error = %v, want %v", out.err, module.ErrTimeout)
	}

	// SIGKILL is delivered asynchronously: give the group a moment to die.
	deadline = time.Now().Add(5 * time.Second)
	for {
		left := processesOf(t, exe)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes %v of %s still run after RunChild returned", left, exe)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processesOf returns the PIDs of the live processes running exe.
func processesOf(t *testing.T, exe string) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		// A zombie has no exe link any more: only live processes count.
		if target, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && target == exe {
			pids = append(pids, d.Name())
		}
	}
	return pids
}

func TestRunChildErrors(t *testing.T) {
	exe := childExe(t)
	done, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		exe     string
		wantErr error
	}{
		{name: "context already done", ctx: done, exe: exe, wantErr: module.ErrTimeout},
		{name: "no such executable", ctx: t.Context(), exe: filepath.Join(t.TempDir(), "nothere")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := module.RunChild(tt.ctx, tt.exe, "testmodule", []byte(`{"mode":"ok"}`), module.Env{})
			if err == nil {
				t.Fatal("RunChild error = nil, want one")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("RunChild error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

// runnerTest is a module registered by this test for in-process tests of
// ServeChild and RunLocal.
type runnerTest struct{}

type runnerTestParams struct {
	Mode string `json:"mode"`
}

func init() { module.Register(runnerTest{}) }

func (runnerTest) Name() string    { return "runnertest" }
func (runnerTest) Summary() string { return "runner tests" }
func (runnerTest) ParseParameters(raw []byte) (module.Runner, error) {
	var p runnerTestParams
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	switch p.Mode {
	case "ok", "panic", "big", "wait":
		return p, nil
	}
	return nil, fmt.Errorf("bad mode %q", p.Mode)
}
func (m runnerTest) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	return func() (json.RawMessage, module.Runner, error) { return module.Build(m, runnerTestParams{Mode: "ok"}) }
}
func (runnerTest) PrintResult(w io.Writer, agent string, r action.Result) error { return nil }

func (p runnerTestParams) Run(ctx context.Context, env module.Env) action.Result {
	switch p.Mode {
	case "panic":
		panic("runnertest panic")
	case "big":
		el, _ := json.Marshal(map[string]string{"blob": strings.Repeat("a", action.MaxMessageSize)})
		return action.Result{Success: true, FoundAnything: true, Elements: el, Statistics: json.RawMessage(`{"n":1}`)}
	case "wait":
		<-ctx.Done()
		return module.FailResult("interrupted")
	}
	return action.Result{Success: true, FoundAnything: true, Elements: json.RawMessage(`{"ok":true}`)}
}

func TestServeChild(t *testing.T) {
	tests := []struct {
		name     string
		module   string
		stdin    string
		wantCode int
		wantOK   bool
		wantOut  string // stdout must contain this
		wantErr  string // stderr must contain this
	}{
		{name: "ok", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"ok"},"maxprocs":0}`,
			wantCode: 0, wantOK: true, wantOut: `"elements":{"ok":true}`},
		{name: "refused parameters", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"x"}}`,
			wantCode: 0, wantOut: `bad mode \"x\"`},
		{name: "oversize result", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"big"}}`,
			wantCode: 0, wantOK: true, wantOut: action.CodeTooLarge},
		{name: "other module", module: "runnertest", stdin: `{"module":"file","parameters":{}}`,
			wantCode: 2, wantErr: `request is for module "file"`},
		{name: "not JSON", module: "runnertest", stdin: `mode=ok`, wantCode: 2, wantErr: "malformed request"},
		{name: "unknown field", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"ok"},"x":1}`,
			wantCode: 2, wantErr: "malformed request"},
		{name: "trailing data", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"ok"}} {}`,
			wantCode: 2, wantErr: "malformed request"},
		{name: "negative maxprocs", module: "runnertest", stdin: `{"module":"runnertest","parameters":{"mode":"ok"},"maxprocs":-1}`,
			wantCode: 2, wantErr: "negative"},
		{name: "oversize request", module: "runnertest",
			stdin:    `{"module":"runnertest","parameters":{"mode":"` + strings.Repeat("a", action.MaxParametersSize+5000) + `"}}`,
			wantCode: 2, wantErr: "over the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := module.ServeChild(t.Context(), tt.module, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("ServeChild = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
			if code != 0 {
				if stdout.Len() != 0 {
					t.Errorf("stdout = %q, want nothing", stdout.String())
				}
				return
			}
			if stdout.Len() > action.MaxMessageSize {
				t.Errorf("stdout is %d bytes, over %d", stdout.Len(), action.MaxMessageSize)
			}
			var res action.Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("stdout is not a result: %v", err)
			}
			if res.Success != tt.wantOK {
				t.Errorf("Success = %v, want %v", res.Success, tt.wantOK)
			}
			if !strings.Contains(stdout.String(), tt.wantOut) {
				t.Errorf("stdout = %.300q, want it to contain %q", stdout.String(), tt.wantOut)
			}
		})
	}
}

func TestRunLocal(t *testing.T) {
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		module  string
		params  string
		wantErr error
		wantOK  bool
	}{
		{name: "ok", ctx: t.Context(), module: "runnertest", params: `{"mode":"ok"}`, wantOK: true},
		{name: "panic", ctx: t.Context(), module: "runnertest", params: `{"mode":"panic"}`, wantErr: module.ErrCrashed},
		{name: "unknown module", ctx: t.Context(), module: "nosuchmodule", params: `{}`, wantErr: module.ErrUnknownModule},
		{name: "interrupted", ctx: cancelled, module: "runnertest", params: `{"mode":"wait"}`, wantErr: module.ErrTimeout},
		{name: "oversize result", ctx: t.Context(), module: "runnertest", params: `{"mode":"big"}`, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := module.RunLocal(tt.ctx, tt.module, []byte(tt.params), module.Env{})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RunLocal error = %v, want %v", err, tt.wantErr)
			}
			if res.Success != tt.wantOK {
				t.Errorf("Success = %v, want %v (errors %q)", res.Success, tt.wantOK, res.Errors)
			}
			if b, _ := json.Marshal(res); len(b) > action.MaxMessageSize {
				t.Errorf("result is %d bytes, over %d", len(b), action.MaxMessageSize)
			}
		})
	}
}

// TestRunParsed runs a Runner that Parse built, and refuses a missing one
// with an error rather than a panic.
func TestRunParsed(t *testing.T) {
	_, r, err := module.Parse("runnertest", []byte(`{"mode":"ok"}`))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := module.RunParsed(t.Context(), "runnertest", r, module.Env{}); err != nil || !res.Success {
		t.Errorf("RunParsed = %+v, %v; want a successful result", res, err)
	}
	if _, err := module.RunParsed(t.Context(), "runnertest", nil, module.Env{}); !errors.Is(err, module.ErrCrashed) {
		t.Errorf("RunParsed with a nil runner = %v, want ErrCrashed", err)
	}
}

// FuzzServeChild feeds arbitrary requests to the child side: it must never
// panic, and must either refuse the request (2) or write one valid Result.
func FuzzServeChild(f *testing.F) {
	for _, seed := range []string{
		`{"module":"runnertest","parameters":{"mode":"ok"},"maxprocs":1}`,
		`{"module":"runnertest","parameters":{"mode":"nope"}}`,
		`{"module":"runnertest","parameters":null}`,
		`{"module":"other","parameters":{}}`,
		`{"module":"runnertest"`,
		`{"module":"runnertest","parameters":{"mode":"ok"},"maxprocs":-5}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Contains(data, []byte("panic")) || bytes.Contains(data, []byte("wait")) ||
			bytes.Contains(data, []byte("big")) {
			t.Skip("modes that panic, block or are slow on purpose")
		}
		var stdout, stderr bytes.Buffer
		code := module.ServeChild(t.Context(), "runnertest", bytes.NewReader(data), &stdout, &stderr)
		switch code {
		case 0:
			var res action.Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Errorf("exit 0 with stdout %q that is not a result: %v", stdout.String(), err)
			}
		case 2:
			if stdout.Len() != 0 || stderr.Len() == 0 {
				t.Errorf("exit 2 with stdout %q and stderr %q, want only stderr", stdout.String(), stderr.String())
			}
		default:
			t.Errorf("ServeChild = %d, want 0 or 2", code)
		}
	})
}

// lineWatcher keeps what a child writes and closes seen when a line
// equal to want is written.
type lineWatcher struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func newLineWatcher(want string) *lineWatcher {
	return &lineWatcher{want: want, seen: make(chan struct{})}
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, line := range strings.Split(w.buf.String(), "\n") {
		if line == w.want {
			w.once.Do(func() { close(w.seen) })
		}
	}
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// childReadyEnv and childReadyLine are testdata/childmain's ReadyEnv and
// ReadyLine: the line it writes once it handles SIGTERM and SIGINT.
const (
	childReadyEnv  = "MIGTEST_CHILD_READY"
	childReadyLine = "childmain: handling signals"
)

// TestServeChildSignals sends SIGTERM or SIGINT to a real module child
// process ("childmain -m testmodule", which serves modules as mig-agent
// does): waiting for its request, it exits at once; running a module that
// honours its context, it stops it and writes the result marked as
// interrupted; running one that ignores its context, it exits after
// StopGrace instead of waiting to be killed.
func TestServeChildSignals(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	exe := childExe(t)
	const running = "testmodule: running" // testmodule.Running
	tests := []struct {
		name       string
		sig        syscall.Signal
		request    string // empty: stdin is left open, no request is written
		wantCode   int
		wantStderr string
		wantError  string // an error of the result written, with code 0
	}{
		{name: "SIGTERM waiting for the request", sig: syscall.SIGTERM, wantCode: module.ExitInterrupted,
			wantStderr: "module testmodule: interrupted before the request was read: terminated signal received"},
		{name: "SIGINT waiting for the request", sig: syscall.SIGINT, wantCode: module.ExitInterrupted,
			wantStderr: "module testmodule: interrupted before the request was read: interrupt signal received"},
		{name: "SIGTERM during a run", sig: syscall.SIGTERM, request: `{"mode":"sleep","duration":"1h"}`,
			wantError: "module testmodule: interrupted: terminated signal received"},
		{name: "SIGINT during a run", sig: syscall.SIGINT, request: `{"mode":"sleep","duration":"1h"}`,
			wantError: "module testmodule: interrupted: interrupt signal received"},
		{name: "SIGTERM during a run that ignores it", sig: syscall.SIGTERM, request: `{"mode":"hang"}`,
			wantCode:   module.ExitInterrupted,
			wantStderr: "module testmodule: interrupted (terminated signal received) and the module did not stop within " + module.StopGrace.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(exe, module.ChildFlag, "testmodule")
			cmd.Env = append(os.Environ(), childReadyEnv+"=1")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stdout bytes.Buffer
			marker := running
			if tt.request == "" {
				marker = childReadyLine
			}
			stderr := newLineWatcher(marker)
			cmd.Stdout, cmd.Stderr = &stdout, stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			defer func() {
				_ = cmd.Process.Kill()
				_ = stdin.Close()
			}()

			// Signal the child only once it handles signals (waiting for
			// its request) or once the module runs.
			guard := time.NewTimer(30 * time.Second)
			defer guard.Stop()
			if tt.request == "" {
				select {
				case <-stderr.seen:
				case err := <-exited:
					t.Fatalf("child exited before the signal: %v, stderr %q", err, stderr.String())
				case <-guard.C:
					t.Fatal("the child never said it handles signals")
				}
			} else {
				req := `{"module":"testmodule","parameters":` + tt.request + `}`
				if _, err := io.WriteString(stdin, req); err != nil {
					t.Fatal(err)
				}
				_ = stdin.Close()
				select {
				case <-stderr.seen:
				case err := <-exited:
					t.Fatalf("child exited before the signal: %v, stderr %q", err, stderr.String())
				case <-guard.C:
					t.Fatalf("the module never ran; stderr %q", stderr.String())
				}
			}
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-exited:
			case <-guard.C:
				t.Fatalf("the child still runs after %v; stderr %q", tt.sig, stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != tt.wantCode {
				t.Fatalf("exit code %d (%v), want %d; stderr %q", code, cmd.ProcessState, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantCode != 0 {
				if stdout.Len() != 0 {
					t.Errorf("stdout = %q, want nothing", stdout.String())
				}
				return
			}
			var res action.Result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("stdout %q is not a result: %v", stdout.String(), err)
			}
			if res.Success || !strings.Contains(strings.Join(res.Errors, "\n"), tt.wantError) {
				t.Errorf("result: success %v, errors %q; want a failure with %q", res.Success, res.Errors, tt.wantError)
			}
		})
	}
}

// TestServeChildInterruptedBeforeRequest checks in process that a context
// that ends while the request has not arrived stops ServeChild, and that
// one already done when the request has arrived keeps the module from
// running.
func TestServeChildInterruptedBeforeRequest(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(errors.New("told to stop"))
	pr, pw := io.Pipe()
	defer pw.Close()
	var stdout, stderr bytes.Buffer
	if code := module.ServeChild(ctx, "runnertest", pr, &stdout, &stderr); code != module.ExitInterrupted {
		t.Errorf("ServeChild with no request = %d, want %d (stderr %q)", code, module.ExitInterrupted, stderr.String())
	}
	if want := "interrupted before the request was read: told to stop"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr = %q, want it to contain %q", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}
