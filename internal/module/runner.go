package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/strictjson"
)

// Errors returned by RunChild and RunLocal; test for them with errors.Is.
var (
	// ErrTimeout means the module did not finish before its context ended;
	// the child process group was killed.
	ErrTimeout = errors.New("module timed out")
	// ErrCrashed means the module died (non-zero exit, signal, panic) or
	// wrote something other than one valid Result.
	ErrCrashed = errors.New("module crashed")
)

// ChildFlag is the command-line flag that makes an agent binary serve one
// module operation as a child process: "<exe> -m <module>".
const ChildFlag = "-m"

// MaxStderr is how much of a child's standard error RunChild keeps.
const MaxStderr = 64 << 10

// maxRequestSize bounds the request a child reads: the parameters plus the
// few other fields of the request.
const maxRequestSize = action.MaxParametersSize + 4096

// waitDelay bounds how long RunChild waits for a killed or exited child's
// pipes to close (a grandchild may hold them open).
const waitDelay = 2 * time.Second

// Request is what the agent writes to a module child process on its standard
// input, as one JSON object.
type Request struct {
	// Module is the module to run; the child refuses any other module than
	// the one named on its command line.
	Module string `json:"module"`
	// Parameters are the module's JSON parameters, as signed.
	Parameters json.RawMessage `json:"parameters"`
	// MaxProcs is Env.MaxProcs; the child sets runtime.GOMAXPROCS to it
	// when it is positive.
	MaxProcs int `json:"maxprocs,omitempty"`
}

var errStdoutTooLarge = fmt.Errorf("standard output is over the limit of %d bytes", MaxOutput)

// RunChild runs one operation of module name in a child process "exe -m
// name" in its own process group, writes the Request on its standard input
// and reads its Result from its standard output (at most MaxOutput bytes;
// at most MaxStderr bytes of standard error are kept). When ctx ends first, the whole process group is killed and the
// error wraps ErrTimeout. A non-zero exit, a death by signal (a Go panic
// exits with status 2), oversized output or output that is not exactly one
// valid Result give an error wrapping ErrCrashed that carries the exit
// status and the last lines of standard error.
func RunChild(ctx context.Context, exe, name string, params []byte, env Env) (action.Result, error) {
	req, err := json.Marshal(Request{Module: name, Parameters: json.RawMessage(params), MaxProcs: env.MaxProcs})
	if err != nil {
		return action.Result{}, fmt.Errorf("module %s: encoding the child request: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return action.Result{}, fmt.Errorf("module %s: %w before it started: %w", name, ErrTimeout, err)
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	stdout := &limitWriter{max: MaxOutput, onOverflow: func() { cancel(errStdoutTooLarge) }}
	stderr := &tailWriter{}
	cmd := exec.CommandContext(runCtx, exe, ChildFlag, name)
	cmd.Stdin = bytes.NewReader(req)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }

	start := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		// Reap whatever the child left behind in its group. The leader is
		// reaped by now, so this is best effort.
		_ = killProcessGroup(cmd)
	}
	switch {
	case cmd.Process == nil:
		return action.Result{}, fmt.Errorf("module %s: starting %s: %w", name, exe, runErr)
	case errors.Is(context.Cause(runCtx), errStdoutTooLarge):
		return action.Result{}, fmt.Errorf("module %s: %w: %w (%s)", name, ErrCrashed, errStdoutTooLarge, stderr.summary())
	case runErr != nil && ctx.Err() != nil:
		return action.Result{}, fmt.Errorf("module %s: %w after %s: %w", name, ErrTimeout,
			time.Since(start).Round(time.Millisecond), context.Cause(ctx))
	case runErr != nil:
		return action.Result{}, fmt.Errorf("module %s: %w: %v (%s)", name, ErrCrashed, exitStatus(cmd, runErr), stderr.summary())
	}
	var res action.Result
	if err := decodeResult(stdout.buf.Bytes(), &res); err != nil {
		return action.Result{}, fmt.Errorf("module %s: %w: standard output is not one result: %v (%s)",
			name, ErrCrashed, err, stderr.summary())
	}
	return res, nil
}

// ExitInterrupted is ServeChild's exit code when its context ended (the
// child got SIGTERM or SIGINT) before it could write a result: while it
// waited for the request, or when the module did not return within
// StopGrace of it.
const ExitInterrupted = 4

// StopGrace is how long ServeChild waits, once its context ended, for the
// module to return before it gives up and returns ExitInterrupted.
const StopGrace = 2 * time.Second

