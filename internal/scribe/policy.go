package scribe

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/migplatform/mig/internal/strictjson"
)

// Limits on a policy. They bound the work of parsing one from an
// untrusted source.
const (
	// MaxPolicySize is the largest JSON policy Parse reads.
	MaxPolicySize = 16 << 20
	// MaxItems bounds the number of objects, of tests and of variables.
	MaxItems = 100_000
	// MaxChainDepth bounds how deep import chains nest.
	MaxChainDepth = 8
	// DefaultMaxDepth is how deep under its path a filecontent or filename
	// object looks when it does not say.
	DefaultMaxDepth = 10
)

// Errors of this package; test for them with errors.Is.
var (
	// ErrInvalidPolicy is wrapped by every error about a policy document;
	// the message names the object or test at fault.
	ErrInvalidPolicy = errors.New("invalid scribe policy")
)

// Object types.
const (
	ObjectPackage     = "package"
	ObjectFileContent = "filecontent"
	ObjectFileName    = "filename"
	ObjectRaw         = "raw"
)

// EVR operations.
const (
	OpLess         = "<"
	OpLessEqual    = "<="
	OpEqual        = "="
	OpGreaterEqual = ">="
	OpGreater      = ">"
)

// Document is a Scribe policy as JSON: objects that collect candidates
// (packages, values read from files, file names, literal values) and tests
// that check them. See the package documentation for the semantics.
type Document struct {
	// Variables are substituted as ${key} in the paths of filecontent and
	// filename objects.
	Variables []Variable `json:"variables,omitempty"`
	// Objects are the things tests look at, each with a unique name.
	Objects []Object `json:"objects"`
	// Tests check objects; each has a unique id.
	Tests []Test `json:"tests"`
}

// Variable is one ${key} substitution.
type Variable struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Object is one named object; exactly one of its type fields is set.
type Object struct {
	// Object is the object's unique name, which tests refer to.
	Object      string             `json:"object"`
	Package     *PackageObject     `json:"package,omitempty"`
	FileContent *FileContentObject `json:"filecontent,omitempty"`
	FileName    *FileNameObject    `json:"filename,omitempty"`
	Raw         *RawObject         `json:"raw,omitempty"`
}

// PackageObject selects installed packages. Each installed package it
// selects is one candidate: its identifier is the package name, its value
// the installed version.
type PackageObject struct {
	// Name selects the packages of that name; "name:arch" (dpkg's
	// multi-arch form, "libnss3:amd64") also requires the architecture.
	Name string `json:"name,omitempty"`
	// CollectMatch, instead of Name, is a regular expression: every
	// package whose name matches is selected.
	CollectMatch string `json:"collectmatch,omitempty"`
	// Type restricts the selection to one package database: "dpkg", "rpm"
	// or "apk".
	Type string `json:"type,omitempty"`
	// OnlyNewest keeps, of the packages of one name, only the newest
	// version (several kernels may be installed at once).
	OnlyNewest bool `json:"onlynewest,omitempty"`
}

// FileContentObject collects values from the lines of files: every line
// of a file under Path whose base name matches File, that matches
// Expression, is one candidate whose identifier is the file's path and
// whose value is the expression's first capture group (the whole match
// when it has none), or Concat expanded with the captures.
type FileContentObject struct {
	// Path is the directory to search (or one file), ${variables}
	// expanded, relative to the evaluation's root.
	Path string `json:"path"`
	// File is a regular expression on base names.
	File string `json:"file"`
	// Expression is a regular expression on lines.
	Expression string `json:"expression"`
	// Concat, when set, builds the value from the captures: a template
	// when it holds a "$" ("$1.$2", "${1}-${name}"), otherwise the
	// separator that joins every capture group of the line (Scribe's
	// "concat": ".").
	Concat string `json:"concat,omitempty"`
	// MaxDepth bounds how deep under Path files are read
	// (DefaultMaxDepth); a file directly in Path is at depth 1.
	MaxDepth *int `json:"maxdepth,omitempty"`
	// ImportChain names other filecontent or filename objects that are
	// evaluated once for each value this object collects, with the
	// variable ${chain_root} set to that value; their candidates are added
	// to this object's. A configuration file that includes others is
	// followed this way.
	ImportChain []string `json:"import-chain,omitempty"`
}

