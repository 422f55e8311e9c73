package file

import (
	"encoding/hex"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/module"
)

// Parameters are the file module's JSON parameters: searches by label.
type Parameters struct {
	Searches map[string]Search `json:"searches"`
}

// Search is one labelled search. See the package documentation for how its
// filters combine.
type Search struct {
	// Description is free text for the investigator; the module ignores it.
	Description string `json:"description,omitempty"`
	// Paths are the absolute paths where the search starts.
	Paths []string `json:"paths"`
	// Names are regexes on a file's base name; a leading '!' negates one.
	Names []string `json:"names,omitempty"`
	// Sizes are "[<>]N[kmgt]": a size equal to, smaller than or larger
	// than N bytes (k, m, g, t multiply by powers of 1024).
	Sizes []string `json:"sizes,omitempty"`
	// Modes are regexes on the mode string, as ls shows it ("-rwxr-xr-x").
	Modes []string `json:"modes,omitempty"`
	// Mtimes are "<N[dhm]" (modified within the last N days, hours or
	// minutes) or ">N[dhm]" (modified longer ago than that).
	Mtimes []string `json:"mtimes,omitempty"`
	// Contents are regexes on a file's lines; a leading '!' negates one.
	Contents []string `json:"contents,omitempty"`
	// MD5, SHA1, SHA2 and SHA3 are hashes in hexadecimal. SHA2 values are
	// SHA-256, SHA-384 or SHA-512, and SHA3 values SHA3-224, SHA3-256,
	// SHA3-384 or SHA3-512, depending on their length.
	MD5  []string `json:"md5,omitempty"`
	SHA1 []string `json:"sha1,omitempty"`
	SHA2 []string `json:"sha2,omitempty"`
	SHA3 []string `json:"sha3,omitempty"`
	// SHA256, SHA384 and SHA512 are aliases of SHA2 that accept only
	// values of their own length.
	SHA256 []string `json:"sha256,omitempty"`
	SHA384 []string `json:"sha384,omitempty"`
	SHA512 []string `json:"sha512,omitempty"`
	// Options tune the search.
	Options Options `json:"options,omitzero"`
}

// Options tune a search. Unset options take their defaults.
type Options struct {
	// MaxDepth bounds how deep under a path files are checked
	// (DefaultMaxDepth).
	MaxDepth *int `json:"maxdepth,omitempty"`
	// MatchAll requires every filter to match (the default).
	MatchAll *bool `json:"matchall,omitempty"`
	// MatchAny requires any one filter to match; it cannot be combined with
	// MatchAll true.
	MatchAny *bool `json:"matchany,omitempty"`
	// Macroal ("match all content regexes on all lines") requires every
	// line of a file to match each content regex (for a negated one: no
	// line to match it).
	Macroal bool `json:"macroal,omitempty"`
	// Mismatch inverts the filters of the named kinds: name, size, mode,
	// mtime, content, md5, sha1, sha2 (or its aliases) and sha3.
	Mismatch []string `json:"mismatch,omitempty"`
	// MatchLimit bounds the files returned (DefaultMatchLimit).
	MatchLimit *int `json:"matchlimit,omitempty"`
	// MaxErrors bounds the errors returned (DefaultMaxErrors).
	MaxErrors *int `json:"maxerrors,omitempty"`
	// ReturnSHA256 adds each matching file's SHA-256 to its fileinfo.
	ReturnSHA256 bool `json:"returnsha256,omitempty"`
	// Decompress reads gzip files (those starting with the gzip magic
	// number) through gunzip for content filters, hashes and returnsha256.
	Decompress bool `json:"decompress,omitempty"`
}

// hashKind is a hash algorithm the module computes.
type hashKind int

const (
	hashMD5 hashKind = iota
	hashSHA1
	hashSHA256
	hashSHA384
	hashSHA512
	hashSHA3224
	hashSHA3256
	hashSHA3384
	hashSHA3512
	numHashes
)

// hashSet is a set of hash kinds.
type hashSet [numHashes]bool

func (h *hashSet) add(o hashSet) {
	for k, v := range o {
		h[k] = h[k] || v
	}
}

func (h *hashSet) empty() bool {
	for _, v := range h {
		if v {
			return false
		}
	}
	return true
}

// filterKind is the kind of a filter, as named by the mismatch option.
type filterKind int

