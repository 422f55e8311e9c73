// Package scribe is MIG's scribe module: every agent evaluates a Scribe
// policy (vulnerability or compliance tests, see internal/scribe) against
// its own package database and files, and returns the test results.
//
// # Parameters
//
//	{"scribedoc": {"objects": [...], "tests": [...], "variables": [...]},
//	 "onlytrue": false, "human": false, "json": false}
//
// as MIG's scribe module had them; a bare policy document ({"objects",
// "tests", "variables"} at the top) is accepted too, so a policy file can
// be an operation's parameters as it is. onlytrue returns only the tests
// that are true; human and json pick how "mig" prints the results (one line
// per test by default).
//
// # Results
//
// Elements are an Elements: the test results (scribe.TestResult) and the
// output format. FoundAnything is true when any returned test is true.
// Statistics count the tests by result and the packages listed. The
// package database is read once per run, with internal/pkgdb.
package scribe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/pkgdb"
	"github.com/migplatform/mig/internal/scribe"
)

// Name is the module's name.
const Name = "scribe"

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid scribe parameters")

// Parameters are the module's JSON parameters.
type Parameters struct {
	// Document is the policy.
	Document scribe.Document `json:"scribedoc"`
	// OnlyTrue returns only the tests whose result is true.
	OnlyTrue bool `json:"onlytrue,omitempty"`
	// Human and JSON pick the output format of "mig" (at most one).
	Human bool `json:"human,omitempty"`
	JSON  bool `json:"json,omitempty"`
}

// Elements are the module's result elements.
type Elements struct {
	// Format is scribe.FormatLine, FormatHuman or FormatJSON.
	Format string `json:"format"`
	// Results are the tests' results, in policy order (only the true ones
	// with onlytrue).
	Results []scribe.TestResult `json:"results"`
}

// Statistics are the module's result statistics.
type Statistics struct {
	Tests    int    `json:"tests"`
	True     int    `json:"true"`
	False    int    `json:"false"`
	Error    int    `json:"error"`
	Packages int    `json:"packages"`
	Duration string `json:"duration"`
}

func init() { module.Register(scribeModule{}) }

// scribeModule implements module.Module.
type scribeModule struct{}

func (scribeModule) Name() string { return Name }

// ContentFields declares the tests' values (a version, a captured value
// read from a file) as endpoint content, bounded by the agent (see
// module.MaxContentValue).
func (scribeModule) ContentFields() []string { return []string{"value"} }

func (scribeModule) Summary() string {
	return "evaluate a Scribe vulnerability or compliance policy against packages and files"
}

func (scribeModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}

// runner runs a parsed policy.
type runner struct {
	params Parameters
	policy *scribe.Policy
	root   string
	source func(ctx context.Context, root string) ([]scribe.Package, error)
}

// wire is the union of the two accepted shapes of the parameters.
type wire struct {
	ScribeDoc json.RawMessage   `json:"scribedoc"`
	OnlyTrue  bool              `json:"onlytrue"`
	Human     bool              `json:"human"`
	JSON      bool              `json:"json"`
	Variables json.RawMessage   `json:"variables"`
	Objects   []json.RawMessage `json:"objects"`
	Tests     []json.RawMessage `json:"tests"`
}

// ParseParameters decodes and validates the module's parameters (either
// shape, see the package documentation), refusing unknown fields, and
// compiles the policy. Errors wrap ErrInvalidParameters and, for the
// policy, scribe.ErrInvalidPolicy, naming the object or test at fault.
func ParseParameters(raw []byte) (module.Runner, error) {
	p, policy, err := parse(raw)
	if err != nil {
		return nil, err
	}
	return &runner{params: p, policy: policy, root: "/", source: installed}, nil
}

func parse(raw []byte) (Parameters, *scribe.Policy, error) {
	w, err := module.DecodeParameters[wire](raw, ErrInvalidParameters)
	if err != nil {
		return Parameters{}, nil, err
	}
	bare := w.Variables != nil || w.Objects != nil || w.Tests != nil
	var doc []byte
	switch {
	case bare && w.ScribeDoc != nil:
		return Parameters{}, nil, fmt.Errorf("%w: both scribedoc and a bare policy (objects, tests, variables)", ErrInvalidParameters)
	case bare:
		var b struct {
			Variables json.RawMessage   `json:"variables,omitempty"`
			Objects   []json.RawMessage `json:"objects"`
			Tests     []json.RawMessage `json:"tests"`
		}
		b.Variables, b.Objects, b.Tests = w.Variables, w.Objects, w.Tests
		var err error
		if doc, err = json.Marshal(b); err != nil {
			return Parameters{}, nil, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
		}
	case w.ScribeDoc == nil || string(w.ScribeDoc) == "null":
		return Parameters{}, nil, fmt.Errorf("%w: no scribedoc", ErrInvalidParameters)
	default:
		doc = w.ScribeDoc
	}
	if w.Human && w.JSON {
		return Parameters{}, nil, fmt.Errorf("%w: human and json are both set; pick one output", ErrInvalidParameters)
	}
	policy, err := scribe.Parse(doc)
	if err != nil {
		return Parameters{}, nil, fmt.Errorf("%w: %w", ErrInvalidParameters, err)
	}
	return Parameters{Document: policy.Document(), OnlyTrue: w.OnlyTrue, Human: w.Human, JSON: w.JSON}, policy, nil
}

