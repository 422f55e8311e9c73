package scribe

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// MaxOVALSize is the largest OVAL document ConvertOVAL reads.
const MaxOVALSize = 1 << 30

// ErrInvalidOVAL is wrapped by ConvertOVAL's errors about its input.
var ErrInvalidOVAL = errors.New("invalid OVAL document")

// OVAL document, as much of OVAL 5's schema as Ubuntu's and Red Hat's
// definitions use. Elements are matched by local name, so the namespaces
// (oval-def, linux-def, red-def, ind-def) do not matter.
type ovalDocument struct {
	XMLName     xml.Name         `xml:"oval_definitions"`
	Definitions []ovalDefinition `xml:"definitions>definition"`
	Tests       ovalElements     `xml:"tests"`
	Objects     ovalElements     `xml:"objects"`
	States      ovalElements     `xml:"states"`
	Variables   []ovalVariable   `xml:"variables>constant_variable"`
}

type ovalDefinition struct {
	ID       string        `xml:"id,attr"`
	Class    string        `xml:"class,attr"`
	Metadata ovalMetadata  `xml:"metadata"`
	Criteria *ovalCriteria `xml:"criteria"`
}

type ovalMetadata struct {
	Title       string          `xml:"title"`
	Description string          `xml:"description"`
	Platforms   []string        `xml:"affected>platform"`
	References  []ovalReference `xml:"reference"`
	Severity    string          `xml:"advisory>severity"`
	CVEs        []string        `xml:"advisory>cve"`
}

type ovalReference struct {
	Source string `xml:"source,attr"`
	RefID  string `xml:"ref_id,attr"`
}

type ovalCriteria struct {
	Operator  string            `xml:"operator,attr"`
	Negate    bool              `xml:"negate,attr"`
	Criteria  []ovalCriteria    `xml:"criteria"`
	Criterion []ovalCriterion   `xml:"criterion"`
	Extend    []ovalExtendedDef `xml:"extend_definition"`
}

type ovalCriterion struct {
	TestRef string `xml:"test_ref,attr"`
	Comment string `xml:"comment,attr"`
	Negate  bool   `xml:"negate,attr"`
}

type ovalExtendedDef struct {
	DefinitionRef string `xml:"definition_ref,attr"`
	Negate        bool   `xml:"negate,attr"`
}

// ovalElements are the children of tests, objects or states.
type ovalElements struct {
	Items []ovalElement `xml:",any"`
}

// ovalElement is a test, object or state of any type: its element name
// tells the type.
type ovalElement struct {
	XMLName xml.Name
	ID      string      `xml:"id,attr"`
	Comment string      `xml:"comment,attr"`
	Fields  []ovalField `xml:",any"`
}

// ovalField is one child of a test, object or state.
type ovalField struct {
	XMLName   xml.Name
	Operation string `xml:"operation,attr"`
	Datatype  string `xml:"datatype,attr"`
	VarRef    string `xml:"var_ref,attr"`
	ObjectRef string `xml:"object_ref,attr"`
	StateRef  string `xml:"state_ref,attr"`
	Value     string `xml:",chardata"`
}

type ovalVariable struct {
	ID     string   `xml:"id,attr"`
	Values []string `xml:"value"`
}

func (e *ovalElement) field(name string) (ovalField, bool) {
	for _, f := range e.Fields {
		if f.XMLName.Local == name {
			return f, true
		}
	}
	return ovalField{}, false
}

// Conversion is the outcome of ConvertOVAL.
type Conversion struct {
	// Document is the Scribe policy.
	Document Document `json:"document"`
	// Definitions counts the vulnerability and patch definitions read.
	Definitions int `json:"definitions"`
	// Skipped says, one line each, what could not be converted (an
	// unsupported test type, a signature check, a pattern Go's regexp does
	// not accept).
	Skipped []string `json:"skipped"`
}