// FileNameObject collects files that exist: every file under Path whose
// base name matches File is one candidate, whose identifier is its path and
// whose value is File's first capture group (the base name when it has
// none).
type FileNameObject struct {
	Path     string `json:"path"`
	File     string `json:"file"`
	MaxDepth *int   `json:"maxdepth,omitempty"`
}

// RawObject holds literal candidates.
type RawObject struct {
	Identifiers []RawIdentifier `json:"identifiers"`
}

// RawIdentifier is one literal candidate.
type RawIdentifier struct {
	Identifier string `json:"identifier"`
	Value      string `json:"value"`
}

// Test is one test; at most one of EVR, Regexp, ExactMatch and Noop is
// set, and a test with none of them is a noop test, as in Scribe.
type Test struct {
	// Test is the test's unique id.
	Test string `json:"test"`
	// Name, Description, Aliases (CVE ids, advisory ids) and Tags are
	// copied to the test's result.
	Name        string   `json:"name,omitempty"`
	Description string   `json:"description,omitempty"`
	Aliases     []string `json:"aliases,omitempty"`
	Tags        []Tag    `json:"tags,omitempty"`
	// Object names the object whose candidates the test checks.
	Object     string          `json:"object"`
	EVR        *EVRTest        `json:"evr,omitempty"`
	Regexp     *RegexpTest     `json:"regexp,omitempty"`
	ExactMatch *ExactMatchTest `json:"exactmatch,omitempty"`
	Noop       *NoopTest       `json:"noop,omitempty"`
	// If names tests that must all be true for this one to run; otherwise
	// this test is false (or an error, when one of them is).
	If []string `json:"if,omitempty"`
	// ExpectedResult, when set, is what the evaluation must give for the
	// test's result to be true: with false, the test is true when no
	// candidate passes.
	ExpectedResult *bool `json:"expectedresult,omitempty"`
}

// Tag is a key and value attached to a test.
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// EVRTest compares a candidate's version with Value: the candidate passes
// when "candidate Operation Value" holds.
type EVRTest struct {
	Operation string `json:"operation"`
	Value     string `json:"value"`
	// Type picks the version ordering ("dpkg", "rpm", "apk"); by default
	// a package's own type, and dpkg for other candidates.
	Type string `json:"type,omitempty"`
}

// RegexpTest passes candidates whose value matches Value.
type RegexpTest struct {
	Value string `json:"value"`
}

// ExactMatchTest passes candidates whose value is exactly Value.
type ExactMatchTest struct {
	Value string `json:"value"`
}

// NoopTest passes every candidate: the test only collects.
type NoopTest struct{}

// Policy is a validated, compiled policy, ready to evaluate any number of
// times. It is safe for concurrent use.
type Policy struct {
	doc     Document
	vars    map[string]string
	objects map[string]*object
	tests   []*test // document order
	order   []*test // dependencies first
}

// object is a compiled Object.
type object struct {
	name  string
	kind  string
	pkg   *PackageObject
	match *regexp.Regexp // collectmatch
	// arch is the architecture of a "name:arch" package name.
	pkgName, arch string

	path     string // before variable expansion
	file     *regexp.Regexp
	expr     *regexp.Regexp
	concat   string
	maxDepth int
	chain    []*object

	raw []RawIdentifier
}

// test is a compiled Test.
type test struct {
	t      Test
	index  int
	obj    *object
	deps   []*test
	kind   string
	op     string
	cmp    func(a, b string) int // evr with an explicit type
	re     *regexp.Regexp
	value  string
	expect bool
}

// Parse decodes and validates a JSON policy, refusing unknown fields and
// trailing data. Errors wrap ErrInvalidPolicy and name the object or test
// at fault.
func Parse(data []byte) (*Policy, error) {
	if len(data) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrInvalidPolicy, len(data), MaxPolicySize)
	}
	// One strict pass over the whole document; only when it fails is the
	// document decoded again item by item, to name the object or test at
	// fault.
	var doc Document
	err := strictjson.Decode(data, &doc)
	if err == nil {
		if len(doc.Objects) > MaxItems || len(doc.Tests) > MaxItems {
			return nil, fmt.Errorf("%w: %d objects and %d tests, over the limit of %d each",
				ErrInvalidPolicy, len(doc.Objects), len(doc.Tests), MaxItems)
		}
		return Compile(doc)
	}
	if named := decodeItems(data); named != nil {
		return nil, named
	}
	return nil, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
}

