package file

import (
	"bytes"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// A prefilter finds, fast, the places where a regex may match: every match
// of the regex contains one of its literals. The literals come from the
// regex's syntax tree (see analyze); a candidate is then checked by the
// regex itself on its line, so the prefilter only has to be a necessary
// condition. A literal is searched for by its rarest byte with
// bytes.IndexByte (vectorised), then compared in place.
type prefilter struct {
	lits []lit
}

// lit is one literal of a prefilter.
type lit struct {
	s    string // ASCII letters in lower case when fold
	fold bool   // ASCII case-insensitive
	// anchor is the offset in s of the byte searched for; lo and up are
	// its two cases (equal when it has none or the literal is not fold).
	anchor int
	lo, up byte
}

// maxLits bounds the alternatives of a prefilter and the strings of an
// exact set while analysing.
const maxLits = 16

// newPrefilter returns the prefilter of a regex in Go syntax, or nil when
// no useful literal is required by its matches.
func newPrefilter(src string) *prefilter {
	re, err := syntax.Parse(src, syntax.Perl)
	if err != nil {
		return nil
	}
	info := analyze(re.Simplify())
	set := best(info.exact, info.req)
	if score(set) <= 0 {
		return nil
	}
	p := &prefilter{lits: make([]lit, len(set))}
	for i, l := range set {
		p.lits[i] = withAnchor(l)
	}
	return p
}

// litInfo is what analyze knows of a regex node.
type litInfo struct {
	// exact, when not nil, holds every string the node can match.
	exact []lit
	// req, when not nil, holds literals one of which every match contains.
	req []lit
}

// analyze computes the literals of a simplified regex node.
func analyze(re *syntax.Regexp) litInfo {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return litInfo{exact: []lit{{}}}
	case syntax.OpLiteral:
		return literalInfo(re.Rune, re.Flags&syntax.FoldCase != 0)
	case syntax.OpCharClass:
		return classInfo(re.Rune)
	case syntax.OpCapture:
		return analyze(re.Sub[0])
	case syntax.OpPlus:
		c := analyze(re.Sub[0])
		return litInfo{req: best(c.exact, c.req)}
	case syntax.OpRepeat:
		if re.Min < 1 {
			return litInfo{}
		}
		c := analyze(re.Sub[0])
		return litInfo{req: best(c.exact, c.req)}
	case syntax.OpQuest:
		c := analyze(re.Sub[0])
		if c.exact != nil && len(c.exact) < maxLits {
			return litInfo{exact: dedupe(append(append([]lit(nil), c.exact...), lit{}))}
		}
		return litInfo{}
	case syntax.OpConcat:
		return concatInfo(re.Sub)
	case syntax.OpAlternate:
		return alternateInfo(re.Sub)
	}
	return litInfo{}
}

// literalInfo handles a literal string. For a case-insensitive literal
// only ASCII letters whose case folding stays in ASCII are kept: 'k' and
// 's' also fold to the Kelvin sign and the long s, and other runes have
// multi-byte cases; such runes split the literal. The replacement rune is
// dropped too: the regex engine matches it on any invalid byte.
func literalInfo(runes []rune, fold bool) litInfo {
	var pieces []string
	var cur []byte
	whole := true
	flush := func() {
		if len(cur) > 0 {
			pieces = append(pieces, string(cur))
		}
		cur = cur[:0]
	}
	for _, r := range runes {
		ok := r != utf8.RuneError && utf8.ValidRune(r)
		if fold {
			l := toLowerASCII(r)
			ok = r < utf8.RuneSelf && l != 'k' && l != 's'
			r = l
		}
		if !ok {
			whole = false
			flush()
			continue
		}
		cur = utf8.AppendRune(cur, r)
	}
	flush()
	if whole && len(pieces) == 1 {
		return litInfo{exact: []lit{{s: pieces[0], fold: fold}}}
	}
	longest := ""
	for _, p := range pieces {
		if len(p) > len(longest) {
			longest = p
		}
	}
	if longest == "" {
		return litInfo{}
	}
	return litInfo{req: []lit{{s: longest, fold: fold}}}
}

func toLowerASCII(r rune) rune {
	if 'A' <= r && r <= 'Z' {
		return r + 'a' - 'A'
	}
	return r
}

// classInfo handles a small character class as the set of its runes.
func classInfo(ranges []rune) litInfo {
	n := 0
	for i := 0; i+1 < len(ranges); i += 2 {
		n += int(ranges[i+1]-ranges[i]) + 1
		if n > 4 || ranges[i+1] >= utf8.RuneError {
			return litInfo{}
		}
	}
	var set []lit
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1]; r++ {
			set = append(set, lit{s: string(r)})
		}
	}
	if len(set) == 0 {
		return litInfo{}
	}
	return litInfo{exact: set}
}

func concatInfo(subs []*syntax.Regexp) litInfo {
	cur := []lit{{}}
	allExact := true
	var cands [][]lit
	for _, sub := range subs {
		c := analyze(sub)
		if c.exact != nil && len(cur)*len(c.exact) <= maxLits {
			cur = cross(cur, c.exact)
			continue
		}
		allExact = false
		cands = append(cands, cur)
		if c.exact != nil {
			cur = c.exact
		} else {
			cands = append(cands, c.req)
			cur = []lit{{}}
		}
	}
	if allExact {
		return litInfo{exact: cur}
	}
	cands = append(cands, cur)
	return litInfo{req: best(cands...)}
}