// ConvertOVAL converts OVAL definitions (Ubuntu's and Red Hat's, OVAL 5)
// into a Scribe policy:
//
//   - each dpkginfo_test or rpminfo_test whose state says the package's
//     evr is "less than" a version (the fixed version) becomes an evr "<"
//     test on a package object of that name (and type dpkg or rpm), named
//     after the advisory, with the definition's CVEs as aliases and tags
//     advisory, release (the affected platform), severity and oval (the
//     definition id); a package test without a state (vulnerable, no fix
//     yet) becomes a noop test: any installed version is vulnerable;
//   - the other criteria AND-ed with them (the release check: a
//     textfilecontent54_test on /etc/lsb-release, an rpminfo_test on
//     redhat-release with a version pattern, or, in Red Hat's OVAL v2, an
//     rpmverifyfile_test naming the package that owns /etc/redhat-release
//     and its version by patterns; directly or through extend_definition)
//     become tests that the package tests depend on with if; an OR of such
//     checks on packages with the same state becomes one test on all those
//     packages, and an OR of version patterns ("RHEL 8 or RHEL CoreOS 4")
//     one test whose name and version patterns each accept any of the
//     alternatives (the crossed pairs too);
//   - what cannot be expressed is skipped and listed in Skipped:
//     signature key checks, other test types, negated checks under an OR.
//
// Package names that come from a constant_variable (Ubuntu's binary
// packages of one source) give one test per name.
func ConvertOVAL(r io.Reader) (*Conversion, error) {
	lr := &io.LimitedReader{R: r, N: MaxOVALSize + 1}
	var doc ovalDocument
	if err := xml.NewDecoder(lr).Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOVAL, err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("%w: over the limit of %d bytes", ErrInvalidOVAL, MaxOVALSize)
	}
	c := &converter{
		doc:     &doc,
		defs:    map[string]*ovalDefinition{},
		tests:   map[string]*ovalElement{},
		objects: map[string]*ovalElement{},
		states:  map[string]*ovalElement{},
		vars:    map[string][]string{},
		objIDs:  map[string]string{},
		objName: map[string]bool{},
		testIDs: map[string]bool{},
		conds:   map[string]string{},
		out:     &Conversion{},
	}
	for i := range doc.Definitions {
		c.defs[doc.Definitions[i].ID] = &doc.Definitions[i]
	}
	for i := range doc.Tests.Items {
		c.tests[doc.Tests.Items[i].ID] = &doc.Tests.Items[i]
	}
	for i := range doc.Objects.Items {
		c.objects[doc.Objects.Items[i].ID] = &doc.Objects.Items[i]
	}
	for i := range doc.States.Items {
		c.states[doc.States.Items[i].ID] = &doc.States.Items[i]
	}
	for _, v := range doc.Variables {
		c.vars[v.ID] = v.Values
	}
	for i := range doc.Definitions {
		d := &doc.Definitions[i]
		if d.Class == "inventory" || d.Criteria == nil {
			continue
		}
		c.out.Definitions++
		c.definition(d)
	}
	if len(c.out.Document.Tests) == 0 {
		return nil, fmt.Errorf("%w: no package test could be converted from %d definitions", ErrInvalidOVAL, c.out.Definitions)
	}
	if _, err := Compile(c.out.Document); err != nil {
		return nil, fmt.Errorf("converted policy: %w", err)
	}
	return c.out, nil
}

type converter struct {
	doc     *ovalDocument
	defs    map[string]*ovalDefinition
	tests   map[string]*ovalElement
	objects map[string]*ovalElement
	states  map[string]*ovalElement
	vars    map[string][]string
	objIDs  map[string]string // object key -> object name
	objName map[string]bool
	testIDs map[string]bool
	conds   map[string]string // condition key -> test id
	out     *Conversion

	def *ovalDefinition // the definition being converted
}

// check is one OVAL test, read.
type check struct {
	ref     string
	kind    string   // "dpkg", "rpm" or "file"
	names   []string // package names
	pattern bool     // names are a regular expression
	// package state
	op, evr string // evr comparison, when the state has one
	version string // version pattern, when the state has one
	noState bool
	// file
	path, file, expr, value string
	valueIsRegexp           bool
	negate                  bool
	// release says that the check can only be a condition: Red Hat's
	// rpmverifyfile_test on /etc/redhat-release, which tells the release
	// by the package that owns the file.
	release bool
}

// finding reports whether a check is a vulnerable-version check rather
// than a condition such as the release.
func (k *check) finding() bool {
	return (k.kind == TypeDpkg || k.kind == TypeRPM) && !k.negate && !k.release &&
		(k.noState || k.op == OpLess || k.op == OpLessEqual)
}

func (c *converter) skip(format string, args ...any) {
	c.out.Skipped = append(c.out.Skipped, fmt.Sprintf("%s: ", c.def.ID)+fmt.Sprintf(format, args...))
}

func (c *converter) definition(d *ovalDefinition) {
	c.def = d
	c.criteria(d.Criteria, nil, 0)
}