// ServeChild is the child side of RunChild: main calls it when started as
// "<exe> -m name", with a context that ends on SIGTERM and SIGINT
// (signal.NotifyContext). It reads one Request (bounded) from stdin,
// refuses one naming another module than name, sets GOMAXPROCS, runs the
// module and writes its Result as JSON on stdout. It returns the process
// exit code: 0 whenever a Result was written, even one with Success false
// (parameters the module refuses give such a result); 2 for a malformed
// request, with the reason on stderr; 1 when stdout cannot be written.
//
// When ctx ends, the child stops promptly rather than waiting to be
// killed: before the request is read, ServeChild returns ExitInterrupted
// at once; during the run, the module sees ctx end, and the result it
// returns within StopGrace is written with Success false and an error
// saying it was interrupted; a module that does not return by then is
// abandoned and ServeChild returns ExitInterrupted. Either way the reason
// is on stderr. A goroutine reading stdin or running the module may be
// left behind: the caller exits right after.
//
// A panic in the module is not recovered: it kills the child, which is
// what RunChild reports.
func ServeChild(ctx context.Context, name string, stdin io.Reader, stdout, stderr io.Writer) int {
	data, err := readRequest(ctx, stdin)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "module %s: interrupted before the request was read: %v\n", name, context.Cause(ctx))
			return ExitInterrupted
		}
		fmt.Fprintf(stderr, "module %s: reading the request: %v\n", name, err)
		return 2
	}
	if len(data) > maxRequestSize {
		fmt.Fprintf(stderr, "module %s: request is over the limit of %d bytes\n", name, maxRequestSize)
		return 2
	}
	var req Request
	if err := strictjson.Decode(data, &req); err != nil {
		fmt.Fprintf(stderr, "module %s: malformed request: %v\n", name, err)
		return 2
	}
	if req.Module != name {
		fmt.Fprintf(stderr, "module %s: request is for module %q\n", name, req.Module)
		return 2
	}
	if req.MaxProcs < 0 {
		fmt.Fprintf(stderr, "module %s: maxprocs %d is negative\n", name, req.MaxProcs)
		return 2
	}
	if req.MaxProcs > 0 {
		runtime.GOMAXPROCS(req.MaxProcs)
	}
	var res action.Result
	if _, r, err := Parse(name, req.Parameters); err != nil {
		res = FailResult(err.Error())
	} else if res, err = runUntilStopped(ctx, name, r, Env{MaxProcs: req.MaxProcs}); err != nil {
		fmt.Fprintf(stderr, "module %s: %v\n", name, err)
		return ExitInterrupted
	}
	out, err := encodeResult(res)
	if err != nil {
		fmt.Fprintf(stderr, "module %s: encoding the result: %v\n", name, err)
		return 1
	}
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "module %s: writing the result: %v\n", name, err)
		return 1
	}
	return 0
}