// decodeItems decodes a policy that does not decode, item by item, and
// returns an error naming the object or test at fault, or nil when it
// cannot tell.
func decodeItems(data []byte) error {
	var raw struct {
		Variables []Variable        `json:"variables"`
		Objects   []json.RawMessage `json:"objects"`
		Tests     []json.RawMessage `json:"tests"`
	}
	if err := strictjson.Decode(data, &raw); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	for i, r := range raw.Objects {
		var o Object
		if err := strictjson.Decode(r, &o); err != nil {
			return fmt.Errorf("%w: object %s: %w", ErrInvalidPolicy, itemName(r, "object", i), err)
		}
	}
	for i, r := range raw.Tests {
		var t Test
		if err := strictjson.Decode(r, &t); err != nil {
			return fmt.Errorf("%w: test %s: %w", ErrInvalidPolicy, itemName(r, "test", i), err)
		}
	}
	return nil
}

// itemName names an object or test that does not decode: its name when
// that much can be read, else its index.
func itemName(r json.RawMessage, key string, i int) string {
	var probe map[string]json.RawMessage
	if json.Unmarshal(r, &probe) == nil {
		var name string
		if json.Unmarshal(probe[key], &name) == nil && name != "" {
			return fmt.Sprintf("%q", name)
		}
	}
	return fmt.Sprintf("#%d", i+1)
}

var variableKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// chainRoot is the variable an import chain sets.
const chainRoot = "chain_root"

// Compile validates a document and compiles it. Errors wrap
// ErrInvalidPolicy and name the object or test at fault: an object with no
// type or several, a test naming a missing object or test, a cycle of if
// dependencies or import chains, a regular expression that does not
// compile, an unknown operation or version type.
func Compile(doc Document) (*Policy, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidPolicy, fmt.Sprintf(format, args...))
	}
	if len(doc.Objects) > MaxItems || len(doc.Tests) > MaxItems || len(doc.Variables) > MaxItems {
		return nil, bad("more than %d objects, tests or variables", MaxItems)
	}
	if len(doc.Tests) == 0 {
		return nil, bad("no tests")
	}
	p := &Policy{doc: doc, vars: map[string]string{}, objects: map[string]*object{}}
	for _, v := range doc.Variables {
		if !variableKeyRE.MatchString(v.Key) {
			return nil, bad("variable %q: the key must be letters, digits and underscores", v.Key)
		}
		if v.Key == chainRoot {
			return nil, bad("variable %q is set by import chains", v.Key)
		}
		if _, dup := p.vars[v.Key]; dup {
			return nil, bad("variable %q is defined twice", v.Key)
		}
		p.vars[v.Key] = v.Value
	}
	for i, o := range doc.Objects {
		if o.Object == "" {
			return nil, bad("object #%d has no name", i+1)
		}
		if _, dup := p.objects[o.Object]; dup {
			return nil, bad("object %q is defined twice", o.Object)
		}
		c, err := compileObject(o)
		if err != nil {
			return nil, bad("object %q: %v", o.Object, err)
		}
		p.objects[o.Object] = c
	}
	if err := p.linkChains(doc.Objects); err != nil {
		return nil, bad("%v", err)
	}
	byID := map[string]*test{}
	for i, t := range doc.Tests {
		if t.Test == "" {
			return nil, bad("test #%d has no id", i+1)
		}
		if _, dup := byID[t.Test]; dup {
			return nil, bad("test %q is defined twice", t.Test)
		}
		c, err := p.compileTest(t)
		if err != nil {
			return nil, bad("test %q: %v", t.Test, err)
		}
		c.index = i
		byID[t.Test] = c
		p.tests = append(p.tests, c)
	}
	for _, c := range p.tests {
		for _, dep := range c.t.If {
			d, ok := byID[dep]
			if !ok {
				return nil, bad("test %q: if names test %q, which does not exist", c.t.Test, dep)
			}
			c.deps = append(c.deps, d)
		}
	}
	order, err := sortTests(p.tests)
	if err != nil {
		return nil, bad("%v", err)
	}
	p.order = order
	return p, nil
}