// criteria converts one criteria node; deps are the condition tests the
// findings under it depend on.
func (c *converter) criteria(n *ovalCriteria, deps []string, depth int) {
	if depth > 32 {
		c.skip("criteria nest deeper than 32")
		return
	}
	or := strings.EqualFold(n.Operator, "OR")
	if n.Negate {
		c.skip("negated criteria")
		return
	}
	if !or && n.Operator != "" && !strings.EqualFold(n.Operator, "AND") {
		c.skip("criteria operator %q", n.Operator)
		return
	}
	var findings []*check
	var conds [][]*check // AND: each entry one condition; an OR group is one entry
	for _, cr := range n.Criterion {
		k, ok := c.readCheck(cr.TestRef, cr.Comment)
		if !ok {
			continue
		}
		k.negate = cr.Negate
		if k.finding() {
			findings = append(findings, k)
		} else {
			conds = append(conds, []*check{k})
		}
	}
	for _, e := range n.Extend {
		conds = append(conds, c.extended(e)...)
	}
	if or {
		// Conditions under an OR are alternatives to what else is there:
		// they cannot gate it, and a policy cannot express "or".
		for _, g := range conds {
			for _, k := range g {
				c.skip("check %s is an alternative (OR) to package checks", k.ref)
			}
		}
		for _, k := range findings {
			c.finding(k, deps)
		}
		for i := range n.Criteria {
			c.criteria(&n.Criteria[i], deps, depth+1)
		}
		return
	}
	// AND: every condition here, and every OR of conditions among the
	// sub-criteria, gates the findings.
	deps = deps[:len(deps):len(deps)]
	for _, g := range conds {
		for _, k := range g {
			if id, ok := c.condition(k); ok {
				deps = append(deps, id)
			}
		}
	}
	var rest []*ovalCriteria
	for i := range n.Criteria {
		sub := &n.Criteria[i]
		if group, ok := c.conditionGroup(sub); ok {
			if id, ok := c.orCondition(group); ok {
				deps = append(deps, id)
			}
			continue
		}
		rest = append(rest, sub)
	}
	for _, k := range findings {
		c.finding(k, deps)
	}
	for _, sub := range rest {
		c.criteria(sub, deps, depth+1)
	}
}

// conditionGroup reports whether an OR criteria holds only conditions
// (no findings, no sub-criteria), and returns them.
func (c *converter) conditionGroup(n *ovalCriteria) ([]*check, bool) {
	if !strings.EqualFold(n.Operator, "OR") || n.Negate || len(n.Criteria) > 0 {
		return nil, false
	}
	var group []*check
	for _, cr := range n.Criterion {
		t, ok := c.tests[cr.TestRef]
		if !ok {
			return nil, false
		}
		k, ok := c.peekCheck(t)
		if !ok {
			return nil, false
		}
		k.negate = cr.Negate
		if k.finding() {
			return nil, false
		}
		group = append(group, k)
	}
	for _, e := range n.Extend {
		group = append(group, flatten(c.extended(e))...)
	}
	return group, len(group) > 0
}

func flatten(g [][]*check) []*check {
	var out []*check
	for _, x := range g {
		out = append(out, x...)
	}
	return out
}

// extended reads the conditions of an extend_definition: the criteria of
// the definition it names, when they are plain checks AND-ed together.
func (c *converter) extended(e ovalExtendedDef) [][]*check {
	d, ok := c.defs[e.DefinitionRef]
	if !ok {
		c.skip("extend_definition %s: no such definition", e.DefinitionRef)
		return nil
	}
	if e.Negate || d.Criteria == nil || len(d.Criteria.Criteria) > 0 || len(d.Criteria.Extend) > 0 ||
		d.Criteria.Negate || strings.EqualFold(d.Criteria.Operator, "OR") && len(d.Criteria.Criterion) > 1 {
		c.skip("extend_definition %s: only a plain criterion or an AND of criteria is converted", e.DefinitionRef)
		return nil
	}
	var out [][]*check
	for _, cr := range d.Criteria.Criterion {
		k, ok := c.readCheck(cr.TestRef, cr.Comment)
		if !ok {
			continue
		}
		k.negate = cr.Negate
		out = append(out, []*check{k})
	}
	return out
}

// readCheck reads the OVAL test ref, reporting what cannot be converted.
func (c *converter) readCheck(ref, comment string) (*check, bool) {
	t, ok := c.tests[ref]
	if !ok {
		c.skip("criterion %s (%s): no such test", ref, comment)
		return nil, false
	}
	k, ok := c.peekCheck(t)
	if !ok {
		c.skip("criterion %s (%s): %s is not converted", ref, comment, c.why(t))
		return nil, false
	}
	return k, true
}