func alternateInfo(subs []*syntax.Regexp) litInfo {
	var exact, req []lit
	allExact, reqOK := true, true
	for _, sub := range subs {
		c := analyze(sub)
		if c.exact == nil {
			allExact = false
		} else {
			exact = append(exact, c.exact...)
		}
		if set := best(c.exact, c.req); score(set) > 0 {
			req = append(req, set...)
		} else {
			reqOK = false
		}
	}
	if allExact {
		if exact = dedupe(exact); len(exact) <= maxLits {
			return litInfo{exact: exact}
		}
	}
	if reqOK {
		if req = dedupe(req); len(req) <= maxLits {
			return litInfo{req: req}
		}
	}
	return litInfo{}
}

// cross returns the concatenations of every string of a with every string
// of b. A concatenation is case-insensitive when either part is: a
// superset of what the parts match, which is all a prefilter needs.
func cross(a, b []lit) []lit {
	out := make([]lit, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			fold := x.fold || y.fold
			xs, ys := x.s, y.s
			if fold {
				xs, ys = lowerASCII(xs), lowerASCII(ys)
			}
			out = append(out, lit{s: xs + ys, fold: fold})
		}
	}
	return dedupe(out)
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func dedupe(set []lit) []lit {
	out := set[:0:0]
	for _, l := range set {
		dup := false
		for _, o := range out {
			if o.s == l.s && o.fold == l.fold {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, l)
		}
	}
	return out
}

// score rates a literal set for searching: the shortest literal counts,
// case-insensitive ones a little less. A set with an empty literal, or no
// literal, is useless (score 0 or less).
func score(set []lit) int {
	if len(set) == 0 {
		return -1
	}
	minLen := -1
	for _, l := range set {
		n := 4 * len(l.s)
		if l.fold {
			n -= 2
		}
		if len(l.s) == 0 {
			return 0
		}
		if minLen < 0 || n < minLen {
			minLen = n
		}
	}
	return minLen - len(set) + 1
}

// best returns the best-scoring set of cands.
func best(cands ...[]lit) []lit {
	var out []lit
	top := 0
	for _, c := range cands {
		if s := score(c); s > top {
			out, top = c, s
		}
	}
	return out
}

// withAnchor picks the byte of l that a search looks for: the rarest one
// by byteRank.
func withAnchor(l lit) lit {
	bestRank := 1 << 30
	for i := 0; i < len(l.s); i++ {
		c := l.s[i]
		lo, up := c, c
		if l.fold && 'a' <= c && c <= 'z' {
			up = c - ('a' - 'A')
		}
		r := byteRank(lo)
		if up != lo {
			r += byteRank(up)
		}
		if r < bestRank {
			bestRank = r
			l.anchor, l.lo, l.up = i, lo, up
		}
	}
	return l
}

// byteRank estimates how common a byte is in text files and binaries
// (higher is more common).
func byteRank(c byte) int {
	const common = "etaoinsrhldcumfpgwybvkxjqz"
	switch {
	case c == ' ' || c == 0:
		return 255
	case c == '\n' || c == 0xff:
		return 200
	case 'a' <= c && c <= 'z':
		return 240 - 3*bytes.IndexByte([]byte(common), c)
	case 'A' <= c && c <= 'Z':
		return 120 - 2*bytes.IndexByte([]byte(common), c+'a'-'A')
	case '0' <= c && c <= '9':
		return 150
	case c == '.' || c == ',' || c == '-' || c == '_' || c == '/' || c == '=' || c == ':' ||
		c == '"' || c == '\'' || c == '\t' || c == '(' || c == ')' || c == ';':
		return 140
	case c >= 0x80:
		return 40
	}
	return 60
}

// index returns the position of the first occurrence at or after from of
// any literal of p in b, or -1. pos is scratch space of len(p.lits),
// reused across calls on the same b with growing from; the caller sets
// its entries to -2 before the first call on a new b.
func (p *prefilter) index(b []byte, from int, pos []int) int {
	if len(p.lits) == 1 {
		return p.lits[0].index(b, from)
	}
	first := -1
	for i := range p.lits {
		if pos[i] == -2 || (pos[i] >= 0 && pos[i] < from) {
			pos[i] = p.lits[i].index(b, from)
		}
		if pos[i] >= 0 && (first < 0 || pos[i] < first) {
			first = pos[i]
		}
	}
	return first
}

// containsString reports whether s, a short string such as a file name,
// holds one of p's literals.
func (p *prefilter) containsString(s string) bool {
	for i := range p.lits {
		l := &p.lits[i]
		if !l.fold {
			if strings.Contains(s, l.s) {
				return true
			}
			continue
		}
		for j := 0; j+len(l.s) <= len(s); j++ {
			if l.equalString(s[j : j+len(l.s)]) {
				return true
			}
		}
	}
	return false
}

// index returns the first position at or after from where l occurs in b,
// or -1.
func (l *lit) index(b []byte, from int) int {
	n := len(l.s)
	for i := from + l.anchor; i < len(b); {
		c := indexEither(b[i:], l.lo, l.up)
		if c < 0 {
			return -1
		}
		i += c
		start := i - l.anchor
		if start+n <= len(b) && l.equal(b[start:start+n]) {
			return start
		}
		i++
	}
	return -1
}

// indexEither returns the first position of x or y in b, or -1.
func indexEither(b []byte, x, y byte) int {
	i := bytes.IndexByte(b, x)
	if x == y {
		return i
	}
	limit := b
	if i >= 0 {
		limit = b[:i]
	}
	if j := bytes.IndexByte(limit, y); j >= 0 {
		return j
	}
	return i
}

// equalString compares s, of the same length as l.s, with l, which is
// case-insensitive.
func (l *lit) equalString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != l.s[i] {
			return false
		}
	}
	return true
}

// equal compares b, of the same length as l.s, with l.
func (l *lit) equal(b []byte) bool {
	if !l.fold {
		return string(b) == l.s
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != l.s[i] {
			return false
		}
	}
	return true
}
