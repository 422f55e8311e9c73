package scribe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// MaxLineSize is the longest line a filecontent object matches; longer
// lines are matched by their first MaxLineSize bytes.
const MaxLineSize = 1 << 20

// MaxCandidates bounds the candidates one object collects; past it the
// object is in error.
const MaxCandidates = 100_000

// Package is one installed package, as a PackageSource lists it.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	// Type is TypeDpkg, TypeRPM or TypeAPK; it picks the version ordering.
	Type string `json:"type"`
}

// PackageSource lists the packages installed on the endpoint.
type PackageSource interface {
	Packages(ctx context.Context) ([]Package, error)
}

// PackageList is a fixed PackageSource.
type PackageList []Package

// Packages returns the list.
func (l PackageList) Packages(context.Context) ([]Package, error) { return l, nil }

// PackageSourceFunc adapts a function to a PackageSource.
type PackageSourceFunc func(ctx context.Context) ([]Package, error)

// Packages calls f.
func (f PackageSourceFunc) Packages(ctx context.Context) ([]Package, error) { return f(ctx) }

// Env is where a policy is evaluated.
type Env struct {
	// Root is prepended to the paths of filecontent and filename objects;
	// empty means "/".
	Root string
	// Packages lists the installed packages; it is called at most once per
	// evaluation, and only when the policy has package objects. A nil
	// source makes package objects errors.
	Packages PackageSource
	// Logger receives debug messages; nil discards them.
	Logger *slog.Logger
}

// Result values of a test, as TestResult.Result says them.
const (
	ResultTrue  = "true"
	ResultFalse = "false"
	ResultError = "error"
)

// TestResult is the outcome of one test.
type TestResult struct {
	TestID      string   `json:"testid"`
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
	Tags        []Tag    `json:"tags,omitempty"`
	// MasterResult is the test's result: whether any candidate passed
	// (compared with the test's expectedresult when it has one). It is
	// false when Error is set.
	MasterResult bool `json:"masterresult"`
	// HasTrueResults reports whether any candidate passed.
	HasTrueResults bool `json:"hastrueresults"`
	// Error says why the test could not be evaluated: its object could not
	// be collected, or a test it depends on is in error.
	Error string `json:"error,omitempty"`
	// Skipped says why the test did not run: a test its if names is
	// false. The test is then false, with no sub-results.
	Skipped string `json:"skipped,omitempty"`
	// Results has one entry per candidate of the test's object.
	Results []SubResult `json:"results"`
}

// Result returns ResultTrue, ResultFalse or ResultError.
func (r TestResult) Result() string {
	switch {
	case r.Error != "":
		return ResultError
	case r.MasterResult:
		return ResultTrue
	}
	return ResultFalse
}

// SubResult is the outcome of a test on one candidate.
type SubResult struct {
	Result bool `json:"result"`
	// Identifier names the candidate: a package name ("name:arch" when the
	// package has an architecture), a file path, a raw identifier.
	Identifier string `json:"identifier"`
	// Value is what the test looked at: a version, a captured value.
	Value string `json:"value"`
}

// candidate is one thing an object collected.
type candidate struct {
	id, value string
	typ       string // package type, for evr ordering
}

// objectResult is an object's candidates, or why it has none.
type objectResult struct {
	cands []candidate
	err   error
}

// evaluation is the state of one Evaluate call.
type evaluation struct {
	p      *Policy
	env    Env
	root   string
	log    *slog.Logger
	pkgs   map[string][]Package // by name
	pkgAll []Package
	pkgErr error
	pkgsOK bool
	cache  map[string]objectResult // object name + "\x00" + chain root
}