// why says why a test cannot be converted.
func (c *converter) why(t *ovalElement) string {
	if st := c.stateOf(t); st != nil {
		if _, ok := st.field("signature_keyid"); ok {
			return "a signature key check"
		}
	}
	return "a " + t.XMLName.Local
}

func (c *converter) stateOf(t *ovalElement) *ovalElement {
	if f, ok := t.field("state"); ok {
		return c.states[f.StateRef]
	}
	return nil
}

// peekCheck reads an OVAL test without reporting.
func (c *converter) peekCheck(t *ovalElement) (*check, bool) {
	k := &check{ref: t.ID}
	switch t.XMLName.Local {
	case "dpkginfo_test":
		k.kind = TypeDpkg
	case "rpminfo_test":
		k.kind = TypeRPM
	case "textfilecontent54_test":
		k.kind = "file"
	case "rpmverifyfile_test":
		return c.verifyFileCheck(k, t)
	default:
		return nil, false
	}
	of, ok := t.field("object")
	if !ok {
		return nil, false
	}
	obj, ok := c.objects[of.ObjectRef]
	if !ok {
		return nil, false
	}
	st := c.stateOf(t)
	if k.kind == "file" {
		return c.fileCheck(k, obj, st)
	}
	name, ok := obj.field("name")
	if !ok {
		return nil, false
	}
	switch {
	case name.VarRef != "":
		k.names = c.vars[name.VarRef]
	case strings.TrimSpace(name.Value) != "":
		k.names = []string{strings.TrimSpace(name.Value)}
	}
	if len(k.names) == 0 {
		return nil, false
	}
	switch name.Operation {
	case "", "equals":
	case "pattern match":
		if _, err := regexp.Compile(k.names[0]); err != nil || len(k.names) > 1 {
			return nil, false
		}
		k.pattern = true
	default:
		return nil, false
	}
	if st == nil {
		k.noState = true
		return k, true
	}
	for _, f := range st.Fields {
		v := strings.TrimSpace(f.Value)
		switch f.XMLName.Local {
		case "evr":
			op, ok := ovalOps[f.Operation]
			if !ok || v == "" {
				return nil, false
			}
			k.op, k.evr = op, v
		case "version":
			if f.Operation != "pattern match" {
				return nil, false
			}
			if _, err := regexp.Compile(v); err != nil {
				return nil, false
			}
			k.version = v
		case "arch":
			// Architecture checks are left out: the package name decides.
		default:
			return nil, false
		}
	}
	if k.op == "" && k.version == "" {
		return nil, false
	}
	return k, true
}

// verifyFileCheck reads Red Hat's release check: an rpmverifyfile_test
// whose state names the package that owns a file (/etc/redhat-release) by
// a pattern, and its version by a pattern. It becomes a condition on the
// installed packages matching the name pattern, whose version matches the
// version pattern (or that are installed, without one).
func (c *converter) verifyFileCheck(k *check, t *ovalElement) (*check, bool) {
	st := c.stateOf(t)
	if st == nil {
		return nil, false
	}
	k.kind, k.release, k.pattern = TypeRPM, true, true
	for _, f := range st.Fields {
		v := strings.TrimSpace(f.Value)
		if f.Operation != "pattern match" || v == "" {
			return nil, false
		}
		if _, err := regexp.Compile(v); err != nil {
			return nil, false
		}
		switch f.XMLName.Local {
		case "name":
			k.names = []string{v}
		case "version":
			k.version = v
		default:
			return nil, false
		}
	}
	if len(k.names) == 0 {
		return nil, false
	}
	k.noState = k.version == ""
	return k, true
}

var ovalOps = map[string]string{
	"less than":             OpLess,
	"less than or equal":    OpLessEqual,
	"equals":                OpEqual,
	"greater than or equal": OpGreaterEqual,
	"greater than":          OpGreater,
	"":                      OpEqual,
}