// readRequest reads the request from stdin, at most maxRequestSize+1
// bytes, unless ctx ends first; then it returns ctx's error and leaves the
// read to finish (or not) on its own.
func readRequest(ctx context.Context, stdin io.Reader) ([]byte, error) {
	type read struct {
		data []byte
		err  error
	}
	got := make(chan read, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(stdin, maxRequestSize+1))
		got <- read{data, err}
	}()
	select {
	case r := <-got:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// runUntilStopped runs r. When ctx ends first, it waits up to StopGrace for
// the module to return and marks what it returns as interrupted; a module
// that does not return by then is left running and an error is returned.
// ctx already done before the run is the same as ending during it: the
// module is not started.
func runUntilStopped(ctx context.Context, name string, r Runner, env Env) (action.Result, error) {
	if ctx.Err() != nil {
		return action.Result{}, fmt.Errorf("interrupted before the module ran: %v", context.Cause(ctx))
	}
	done := make(chan action.Result, 1)
	go func() { done <- r.Run(ctx, env) }()
	select {
	case res := <-done:
		return res, nil
	case <-ctx.Done():
	}
	t := time.NewTimer(StopGrace)
	defer t.Stop()
	select {
	case res := <-done:
		res.Success = false
		res.Errors = append(res.Errors, fmt.Sprintf("module %s: interrupted: %v", name, context.Cause(ctx)))
		return res, nil
	case <-t.C:
		return action.Result{}, fmt.Errorf("interrupted (%v) and the module did not stop within %s", context.Cause(ctx), StopGrace)
	}
}

// RunLocal runs one operation of module name in this process, for the fleet
// simulator and tests ("mig -t local" runs, with RunParsed, the Runner it
// built when it checked the parameters). Unknown modules and refused parameters are
// returned as errors (wrapping ErrUnknownModule for the former). A panic in
// the module is recovered into an error wrapping ErrCrashed. There is no
// process to kill, so a module that ignores ctx blocks RunLocal; env.MaxProcs
// is passed to the module but GOMAXPROCS is left alone.
func RunLocal(ctx context.Context, name string, params []byte, env Env) (action.Result, error) {
	_, r, err := Parse(name, params)
	if err != nil {
		return action.Result{}, err
	}
	return RunParsed(ctx, name, r, env)
}

// RunParsed is RunLocal for parameters already parsed: r is what Parse
// returned for module name. An agent that runs modules in its own process
// uses it to run the Runner it built when it checked the command, so that
// each operation's parameters are parsed once.
func RunParsed(ctx context.Context, name string, r Runner, env Env) (res action.Result, err error) {
	if r == nil {
		return action.Result{}, fmt.Errorf("module %s: %w: no parsed parameters", name, ErrCrashed)
	}
	defer func() {
		if p := recover(); p != nil {
			res = action.Result{}
			err = fmt.Errorf("module %s: %w: panic: %v\n%s", name, ErrCrashed, p, lastLines(string(debug.Stack()), 12))
		}
	}()
	res = capResult(r.Run(ctx, env))
	if ctx.Err() != nil && !res.Success {
		return res, fmt.Errorf("module %s: %w: %w", name, ErrTimeout, context.Cause(ctx))
	}
	return res, nil
}

// exitStatus describes how a child ended: "exit status 3", "signal:
// killed", or the error that kept it from being waited for.
func exitStatus(cmd *exec.Cmd, runErr error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	return runErr.Error()
}

// encodeResult marshals a result, cut to MaxResultSize (FitResult).
func encodeResult(res action.Result) ([]byte, error) {
	out, err := json.Marshal(res)
	if err != nil || len(out) <= MaxResultSize {
		return out, err
	}
	return json.Marshal(FitResult(res, MaxResultSize))
}

// capResult applies encodeResult's size rule to an in-process result.
func capResult(res action.Result) action.Result {
	out, err := json.Marshal(res)
	if err != nil {
		return FailResult(fmt.Sprintf("result does not encode: %v", err))
	}
	if len(out) <= MaxResultSize {
		return res
	}
	return FitResult(res, MaxResultSize)
}

// decodeResult decodes exactly one Result, refusing unknown fields and
// trailing data.
func decodeResult(data []byte, res *action.Result) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("it is empty")
	}
	return strictjson.Decode(data, res)
}

// limitWriter keeps up to max bytes and calls onOverflow once when more
// arrive. It never blocks the writer: excess bytes are dropped with an error.
type limitWriter struct {
	mu         sync.Mutex
	buf        bytes.Buffer
	max        int
	over       bool
	onOverflow func()
}

func (w *limitWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.over {
		return 0, errStdoutTooLarge
	}
	if w.buf.Len()+len(p) > w.max {
		w.over = true
		w.onOverflow()
		return 0, errStdoutTooLarge
	}
	return w.buf.Write(p)
}

// tailWriter keeps the first and the last bytes of what is written to it,
// MaxStderr in all, so that both a panic message and the end of a long
// trace survive.
type tailWriter struct {
	mu      sync.Mutex
	head    []byte
	tail    []byte
	dropped bool
}

const stderrHead = 4 << 10

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	if room := stderrHead - len(w.head); room > 0 {
		k := min(room, len(p))
		w.head = append(w.head, p[:k]...)
		p = p[k:]
	}
	w.tail = append(w.tail, p...)
	if limit := MaxStderr - stderrHead; len(w.tail) > limit {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-limit:]...)
		w.dropped = true
	}
	return n, nil
}

// summary returns the panic or fatal error line of what was written, if
// any, and its last lines, for an error message.
func (w *tailWriter) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	all := string(w.head) + string(w.tail)
	if strings.TrimSpace(all) == "" {
		return "no standard error"
	}
	var first string
	for _, line := range strings.Split(string(w.head), "\n") {
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			first = line
			break
		}
	}
	tail := lastLines(all, 8)
	if first != "" && !strings.Contains(tail, first) {
		tail = first + "\n...\n" + tail
	}
	return "stderr: " + tail
}

// lastLines returns the last n non-empty lines of s, at most 2 KiB.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, "\n")
	if len(out) > 2048 {
		out = "..." + out[len(out)-2048:]
	}
	return out
}