// Evaluate runs every test of the policy in env and returns one result per
// test, in document order. Problems with objects (an unreadable package
// database, a missing file path) become test errors; Evaluate itself fails
// only when ctx ends, returning the context's error.
func (p *Policy) Evaluate(ctx context.Context, env Env) ([]TestResult, error) {
	ev := &evaluation{p: p, env: env, root: env.Root, log: env.Logger, cache: map[string]objectResult{}}
	if ev.root == "" {
		ev.root = "/"
	}
	if ev.log == nil {
		ev.log = slog.New(slog.DiscardHandler)
	}
	results := make([]TestResult, len(p.tests))
	for _, t := range p.order {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		results[t.index] = ev.run(ctx, t, results)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

func (ev *evaluation) run(ctx context.Context, t *test, done []TestResult) TestResult {
	r := TestResult{TestID: t.t.Test, Name: t.t.Name, Description: t.t.Description,
		Aliases: t.t.Aliases, Tags: t.t.Tags, Results: []SubResult{}}
	for _, d := range t.deps {
		switch dr := done[d.index]; {
		case dr.Error != "":
			r.Error = fmt.Sprintf("test %q it depends on is in error", d.t.Test)
			return r
		case !dr.MasterResult:
			r.Skipped = fmt.Sprintf("test %q is false", d.t.Test)
			return r
		}
	}
	or := ev.object(ctx, t.obj, "")
	if or.err != nil {
		r.Error = fmt.Sprintf("object %q: %v", t.obj.name, or.err)
		return r
	}
	for _, c := range or.cands {
		ok := t.check(c)
		r.Results = append(r.Results, SubResult{Result: ok, Identifier: c.id, Value: c.value})
		if ok {
			r.HasTrueResults = true
		}
	}
	r.MasterResult = r.HasTrueResults == t.expect
	return r
}

// check reports whether candidate c passes test t.
func (t *test) check(c candidate) bool {
	switch t.kind {
	case "evr":
		cmp := t.cmp
		if cmp == nil {
			cmp = comparator(c.typ)
		}
		if cmp == nil {
			cmp = CompareDpkg
		}
		n := cmp(c.value, t.value)
		switch t.op {
		case OpLess:
			return n < 0
		case OpLessEqual:
			return n <= 0
		case OpEqual:
			return n == 0
		case OpGreaterEqual:
			return n >= 0
		case OpGreater:
			return n > 0
		}
		return false
	case "regexp":
		return t.re.MatchString(c.value)
	case "exactmatch":
		return c.value == t.value
	case "noop":
		return true
	}
	return false
}

// object collects the candidates of o, once per evaluation and chain root.
func (ev *evaluation) object(ctx context.Context, o *object, chain string) objectResult {
	key := o.name + "\x00" + chain
	if r, ok := ev.cache[key]; ok {
		return r
	}
	var r objectResult
	switch o.kind {
	case ObjectPackage:
		r.cands, r.err = ev.packages(ctx, o)
	case ObjectRaw:
		for _, id := range o.raw {
			r.cands = append(r.cands, candidate{id: id.Identifier, value: id.Value})
		}
	case ObjectFileName, ObjectFileContent:
		r.cands, r.err = ev.files(ctx, o, chain)
		if r.err == nil && len(o.chain) > 0 {
			r.cands, r.err = ev.importChain(ctx, o, r.cands)
		}
	}
	if r.err == nil && len(r.cands) > MaxCandidates {
		r = objectResult{err: fmt.Errorf("%d candidates, over the limit of %d", len(r.cands), MaxCandidates)}
	}
	ev.cache[key] = r
	return r
}

func (ev *evaluation) importChain(ctx context.Context, o *object, cands []candidate) ([]candidate, error) {
	seen := map[string]bool{}
	for _, c := range cands[:len(cands):len(cands)] {
		if seen[c.value] {
			continue
		}
		seen[c.value] = true
		for _, d := range o.chain {
			r := ev.object(ctx, d, c.value)
			if r.err != nil {
				return nil, fmt.Errorf("import-chain object %q with %s %q: %w", d.name, chainRoot, c.value, r.err)
			}
			cands = append(cands, r.cands...)
			if len(cands) > MaxCandidates {
				return nil, fmt.Errorf("%d candidates, over the limit of %d", len(cands), MaxCandidates)
			}
		}
	}
	return cands, nil
}

// loadPackages reads the package source once.
func (ev *evaluation) loadPackages(ctx context.Context) {
	if ev.pkgsOK {
		return
	}
	ev.pkgsOK = true
	if ev.env.Packages == nil {
		ev.pkgErr = errors.New("no package source on this endpoint")
		return
	}
	pkgs, err := ev.env.Packages.Packages(ctx)
	if err != nil && len(pkgs) == 0 {
		ev.pkgErr = fmt.Errorf("listing installed packages: %w", err)
		return
	}
	if err != nil {
		ev.log.Warn("package source", "error", err)
	}
	ev.pkgAll = pkgs
	ev.pkgs = make(map[string][]Package, len(pkgs))
	for _, pk := range pkgs {
		ev.pkgs[pk.Name] = append(ev.pkgs[pk.Name], pk)
	}
	ev.log.Debug("packages listed", "count", len(pkgs))
}

func (ev *evaluation) packages(ctx context.Context, o *object) ([]candidate, error) {
	ev.loadPackages(ctx)
	if ev.pkgErr != nil {
		return nil, ev.pkgErr
	}
	var sel []Package
	if o.match != nil {
		for _, pk := range ev.pkgAll {
			if o.match.MatchString(pk.Name) {
				sel = append(sel, pk)
			}
		}
	} else {
		for _, pk := range ev.pkgs[o.pkgName] {
			if o.arch == "" || pk.Arch == o.arch {
				sel = append(sel, pk)
			}
		}
	}
	if o.pkg.Type != "" {
		kept := sel[:0:0]
		for _, pk := range sel {
			if pk.Type == o.pkg.Type {
				kept = append(kept, pk)
			}
		}
		sel = kept
	}
	if o.pkg.OnlyNewest {
		sel = newest(sel)
	}
	cands := make([]candidate, 0, len(sel))
	for _, pk := range sel {
		id := pk.Name
		if pk.Arch != "" {
			id += ":" + pk.Arch
		}
		cands = append(cands, candidate{id: id, value: pk.Version, typ: pk.Type})
	}
	return cands, nil
}

// newest keeps, for each package name and type, the newest version, in the
// order of the first package of each name.
func newest(pkgs []Package) []Package {
	best := map[[2]string]int{}
	var out []Package
	for _, pk := range pkgs {
		key := [2]string{pk.Name, pk.Type}
		i, ok := best[key]
		if !ok {
			best[key] = len(out)
			out = append(out, pk)
			continue
		}
		cmp := comparator(pk.Type)
		if cmp == nil {
			cmp = CompareDpkg
		}
		if cmp(pk.Version, out[i].Version) > 0 {
			out[i] = pk
		}
	}
	return out
}

var variableRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expand substitutes ${key} in s with the policy's variables and the chain
// root; an unknown variable is an error.
func (ev *evaluation) expand(s, chain string) (string, error) {
	var err error
	out := variableRE.ReplaceAllStringFunc(s, func(m string) string {
		key := m[2 : len(m)-1]
		if key == chainRoot && chain != "" {
			return chain
		}
		if v, ok := ev.p.vars[key]; ok {
			return v
		}
		if err == nil {
			err = fmt.Errorf("variable ${%s} is not defined", key)
		}
		return m
	})
	return out, err
}

// files collects the candidates of a filename or filecontent object.
func (ev *evaluation) files(ctx context.Context, o *object, chain string) ([]candidate, error) {
	path, err := ev.expand(o.path, chain)
	if err != nil {
		return nil, err
	}
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("path %q is not absolute", path)
	}
	full := filepath.Join(ev.root, filepath.Clean(path))
	var cands []candidate
	add := func(file string) error {
		shown := file
		if ev.root != "/" {
			rel, err := filepath.Rel(ev.root, file)
			if err == nil {
				shown = "/" + filepath.ToSlash(rel)
			}
		}
		if o.kind == ObjectFileName {
			cands = append(cands, candidate{id: shown, value: fileValue(o.file, filepath.Base(file))})
			return nil
		}
		vals, err := readValues(ctx, file, o.expr, o.concat)
		if err != nil {
			return err
		}
		for _, v := range vals {
			cands = append(cands, candidate{id: shown, value: v})
		}
		if len(cands) > MaxCandidates {
			return fmt.Errorf("%d candidates, over the limit of %d", len(cands), MaxCandidates)
		}
		return nil
	}
	st, err := os.Stat(full)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A path that does not exist has no candidates: the files it would
		// hold are not there.
		return nil, nil
	case err != nil:
		return nil, err
	case !st.IsDir():
		if st.Mode().IsRegular() && o.file.MatchString(filepath.Base(full)) {
			if err := add(full); err != nil {
				return nil, err
			}
		}
		return cands, nil
	}
	err = filepath.WalkDir(full, func(p string, d fs.DirEntry, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err != nil {
			// Unreadable directories are skipped: the object sees what it
			// can read.
			ev.log.Debug("walk", "path", p, "error", err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		depth := 0
		if rel, err := filepath.Rel(full, p); err == nil && rel != "." {
			depth = strings.Count(rel, string(filepath.Separator)) + 1
		}
		if d.IsDir() {
			if p != full && depth >= o.maxDepth {
				return fs.SkipDir
			}
			return nil
		}
		if depth > o.maxDepth || !d.Type().IsRegular() || !o.file.MatchString(d.Name()) {
			return nil
		}
		if err := add(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, errNotRegular) {
				ev.log.Debug("read", "path", p, "error", err)
				return nil
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
	return cands, nil
}

// fileValue is a filename candidate's value: the first capture group of
// re in name, or the name.
func fileValue(re *regexp.Regexp, name string) string {
	if re.NumSubexp() > 0 {
		if m := re.FindStringSubmatch(name); m != nil {
			return m[1]
		}
	}
	return name
}

// readValues returns the values expr captures from the lines of file.
func readValues(ctx context.Context, file string, expr *regexp.Regexp, concat string) ([]string, error) {
	f, err := openRegular(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var vals []string
	br := bufio.NewReaderSize(f, 64<<10)
	for n := 0; ; n++ {
		if n%4096 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		line, err := readLine(br)
		if len(line) > 0 || err == nil {
			if m := expr.FindSubmatchIndex(line); m != nil {
				vals = append(vals, captureValue(expr, line, m, concat))
				if len(vals) > MaxCandidates {
					return nil, fmt.Errorf("file %s: more than %d matching lines", file, MaxCandidates)
				}
			}
		}
		if err != nil {
			if errors.Is(err, errEOF) {
				return vals, nil
			}
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
	}
}

// captureValue is the value of one matching line: concat expanded with
// the captures when it holds a "$" ("$1.$2", "${1}-${name}"); otherwise,
// with a concat and capture groups, every group joined with concat as the
// separator (Scribe's "concat": "." joins "(\d+), (\d+)" into "1.5"); or
// the first capture group; or the whole match.
func captureValue(expr *regexp.Regexp, line []byte, m []int, concat string) string {
	switch {
	case concat != "" && strings.Contains(concat, "$"):
		return string(expr.Expand(nil, []byte(concat), line, m))
	case concat != "" && len(m) >= 4:
		var b []byte
		for g := 1; 2*g+1 < len(m); g++ {
			if g > 1 {
				b = append(b, concat...)
			}
			if m[2*g] >= 0 {
				b = append(b, line[m[2*g]:m[2*g+1]]...)
			}
		}
		return string(b)
	}
	if len(m) >= 4 && m[2] >= 0 {
		return string(line[m[2]:m[3]])
	}
	return string(line[m[0]:m[1]])
}

var errEOF = errors.New("end of file")

// errNotRegular says that a path the walk saw as a regular file is now
// something else (a FIFO, a device): it is not read.
var errNotRegular = errors.New("not a regular file")

// openRegular opens file for reading, without blocking, and only when it
// is still a regular file.
func openRegular(file string) (*os.File, error) {
	f, err := os.OpenFile(file, openFlags, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = &fs.PathError{Op: "open", Path: file, Err: errNotRegular}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// readLine reads one line without its end of line ("\n" or "\r\n"); a
// line longer than MaxLineSize is cut, the rest skipped. At the end of the
// file it returns the last (possibly empty) line with errEOF.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= MaxLineSize {
			line = append(line, chunk...)
		} else if len(line) < MaxLineSize {
			line = append(line, chunk[:MaxLineSize-len(line)]...)
		}
		switch {
		case err == nil:
			line = trimEOL(line)
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return trimEOL(line), errEOF
		default:
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