func (c *converter) fileCheck(k *check, obj, st *ovalElement) (*check, bool) {
	if fp, ok := obj.field("filepath"); ok && (fp.Operation == "" || fp.Operation == "equals") {
		p := strings.TrimSpace(fp.Value)
		if p == "" || !strings.HasPrefix(p, "/") {
			return nil, false
		}
		k.path, k.file = path.Dir(p), "^"+regexp.QuoteMeta(path.Base(p))+"$"
	} else {
		dir, ok1 := obj.field("path")
		name, ok2 := obj.field("filename")
		if !ok1 || !ok2 || (dir.Operation != "" && dir.Operation != "equals") {
			return nil, false
		}
		k.path = strings.TrimSpace(dir.Value)
		switch name.Operation {
		case "", "equals":
			k.file = "^" + regexp.QuoteMeta(strings.TrimSpace(name.Value)) + "$"
		case "pattern match":
			k.file = strings.TrimSpace(name.Value)
		default:
			return nil, false
		}
	}
	pat, ok := obj.field("pattern")
	if !ok || (pat.Operation != "" && pat.Operation != "pattern match") {
		return nil, false
	}
	k.expr = pat.Value
	if _, err := regexp.Compile(k.expr); err != nil {
		return nil, false
	}
	if _, err := regexp.Compile(k.file); err != nil || !strings.HasPrefix(k.path, "/") {
		return nil, false
	}
	if st == nil {
		k.noState = true
		return k, true
	}
	sub, ok := st.field("subexpression")
	if !ok || len(st.Fields) != 1 {
		return nil, false
	}
	switch sub.Operation {
	case "", "equals":
		k.value = sub.Value
	case "pattern match":
		if _, err := regexp.Compile(sub.Value); err != nil {
			return nil, false
		}
		k.value, k.valueIsRegexp = sub.Value, true
	default:
		return nil, false
	}
	return k, true
}

// object returns the name of the policy object a check looks at, adding it
// to the document the first time.
func (c *converter) object(k *check, name string) string {
	var o Object
	var key string
	switch k.kind {
	case "file":
		o.FileContent = &FileContentObject{Path: k.path, File: k.file, Expression: k.expr}
		key = "file\x00" + k.path + "\x00" + k.file + "\x00" + k.expr
		name = path.Join(k.path, strings.Trim(k.file, "^$"))
	default:
		o.Package = &PackageObject{Type: k.kind}
		if k.pattern {
			o.Package.CollectMatch = name
		} else {
			o.Package.Name = name
		}
		key = k.kind + "\x00" + fmt.Sprint(k.pattern) + "\x00" + name
	}
	if id, ok := c.objIDs[key]; ok {
		return id
	}
	id := name
	for i := 2; c.objName[id]; i++ {
		id = fmt.Sprintf("%s (%d)", name, i)
	}
	o.Object = id
	c.objIDs[key] = id
	c.objName[id] = true
	c.out.Document.Objects = append(c.out.Document.Objects, o)
	return id
}

// testID returns a unique test id based on want.
func (c *converter) testID(want string) string {
	id := want
	for i := 2; c.testIDs[id]; i++ {
		id = fmt.Sprintf("%s #%d", want, i)
	}
	c.testIDs[id] = true
	return id
}

// condition adds (once) the test of a condition check and returns its id.
func (c *converter) condition(k *check) (string, bool) {
	if len(k.names) > 1 {
		return c.orCondition([]*check{k})
	}
	key := fmt.Sprintf("%s\x00%v\x00%v", k.ref, k.negate, k.names)
	if id, ok := c.conds[key]; ok {
		return id, true
	}
	name := ""
	if len(k.names) > 0 {
		name = k.names[0]
	}
	t := Test{Object: c.object(k, name)}
	c.setCondition(&t, k)
	t.Test = c.testID(k.ref)
	c.conds[key] = t.Test
	c.out.Document.Tests = append(c.out.Document.Tests, t)
	return t.Test, true
}

func (c *converter) setCondition(t *Test, k *check) {
	switch {
	case k.kind == "file" && k.noState:
		t.Noop = &NoopTest{}
	case k.kind == "file" && k.valueIsRegexp:
		t.Regexp = &RegexpTest{Value: k.value}
	case k.kind == "file":
		t.ExactMatch = &ExactMatchTest{Value: k.value}
	case k.version != "":
		t.Regexp = &RegexpTest{Value: k.version}
	case k.op != "":
		t.EVR = &EVRTest{Operation: k.op, Value: k.evr}
	default:
		t.Noop = &NoopTest{}
	}
	if k.negate {
		f := false
		t.ExpectedResult = &f
	}
	t.Description = "condition of OVAL " + k.ref
}