const (
	kindName filterKind = iota
	kindSize
	kindMode
	kindMtime
	kindContent
	kindMD5
	kindSHA1
	kindSHA2
	kindSHA3
	numKinds
)

// kindNames are the names of the filter kinds in the mismatch option.
var kindNames = [numKinds]string{"name", "size", "mode", "mtime", "content", "md5", "sha1", "sha2", "sha3"}

// regexFilter is a name or mode filter.
type regexFilter struct {
	src    string // as given, with its '!'
	re     *regexp.Regexp
	pre    *prefilter // nil when the regex has no required literal
	negate bool
	invert bool // mismatch
}

// sizeFilter is a size filter.
type sizeFilter struct {
	src    string
	op     byte // '=', '<' or '>'
	n      int64
	invert bool
}

// mtimeFilter is an mtime filter; the cutoff is taken when the search runs.
type mtimeFilter struct {
	src    string
	older  bool // '>': modified before now-age; '<': at or after it
	age    time.Duration
	invert bool
}

// contentFilter is a content filter over the runner's unique regexes.
type contentFilter struct {
	src    string
	idx    int // index into runner.regexes
	negate bool
	invert bool
}

// hashFilter is one hash field (md5, sha1, sha2, sha3): it matches when
// the file's hash of a value's kind is one of values.
type hashFilter struct {
	kind   filterKind
	kinds  hashSet
	values map[string]hashKind // raw digest bytes
	invert bool
}

// search is a validated, compiled Search.
type search struct {
	label        string
	index        int
	names        []regexFilter
	sizes        []sizeFilter
	modes        []regexFilter
	mtimes       []mtimeFilter
	contents     []contentFilter
	hashes       []hashFilter
	matchAny     bool
	macroal      bool
	decompress   bool
	maxDepth     int
	matchLimit   int
	maxErrors    int
	returnSHA256 bool
	// needs are the hashes the search's filters compare.
	needs hashSet
}

// metaCount is the number of filters decided from a file's name and
// metadata.
func (s *search) metaCount() int {
	return len(s.names) + len(s.sizes) + len(s.modes) + len(s.mtimes)
}

// readCount is the number of filters decided by reading a file.
func (s *search) readCount() int {
	return len(s.contents) + len(s.hashes)
}

// needsStat reports whether the search's filters look at a file's
// metadata.
func (s *search) needsStat() bool {
	return len(s.sizes)+len(s.modes)+len(s.mtimes) > 0
}

