// Package pkg is MIG's pkg module: it lists the packages installed on an
// endpoint whose name (and optionally version) match regexes, from the
// endpoint's package databases (dpkg, RPM, apk; see internal/pkgdb), without
// running a package manager.
//
// # Parameters
//
//	{"pkgmatch": {"matches": ["^openssl", "^libssl"]}, "vermatch": "^3\\."}
//
// matches are regexes on package names (at least one; a package matches when
// any does); vermatch, when set, is a regex its version must match too. The
// version is the one the package manager compares (dpkg's Version with its
// epoch, RPM's [epoch:]version-release, apk's version).
//
// # Results
//
// Elements are an Elements (the matching packages, sorted by type, name,
// architecture and version); statistics a Statistics. FoundAnything is true
// when a package matched. A database that cannot be read is listed in
// Errors; Success is false only when no database could be read at all, or
// on a platform without any supported package database.
package pkg

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"runtime"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/pkgdb"
)

// Name is the module's name.
const Name = "pkg"

// Limits on the parameters.
const (
	MaxMatches    = 256
	MaxRegexBytes = 4096
)

// ErrInvalidParameters is wrapped by every error about the module's
// parameters.
var ErrInvalidParameters = errors.New("invalid pkg parameters")

// Parameters are the pkg module's JSON parameters (MIG's format).
type Parameters struct {
	// PkgMatch holds the name regexes.
	PkgMatch PkgMatch `json:"pkgmatch"`
	// VerMatch is an optional regex on versions.
	VerMatch string `json:"vermatch,omitempty"`
}

// PkgMatch holds the regexes on package names.
type PkgMatch struct {
	// Matches are regexes on package names; a package matches when any
	// does.
	Matches []string `json:"matches"`
}

// Elements are the packages found.
type Elements struct {
	Packages []pkgdb.Package `json:"packages"`
}

// Statistics count what the module read.
type Statistics struct {
	// Installed is the number of installed packages read.
	Installed int `json:"installed"`
	// Matched is the number of packages returned.
	Matched int `json:"matched"`
}

func init() { module.Register(pkgModule{}) }

type pkgModule struct{}

func (pkgModule) Name() string { return Name }

func (pkgModule) Summary() string {
	return "list installed packages (dpkg, rpm, apk) by name and version regexes"
}

func (pkgModule) ParseParameters(raw []byte) (module.Runner, error) {
	return ParseParameters(raw)
}

// Runner runs the pkg module with parsed parameters.
type Runner struct {
	names   []*regexp.Regexp
	version *regexp.Regexp
	// root is where package databases are looked for ("/").
	root string
}

// ParseParameters decodes and validates the module's parameters, refusing
// unknown fields. Errors wrap ErrInvalidParameters and name the bad value.
func ParseParameters(raw []byte) (*Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	return p.compile()
}

func (p Parameters) compile() (*Runner, error) {
	ms := p.PkgMatch.Matches
	if len(ms) == 0 {
		return nil, fmt.Errorf("%w: no package name regex (pkgmatch.matches, -name)", ErrInvalidParameters)
	}
	if len(ms) > MaxMatches {
		return nil, fmt.Errorf("%w: %d name regexes, at most %d", ErrInvalidParameters, len(ms), MaxMatches)
	}
	r := &Runner{root: "/"}
	for _, m := range ms {
		re, err := compile("name", m)
		if err != nil {
			return nil, err
		}
		r.names = append(r.names, re)
	}
	if p.VerMatch != "" {
		re, err := compile("version", p.VerMatch)
		if err != nil {
			return nil, err
		}
		r.version = re
	}
	return r, nil
}

func compile(what, s string) (*regexp.Regexp, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty %s regex", ErrInvalidParameters, what)
	}
	if len(s) > MaxRegexBytes {
		return nil, fmt.Errorf("%w: %s regex of %d bytes, at most %d", ErrInvalidParameters, what, len(s), MaxRegexBytes)
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s regex %q: %w", ErrInvalidParameters, what, s, err)
	}
	return re, nil
}

// Run reads the package databases and returns the matching packages.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	if runtime.GOOS != "linux" {
		return module.FailResult(fmt.Sprintf("pkg module: no supported package database on %s", runtime.GOOS))
	}
	all, err := pkgdb.Installed(ctx, r.root)
	res := action.Result{Success: true}
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		if len(all) == 0 {
			res.Success = false
		}
	}
	var el Elements
	el.Packages = []pkgdb.Package{}
	for _, p := range all {
		if r.Match(p) {
			el.Packages = append(el.Packages, p)
		}
	}
	res.FoundAnything = len(el.Packages) > 0
	res.Elements, _ = json.Marshal(el)
	res.Statistics, _ = json.Marshal(Statistics{Installed: len(all), Matched: len(el.Packages)})
	return res
}

// Match reports whether a package matches the parameters.
func (r *Runner) Match(p pkgdb.Package) bool {
	if r.version != nil && !r.version.MatchString(p.Version) {
		return false
	}
	for _, re := range r.names {
		if re.MatchString(p.Name) {
			return true
		}
	}
	return false
}

// SetFlags registers MIG's flags of "mig pkg": -name (repeatable) and
// -version. The returned function builds the JSON parameters and parses
// them as ParseParameters does (see module.BuildFunc).
func (m pkgModule) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	var p Parameters
	module.StringsVar(fs, &p.PkgMatch.Matches, "name", "`regex` on package names (repeatable)")
	fs.StringVar(&p.VerMatch, "version", "", "`regex` on package versions")
	return func() (json.RawMessage, module.Runner, error) {
		return module.Build(m, p)
	}
}

// PrintResult writes one line per package found, as MIG prints them:
//
//	<agent> name=<name> version=<version> type=<type> arch=<arch>
func (pkgModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("pkg module elements: %w", err)
	}
	for _, p := range el.Packages {
		arch := p.Arch
		if arch == "" {
			arch = "-"
		}
		if _, err := fmt.Fprintf(w, "%s name=%s version=%s type=%s arch=%s\n", agentName, p.Name, p.Version, p.Type, arch); err != nil {
			return err
		}
	}
	return nil
}