func compileObject(o Object) (*object, error) {
	c := &object{name: o.Object}
	n := 0
	if o.Package != nil {
		n++
		c.kind = ObjectPackage
	}
	if o.FileContent != nil {
		n++
		c.kind = ObjectFileContent
	}
	if o.FileName != nil {
		n++
		c.kind = ObjectFileName
	}
	if o.Raw != nil {
		n++
		c.kind = ObjectRaw
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("no object type (want one of %s, %s, %s, %s)", ObjectPackage, ObjectFileContent, ObjectFileName, ObjectRaw)
	case n > 1:
		return nil, fmt.Errorf("%d object types, want exactly one", n)
	}
	var err error
	switch c.kind {
	case ObjectPackage:
		pk := o.Package
		c.pkg = pk
		switch {
		case pk.Name == "" && pk.CollectMatch == "":
			return nil, errors.New("package has neither a name nor a collectmatch")
		case pk.Name != "" && pk.CollectMatch != "":
			return nil, errors.New("package has both a name and a collectmatch")
		case pk.CollectMatch != "":
			if c.match, err = regexp.Compile(pk.CollectMatch); err != nil {
				return nil, fmt.Errorf("collectmatch %q does not compile: %w", pk.CollectMatch, err)
			}
		default:
			c.pkgName = pk.Name
			if name, arch, ok := strings.Cut(pk.Name, ":"); ok {
				c.pkgName, c.arch = name, arch
			}
		}
		if pk.Type != "" && comparator(pk.Type) == nil {
			return nil, fmt.Errorf("package type %q is unknown (want %s, %s or %s)", pk.Type, TypeDpkg, TypeRPM, TypeAPK)
		}
	case ObjectFileContent:
		fc := o.FileContent
		if c.file, c.path, c.maxDepth, err = compileFiles(fc.Path, fc.File, fc.MaxDepth); err != nil {
			return nil, err
		}
		if fc.Expression == "" {
			return nil, errors.New("filecontent has no expression")
		}
		if c.expr, err = regexp.Compile(fc.Expression); err != nil {
			return nil, fmt.Errorf("expression %q does not compile: %w", fc.Expression, err)
		}
		c.concat = fc.Concat
	case ObjectFileName:
		fn := o.FileName
		if c.file, c.path, c.maxDepth, err = compileFiles(fn.Path, fn.File, fn.MaxDepth); err != nil {
			return nil, err
		}
	case ObjectRaw:
		if len(o.Raw.Identifiers) == 0 {
			return nil, errors.New("raw has no identifiers")
		}
		c.raw = o.Raw.Identifiers
	}
	return c, nil
}

func compileFiles(path, file string, maxDepth *int) (*regexp.Regexp, string, int, error) {
	if path == "" {
		return nil, "", 0, errors.New("path is empty")
	}
	if strings.IndexByte(path, 0) >= 0 {
		return nil, "", 0, fmt.Errorf("path %q contains a NUL byte", path)
	}
	if file == "" {
		return nil, "", 0, errors.New("file is empty")
	}
	re, err := regexp.Compile(file)
	if err != nil {
		return nil, "", 0, fmt.Errorf("file %q does not compile: %w", file, err)
	}
	depth := DefaultMaxDepth
	if maxDepth != nil {
		if *maxDepth < 0 {
			return nil, "", 0, fmt.Errorf("maxdepth %d is negative", *maxDepth)
		}
		depth = *maxDepth
	}
	return re, path, depth, nil
}