// ParseParameters decodes and validates the module's JSON parameters,
// refusing unknown fields, and compiles them into a runner. Every error
// wraps ErrInvalidParameters and names the search and the bad value.
func ParseParameters(raw []byte) (module.Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	r, err := compile(p)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func compile(p Parameters) (*runner, error) {
	if len(p.Searches) == 0 {
		return nil, fmt.Errorf("%w: no searches", ErrInvalidParameters)
	}
	labels := make([]string, 0, len(p.Searches))
	for l := range p.Searches {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	r := &runner{regexIndex: map[string]int{}}
	for i, label := range labels {
		s, roots, err := r.compileSearch(label, p.Searches[label])
		if err != nil {
			return nil, fmt.Errorf("%w: search '%s': %w", ErrInvalidParameters, label, err)
		}
		s.index = i
		r.searches = append(r.searches, s)
		for _, root := range roots {
			r.scopes = append(r.scopes, scope{s: s, root: root})
		}
	}
	return r, nil
}

func (r *runner) compileSearch(label string, in Search) (*search, []string, error) {
	if label == "" {
		return nil, nil, fmt.Errorf("the label is empty")
	}
	s := &search{
		label:      label,
		maxDepth:   DefaultMaxDepth,
		matchLimit: DefaultMatchLimit,
		maxErrors:  DefaultMaxErrors,
	}
	if len(in.Paths) == 0 {
		return nil, nil, fmt.Errorf("no paths")
	}
	var roots []string
	seen := map[string]bool{}
	for _, p := range in.Paths {
		if strings.IndexByte(p, 0) >= 0 {
			return nil, nil, fmt.Errorf("path %q contains a NUL byte", p)
		}
		if !filepath.IsAbs(p) {
			return nil, nil, fmt.Errorf("path %q is not absolute", p)
		}
		c := filepath.Clean(p)
		if !seen[c] {
			seen[c] = true
			roots = append(roots, c)
		}
	}
	o := in.Options
	var mismatch [numKinds]bool
	for _, m := range o.Mismatch {
		k, ok := mismatchKind(m)
		if !ok {
			return nil, nil, fmt.Errorf("mismatch %q is not a filter (want one of %s)", m, strings.Join(kindNames[:], ", "))
		}
		mismatch[k] = true
	}
	for _, n := range in.Names {
		f, err := compileRegex(n)
		if err != nil {
			return nil, nil, fmt.Errorf("name %q: %w", n, err)
		}
		f.invert = mismatch[kindName]
		s.names = append(s.names, f)
	}
	for _, v := range in.Sizes {
		f, err := parseSize(v)
		if err != nil {
			return nil, nil, err
		}
		f.invert = mismatch[kindSize]
		s.sizes = append(s.sizes, f)
	}
	for _, m := range in.Modes {
		if m == "" {
			return nil, nil, fmt.Errorf("mode %q is empty", m)
		}
		re, err := regexp.Compile(m)
		if err != nil {
			return nil, nil, fmt.Errorf("mode %q does not compile: %w", m, err)
		}
		s.modes = append(s.modes, regexFilter{src: m, re: re, invert: mismatch[kindMode]})
	}
	for _, v := range in.Mtimes {
		f, err := parseMtime(v)
		if err != nil {
			return nil, nil, err
		}
		f.invert = mismatch[kindMtime]
		s.mtimes = append(s.mtimes, f)
	}
	for _, c := range in.Contents {
		f, err := compileRegex(c)
		if err != nil {
			return nil, nil, fmt.Errorf("content %q: %w", c, err)
		}
		key := f.re.String()
		idx, ok := r.regexIndex[key]
		if !ok {
			idx = len(r.regexes)
			r.regexIndex[key] = idx
			r.regexes = append(r.regexes, contentRegex{re: f.re, pre: f.pre})
		}
		s.contents = append(s.contents, contentFilter{src: c, idx: idx, negate: f.negate, invert: mismatch[kindContent]})
	}
	families := map[filterKind]*hashFilter{}
	for _, h := range []struct {
		field  string
		family filterKind
		values []string
	}{
		{"md5", kindMD5, in.MD5},
		{"sha1", kindSHA1, in.SHA1},
		{"sha2", kindSHA2, in.SHA2},
		{"sha256", kindSHA2, in.SHA256},
		{"sha384", kindSHA2, in.SHA384},
		{"sha512", kindSHA2, in.SHA512},
		{"sha3", kindSHA3, in.SHA3},
	} {
		for _, v := range h.values {
			kind, digest, err := parseHash(h.field, h.family, v)
			if err != nil {
				return nil, nil, err
			}
			f := families[h.family]
			if f == nil {
				f = &hashFilter{kind: h.family, values: map[string]hashKind{}, invert: mismatch[h.family]}
				families[h.family] = f
			}
			f.values[string(digest)] = kind
			f.kinds[kind] = true
		}
	}
	for _, family := range []filterKind{kindMD5, kindSHA1, kindSHA2, kindSHA3} {
		if f := families[family]; f != nil {
			s.needs.add(f.kinds)
			s.hashes = append(s.hashes, *f)
		}
	}
	if o.MaxDepth != nil {
		if *o.MaxDepth < 0 {
			return nil, nil, fmt.Errorf("maxdepth %d is negative", *o.MaxDepth)
		}
		s.maxDepth = *o.MaxDepth
	}
	if o.MatchLimit != nil {
		if *o.MatchLimit < 1 {
			return nil, nil, fmt.Errorf("matchlimit %d is not positive", *o.MatchLimit)
		}
		s.matchLimit = *o.MatchLimit
	}
	if o.MaxErrors != nil {
		if *o.MaxErrors < 0 {
			return nil, nil, fmt.Errorf("maxerrors %d is negative", *o.MaxErrors)
		}
		s.maxErrors = *o.MaxErrors
	}
	all, anyOf := o.MatchAll, o.MatchAny
	switch {
	case all != nil && anyOf != nil && *all && *anyOf:
		return nil, nil, fmt.Errorf("matchall and matchany are both true")
	case all != nil && anyOf != nil && !*all && !*anyOf:
		return nil, nil, fmt.Errorf("matchall and matchany are both false")
	case anyOf != nil && *anyOf, all != nil && !*all:
		s.matchAny = true
	}
	s.macroal = o.Macroal
	s.decompress = o.Decompress
	s.returnSHA256 = o.ReturnSHA256
	return s, roots, nil
}

// mismatchKind returns the filter kind a mismatch option names.
func mismatchKind(name string) (filterKind, bool) {
	switch name {
	case "sha256", "sha384", "sha512":
		return kindSHA2, true
	}
	for k, n := range kindNames {
		if n == name {
			return filterKind(k), true
		}
	}
	return 0, false
}

// compileRegex compiles a name or content filter, with its '!' negation
// and its literal prefilter.
func compileRegex(src string) (regexFilter, error) {
	f := regexFilter{src: src}
	if strings.HasPrefix(src, "!") {
		f.negate = true
		src = src[1:]
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return f, fmt.Errorf("does not compile: %w", err)
	}
	f.re = re
	f.pre = newPrefilter(src)
	return f, nil
}

// maxSize is the largest size a size filter accepts.
const maxSize = math.MaxInt64

// parseSize parses a size filter "[<>]N[kmgt]".
func parseSize(v string) (sizeFilter, error) {
	f := sizeFilter{src: v, op: '='}
	s := v
	if s != "" && (s[0] == '<' || s[0] == '>') {
		f.op = s[0]
		s = s[1:]
	}
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		case 't', 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return f, fmt.Errorf("size %q does not parse (want [<>]N[kmgt], as <10m)", v)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxSize/mult {
		return f, fmt.Errorf("size %q is too large", v)
	}
	f.n = n * mult
	return f, nil
}

// parseMtime parses an mtime filter "[<>]N[dhm]".
func parseMtime(v string) (mtimeFilter, error) {
	f := mtimeFilter{src: v}
	bad := fmt.Errorf("mtime %q does not parse (want <N or >N with a unit d, h or m, as <90d)", v)
	if len(v) < 3 || (v[0] != '<' && v[0] != '>') {
		return f, bad
	}
	f.older = v[0] == '>'
	var unit time.Duration
	switch v[len(v)-1] {
	case 'd':
		unit = 24 * time.Hour
	case 'h':
		unit = time.Hour
	case 'm':
		unit = time.Minute
	default:
		return f, bad
	}
	digits := v[1 : len(v)-1]
	if strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return f, bad
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(math.MaxInt64/unit) {
		return f, fmt.Errorf("mtime %q is too large", v)
	}
	f.age = time.Duration(n) * unit
	return f, nil
}

// parseHash checks one hash value of field (of family md5, sha1, sha2 or
// sha3) and returns its kind and its bytes.
func parseHash(field string, family filterKind, v string) (hashKind, []byte, error) {
	var kind hashKind
	var want string
	// The aliases name one length each: a SHA-512 value under "sha256" is
	// a mistake, not a request for SHA-512.
	alias := 0
	switch field {
	case "sha256":
		alias = 64
	case "sha384":
		alias = 96
	case "sha512":
		alias = 128
	}
	switch {
	case alias != 0 && len(v) != alias:
		return 0, nil, fmt.Errorf("%s %q is %d characters long, not a valid %s hash (want %d hexadecimal digits)",
			field, v, len(v), strings.ToUpper(field), alias)
	case family == kindMD5 && len(v) == 32:
		kind = hashMD5
	case family == kindSHA1 && len(v) == 40:
		kind = hashSHA1
	case family == kindSHA2 && len(v) == 64:
		kind = hashSHA256
	case family == kindSHA2 && len(v) == 96:
		kind = hashSHA384
	case family == kindSHA2 && len(v) == 128:
		kind = hashSHA512
	case family == kindSHA3 && len(v) == 56:
		kind = hashSHA3224
	case family == kindSHA3 && len(v) == 64:
		kind = hashSHA3256
	case family == kindSHA3 && len(v) == 96:
		kind = hashSHA3384
	case family == kindSHA3 && len(v) == 128:
		kind = hashSHA3512
	default:
		switch family {
		case kindMD5:
			want = "32 hexadecimal digits"
		case kindSHA1:
			want = "40 hexadecimal digits"
		case kindSHA3:
			want = "56, 64, 96 or 128 hexadecimal digits"
		default:
			want = "64, 96 or 128 hexadecimal digits"
		}
		return 0, nil, fmt.Errorf("%s %q is %d characters long, not a valid %s hash (want %s)",
			field, v, len(v), strings.ToUpper(field), want)
	}
	b, err := hex.DecodeString(v)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %q is not hexadecimal", field, v)
	}
	return kind, b, nil
}
