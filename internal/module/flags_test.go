package module_test

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// flagless is a module without flags (not a module.Flagger).
type flagless struct{}

func (flagless) Name() string    { return "flagless" }
func (flagless) Summary() string { return "no flags" }
func (flagless) ParseParameters([]byte) (module.Runner, error) {
	return nil, errors.New("not parsed in this test")
}
func (flagless) PrintResult(io.Writer, string, action.Result) error { return nil }

func TestSetFlagsWithoutFlags(t *testing.T) {
	fs := flag.NewFlagSet("flagless", flag.ContinueOnError)
	build := module.SetFlags(flagless{}, fs)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != 0 {
		t.Errorf("SetFlags registered %d flags for a module without flags, want 0", n)
	}
	raw, r, err := build()
	if !errors.Is(err, module.ErrNoFlags) || raw != nil || r != nil {
		t.Fatalf("build() = %s, %v, %v; want an error wrapping ErrNoFlags", raw, r, err)
	}
	for _, want := range []string{"flagless", "mig action -i FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestFlagKinds checks the shared flag kinds and Build through the
// runnertest module.
func TestFlagKinds(t *testing.T) {
	var (
		strs  []string
		ints  []int
		depth int
		all   bool
	)
	fs := flag.NewFlagSet("kinds", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	module.StringsVar(fs, &strs, "path", "a `path`")
	module.IntsVar(fs, &ints, "lp", "port", "a `port`")
	fs.IntVar(&depth, "maxdepth", 7, "depth")
	fs.BoolVar(&all, "matchall", true, "all")
	if err := fs.Parse([]string{"-path", "/a", "-lp", "22", "-path", "/b", "-lp", "80", "-maxdepth", "2"}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(strs, ","); got != "/a,/b" {
		t.Errorf("-path: got %q, want /a,/b", got)
	}
	if len(ints) != 2 || ints[0] != 22 || ints[1] != 80 {
		t.Errorf("-lp: got %v, want [22 80]", ints)
	}
	if p := module.Optional(fs, "maxdepth", &depth); p == nil || *p != 2 {
		t.Errorf("Optional(maxdepth) = %v, want a pointer to 2", p)
	}
	if p := module.Optional(fs, "matchall", &all); p != nil {
		t.Errorf("Optional(matchall) = %v, want nil: the flag was not given", p)
	}
	err := fs.Parse([]string{"-lp", "ssh"})
	if err == nil || !strings.Contains(err.Error(), `-lp: port "ssh" is not a number`) {
		t.Errorf("-lp ssh: error %v, want one naming the flag and the value", err)
	}

	m, _ := module.Lookup("runnertest")
	raw, r, err := module.Build(m, map[string]string{"mode": "ok"})
	if err != nil || string(raw) != `{"mode":"ok"}` || r == nil {
		t.Fatalf("Build = %s, %v, %v; want the parameters and a runner", raw, r, err)
	}
	if res := r.Run(t.Context(), module.Env{}); !res.Success {
		t.Errorf("the built runner's result = %+v, want success", res)
	}
	if raw, r, err := module.Build(m, map[string]string{"mode": "nope"}); err == nil || raw != nil || r != nil {
		t.Errorf("Build(bad mode) = %s, %v, %v; want only an error", raw, r, err)
	}
}

func TestNameFlag(t *testing.T) {
	flags := map[string]string{"listeningport": "lp"}
	pe := &module.ParamError{Key: "listeningport", Err: errors.New("listeningport 70000 is out of range")}
	invalid := errors.New("invalid netstat parameters")
	err := fmt.Errorf("%w: %w", invalid, pe)
	if got := err.Error(); got != "invalid netstat parameters: listeningport 70000 is out of range" {
		t.Errorf("a ParamError changes the text an agent reports: %q", got)
	}
	named := module.NameFlag(err, flags)
	if got, want := named.Error(), "flag -lp: invalid netstat parameters: listeningport 70000 is out of range"; got != want {
		t.Errorf("NameFlag = %q, want %q", got, want)
	}
	if !errors.Is(named, invalid) || !errors.Is(named, pe) {
		t.Errorf("NameFlag(%v) unwraps to neither the module's error nor the ParamError", err)
	}
	other := fmt.Errorf("%w: %w", invalid, &module.ParamError{Key: "timeout", Err: errors.New("timeout 0")})
	for _, e := range []error{nil, invalid, other} {
		if got := module.NameFlag(e, flags); got != e {
			t.Errorf("NameFlag(%v) = %v, want it unchanged", e, got)
		}
	}
}