// installed lists the packages of root with pkgdb.
func installed(ctx context.Context, root string) ([]scribe.Package, error) {
	pkgs, err := pkgdb.Installed(ctx, root)
	out := make([]scribe.Package, len(pkgs))
	for i, p := range pkgs {
		out[i] = scribe.Package{Name: p.Name, Version: p.Version, Arch: p.Arch, Type: p.Type}
	}
	return out, err
}

func (p Parameters) format() string {
	switch {
	case p.Human:
		return scribe.FormatHuman
	case p.JSON:
		return scribe.FormatJSON
	}
	return scribe.FormatLine
}

func (r *runner) Run(ctx context.Context, _ module.Env) action.Result {
	start := time.Now()
	var npkgs int
	var pkgErr error
	src := scribe.PackageSourceFunc(func(ctx context.Context) ([]scribe.Package, error) {
		pkgs, err := r.source(ctx, r.root)
		npkgs, pkgErr = len(pkgs), err
		return pkgs, err
	})
	results, err := r.policy.Evaluate(ctx, scribe.Env{Root: r.root, Packages: src})
	if err != nil {
		return module.FailResult(fmt.Sprintf("evaluating the policy: %v", err))
	}
	st := Statistics{Tests: len(results), Packages: npkgs}
	for _, t := range results {
		switch t.Result() {
		case scribe.ResultTrue:
			st.True++
		case scribe.ResultFalse:
			st.False++
		default:
			st.Error++
		}
	}
	if r.params.OnlyTrue {
		results = scribe.OnlyTrue(results)
	}
	if results == nil {
		results = []scribe.TestResult{}
	}
	st.Duration = time.Since(start).Round(time.Microsecond).String()
	res := action.Result{Success: true, FoundAnything: st.True > 0 && len(results) > 0}
	if pkgErr != nil {
		res.Errors = append(res.Errors, fmt.Sprintf("package database: %v", pkgErr))
	}
	if res.Elements, err = json.Marshal(Elements{Format: r.params.format(), Results: results}); err != nil {
		return module.FailResult(fmt.Sprintf("encoding the results: %v", err))
	}
	if res.Statistics, err = json.Marshal(st); err != nil {
		return module.FailResult(fmt.Sprintf("encoding the statistics: %v", err))
	}
	return res
}

// MaxPolicyFile bounds how much of the file of "mig scribe -path" is read:
// the policy goes into the parameters, which hold at most
// action.MaxParametersSize bytes once it is compacted; eight times that
// leaves room for indentation, and "-path /dev/zero" ends with an error.
const MaxPolicyFile = 8 * action.MaxParametersSize

// readPolicy reads the policy file of -path, at most MaxPolicyFile bytes.
func readPolicy(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxPolicyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	if len(data) > MaxPolicyFile {
		return nil, fmt.Errorf("%w: the policy %s is over %d bytes, and the parameters hold at most %d: split it",
			ErrInvalidParameters, path, MaxPolicyFile, action.MaxParametersSize)
	}
	return data, nil
}

// SetFlags registers MIG's flags of "mig scribe": -path (the policy file,
// read now and embedded in the parameters), -onlytrue, -human and -json.
// The returned function parses the policy as ParseParameters does (see
// module.BuildFunc).
func (m scribeModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var (
		path                  string
		onlyTrue, human, jsOn bool
	)
	fs.StringVar(&path, "path", "", "the Scribe policy `file` (JSON) to evaluate")
	fs.BoolVar(&onlyTrue, "onlytrue", false, "return only the tests that are true")
	fs.BoolVar(&human, "human", false, "print each test over several lines, with every candidate")
	fs.BoolVar(&jsOn, "json", false, "print each test's result as JSON")
	return func() (json.RawMessage, module.Runner, error) {
		if path == "" {
			return nil, nil, fmt.Errorf("%w: -path is required: the policy file", ErrInvalidParameters)
		}
		data, err := readPolicy(path)
		if err != nil {
			return nil, nil, err
		}
		if human && jsOn {
			return nil, nil, fmt.Errorf("%w: -human and -json are both set; pick one", ErrInvalidParameters)
		}
		// The policy goes into the parameters as written (compacted), and
		// is checked once, as the agent will check it.
		var doc bytes.Buffer
		if err := json.Compact(&doc, data); err != nil {
			if _, perr := scribe.Parse(data); perr != nil {
				err = perr // names the object or test when it can
			}
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrInvalidParameters, path, err)
		}
		raw, err := json.Marshal(struct {
			ScribeDoc json.RawMessage `json:"scribedoc"`
			OnlyTrue  bool            `json:"onlytrue,omitempty"`
			Human     bool            `json:"human,omitempty"`
			JSON      bool            `json:"json,omitempty"`
		}{doc.Bytes(), onlyTrue, human, jsOn})
		if err != nil {
			return nil, nil, err
		}
		if len(raw) > action.MaxParametersSize {
			return nil, nil, fmt.Errorf("%w: the policy %s is %d bytes as parameters, over the limit of %d: split it",
				ErrInvalidParameters, path, len(raw), action.MaxParametersSize)
		}
		r, err := m.ParseParameters(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return raw, r, nil
	}
}

// PrintResult prints the results in the format the parameters asked for
// (see scribe.Print), each line starting with the agent's name. It prints
// nothing for a result without test results.
func (scribeModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("scribe module elements: %w", err)
	}
	return scribe.Print(w, agentName+" ", el.Format, el.Results)
}