// linkChains resolves import chains and refuses cycles and chains deeper
// than MaxChainDepth.
func (p *Policy) linkChains(objs []Object) error {
	for _, o := range objs {
		if o.FileContent == nil {
			continue
		}
		c := p.objects[o.Object]
		for _, name := range o.FileContent.ImportChain {
			d, ok := p.objects[name]
			if !ok {
				return fmt.Errorf("object %q: import-chain names object %q, which does not exist", o.Object, name)
			}
			if d.kind != ObjectFileContent && d.kind != ObjectFileName {
				return fmt.Errorf("object %q: import-chain names %s object %q, want filecontent or filename", o.Object, d.kind, name)
			}
			c.chain = append(c.chain, d)
		}
	}
	// Depth-first search with colours finds cycles.
	const (
		white = iota
		grey
		black
	)
	colour := map[*object]int{}
	var visit func(o *object, depth int) error
	visit = func(o *object, depth int) error {
		if depth > MaxChainDepth {
			return fmt.Errorf("object %q: import chains nest deeper than %d", o.name, MaxChainDepth)
		}
		colour[o] = grey
		for _, d := range o.chain {
			switch colour[d] {
			case grey:
				return fmt.Errorf("object %q: import-chain cycle through object %q", o.name, d.name)
			case white:
				if err := visit(d, depth+1); err != nil {
					return err
				}
			}
		}
		colour[o] = black
		return nil
	}
	for _, o := range objs {
		if c := p.objects[o.Object]; colour[c] == white {
			if err := visit(c, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func (p *Policy) compileTest(t Test) (*test, error) {
	c := &test{t: t, expect: true}
	if t.ExpectedResult != nil {
		c.expect = *t.ExpectedResult
	}
	if t.Object == "" {
		return nil, errors.New("no object")
	}
	obj, ok := p.objects[t.Object]
	if !ok {
		return nil, fmt.Errorf("object %q does not exist", t.Object)
	}
	c.obj = obj
	n := 0
	if t.EVR != nil {
		n++
		c.kind = "evr"
		switch t.EVR.Operation {
		case OpLess, OpLessEqual, OpEqual, OpGreaterEqual, OpGreater:
		default:
			return nil, fmt.Errorf("evr operation %q is unknown (want <, <=, =, >= or >)", t.EVR.Operation)
		}
		if strings.TrimSpace(t.EVR.Value) == "" {
			return nil, errors.New("evr value is empty")
		}
		if t.EVR.Type != "" {
			if c.cmp = comparator(t.EVR.Type); c.cmp == nil {
				return nil, fmt.Errorf("evr type %q is unknown (want %s, %s or %s)", t.EVR.Type, TypeDpkg, TypeRPM, TypeAPK)
			}
		}
		c.op, c.value = t.EVR.Operation, t.EVR.Value
	}
	if t.Regexp != nil {
		n++
		c.kind = "regexp"
		re, err := regexp.Compile(t.Regexp.Value)
		if err != nil {
			return nil, fmt.Errorf("regexp %q does not compile: %w", t.Regexp.Value, err)
		}
		c.re = re
	}
	if t.ExactMatch != nil {
		n++
		c.kind = "exactmatch"
		c.value = t.ExactMatch.Value
	}
	if t.Noop != nil {
		n++
		c.kind = "noop"
	}
	switch {
	case n == 0:
		// As in Scribe, a test without an evaluation only collects.
		c.kind = "noop"
	case n > 1:
		return nil, fmt.Errorf("%d test types, want exactly one", n)
	}
	for _, d := range t.If {
		if d == t.Test {
			return nil, fmt.Errorf("if names the test itself")
		}
	}
	return c, nil
}

// sortTests orders tests so that each comes after the tests its if names,
// keeping document order otherwise, and refuses cycles, naming a test on
// the cycle.
func sortTests(tests []*test) ([]*test, error) {
	const (
		white = iota
		grey
		black
	)
	colour := make([]int, len(tests))
	order := make([]*test, 0, len(tests))
	// An explicit stack keeps a long chain of dependencies from growing the
	// goroutine stack without bound.
	type frame struct {
		t    *test
		next int
	}
	for _, root := range tests {
		if colour[root.index] != white {
			continue
		}
		stack := []frame{{t: root}}
		colour[root.index] = grey
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			if top.next < len(top.t.deps) {
				d := top.t.deps[top.next]
				top.next++
				switch colour[d.index] {
				case grey:
					return nil, fmt.Errorf("test %q: if dependencies form a cycle through test %q", top.t.t.Test, d.t.Test)
				case white:
					colour[d.index] = grey
					stack = append(stack, frame{t: d})
				}
				continue
			}
			colour[top.t.index] = black
			order = append(order, top.t)
			stack = stack[:len(stack)-1]
		}
	}
	return order, nil
}

// Document returns the policy's document, as parsed.
func (p *Policy) Document() Document { return p.doc }

// Len returns the number of tests.
func (p *Policy) Len() int { return len(p.tests) }