// orCondition adds one test for alternative conditions, when they are
// package checks with the same state, non-negated: one package object
// matching all their names.
func (c *converter) orCondition(group []*check) (string, bool) {
	if len(group) == 1 && len(group[0].names) <= 1 {
		return c.condition(group[0])
	}
	first := group[0]
	var names, patterns, versions, refs []string
	for _, k := range group {
		// Version patterns may differ (Red Hat's "RHEL 8 or RHEL CoreOS
		// 4"): the alternatives are then merged into one name pattern and
		// one version pattern, which also accepts the crossed pairs.
		sameState := k.op == first.op && k.evr == first.evr && k.noState == first.noState &&
			(k.version == first.version || k.version != "" && first.version != "")
		if k.kind == "file" || k.negate || k.kind != first.kind || !sameState {
			c.skip("alternative conditions %s: only package checks with the same state are converted", k.ref)
			return "", false
		}
		if k.pattern {
			patterns = append(patterns, k.names...)
		} else {
			names = append(names, k.names...)
		}
		if k.version != "" && !slices.Contains(versions, k.version) {
			versions = append(versions, k.version)
		}
		refs = append(refs, k.ref)
	}
	sort.Strings(names)
	sort.Strings(patterns)
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	namePattern := "^(" + strings.Join(quoted, "|") + ")$"
	if len(patterns) > 0 {
		var alts []string
		if len(names) > 0 {
			alts = append(alts, namePattern)
		}
		alts = append(alts, patterns...)
		namePattern = alternatives(alts)
	}
	version := alternatives(versions)
	key := fmt.Sprintf("or\x00%s\x00%s\x00%s\x00%s", namePattern, first.op, first.evr, version)
	if id, ok := c.conds[key]; ok {
		return id, true
	}
	k := &check{kind: first.kind, names: []string{namePattern}, pattern: true,
		op: first.op, evr: first.evr, version: version, noState: first.noState}
	t := Test{Object: c.object(k, k.names[0])}
	c.setCondition(&t, k)
	t.Description = "condition of OVAL " + strings.Join(refs, " or ")
	t.Test = c.testID(refs[0])
	c.conds[key] = t.Test
	c.out.Document.Tests = append(c.out.Document.Tests, t)
	return t.Test, true
}

// alternatives is a regular expression matching any of res: the one
// expression itself, or each in a group joined with "|".
func alternatives(res []string) string {
	if len(res) <= 1 {
		return strings.Join(res, "")
	}
	alts := make([]string, len(res))
	for i, re := range res {
		alts[i] = "(?:" + re + ")"
	}
	return strings.Join(alts, "|")
}

// finding adds the tests of a vulnerable-version check: one per package
// name.
func (c *converter) finding(k *check, deps []string) {
	d := c.def
	advisory := ""
	var cves []string
	seen := map[string]bool{}
	for _, r := range d.Metadata.References {
		src := strings.ToUpper(r.Source)
		switch {
		case src == "CVE":
			if !seen[r.RefID] {
				seen[r.RefID] = true
				cves = append(cves, r.RefID)
			}
		case advisory == "" && r.RefID != "":
			advisory = r.RefID
		}
	}
	for _, cve := range d.Metadata.CVEs {
		cve = strings.TrimSpace(cve)
		if cve != "" && !seen[cve] {
			seen[cve] = true
			cves = append(cves, cve)
		}
	}
	if advisory == "" && len(cves) > 0 {
		advisory = cves[0]
	}
	if advisory == "" {
		advisory = d.ID
	}
	tags := []Tag{{Key: "advisory", Value: advisory}}
	if len(d.Metadata.Platforms) > 0 {
		tags = append(tags, Tag{Key: "release", Value: strings.TrimSpace(d.Metadata.Platforms[0])})
	}
	if s := strings.TrimSpace(d.Metadata.Severity); s != "" {
		tags = append(tags, Tag{Key: "severity", Value: s})
	}
	tags = append(tags, Tag{Key: "oval", Value: d.ID})
	if k.evr != "" {
		tags = append(tags, Tag{Key: "fixed", Value: k.evr})
	}
	for _, name := range k.names {
		t := Test{
			Name:        strings.TrimSpace(d.Metadata.Title),
			Description: shorten(d.Metadata.Description, 300),
			Aliases:     cves,
			Tags:        tags,
			Object:      c.object(k, name),
			If:          deps,
		}
		if k.noState {
			t.Noop = &NoopTest{}
		} else {
			t.EVR = &EVRTest{Operation: k.op, Value: k.evr}
		}
		shown := name
		if k.pattern {
			shown = "packages matching " + name
		}
		t.Test = c.testID(advisory + " " + shown)
		c.out.Document.Tests = append(c.out.Document.Tests, t)
	}
}

// shorten keeps the first line of s, at most n bytes.
func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}
