package target

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on what Parse accepts. They bound the work every component does on
// a target, which comes from untrusted input.
const (
	MaxLen       = 16 << 10 // bytes in a target, and in its canonical form
	MaxStringLen = 1 << 10  // bytes in one string literal (value, key or pattern)
	MaxDepth     = 64       // nesting of parentheses and NOT
	MaxInValues  = 10000    // values in one IN list
)

// ErrSyntax is wrapped by every error Parse returns.
var ErrSyntax = errors.New("target syntax error")

// SyntaxError describes why Parse refused a target. It wraps ErrSyntax.
type SyntaxError struct {
	Pos   int    // 1-based character position in the target
	Token string // the offending token as written; empty at the end of the target
	Msg   string // what was wrong
}

// Error returns the message with the position and the offending token.
func (e *SyntaxError) Error() string {
	if e.Token == "" {
		return fmt.Sprintf("%v at position %d (end of target): %s", ErrSyntax, e.Pos, e.Msg)
	}
	return fmt.Sprintf("%v at position %d near %q: %s", ErrSyntax, e.Pos, e.Token, e.Msg)
}

// Unwrap returns ErrSyntax.
func (e *SyntaxError) Unwrap() error { return ErrSyntax }

// Parse parses a target. Keywords and column names are case-insensitive. It
// returns an error wrapping ErrSyntax, naming the position and the token,
// for anything outside the language: unknown fields or environment keys,
// values of the wrong type, comments, semicolons, and targets over the
// limits.
func Parse(s string) (Expr, error) {
	p := &parser{src: s}
	if len(s) > MaxLen {
		return nil, p.errAt(MaxLen, s[MaxLen:], fmt.Sprintf("target is %d bytes, more than the limit of %d", len(s), MaxLen))
	}
	if !utf8.ValidString(s) {
		off := 0
		for off < len(s) {
			r, n := utf8.DecodeRuneInString(s[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return nil, p.errAt(off, fmt.Sprintf("\\x%02x", s[off]), "target is not valid UTF-8")
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind == tokEOF {
		return nil, p.errTok("target is empty")
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if p.tok.kind != tokEOF {
		return nil, p.errTok("expected AND, OR or the end of the target")
	}
	if n := len(e.String()); n > MaxLen {
		return nil, p.errAt(0, s, fmt.Sprintf("target is %d bytes in canonical form, more than the limit of %d", n, MaxLen))
	}
	return e, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokInt
	tokOp
	tokArrow
	tokLParen
	tokRParen
	tokComma
)

type token struct {
	kind tokKind
	off  int    // byte offset in the source
	text string // as written
	val  string // tokString: the decoded string; tokIdent: lower-case
}

type parser struct {
	src   string
	off   int // byte offset of the next unread character
	tok   token
	depth int
}

// errAt returns a SyntaxError at byte offset off.
func (p *parser) errAt(off int, tok, msg string) error {
	if off > len(p.src) {
		off = len(p.src)
	}
	for off > 0 && off < len(p.src) && !utf8.RuneStart(p.src[off]) {
		off--
	}
	const maxTok = 40
	if len(tok) > maxTok {
		cut := maxTok
		for cut > 0 && !utf8.RuneStart(tok[cut]) {
			cut--
		}
		tok = tok[:cut] + "..."
	}
	return &SyntaxError{Pos: utf8.RuneCountInString(p.src[:off]) + 1, Token: tok, Msg: msg}
}

// errTok returns a SyntaxError at the current token.
func (p *parser) errTok(msg string) error {
	return p.errAt(p.tok.off, p.tok.text, msg)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next reads the next token into p.tok.
func (p *parser) next() error {
	s := p.src
	for p.off < len(s) && isSpace(s[p.off]) {
		p.off++
	}
	start := p.off
	if start == len(s) {
		p.tok = token{kind: tokEOF, off: start}
		return nil
	}
	c := s[start]
	emit := func(kind tokKind, n int) error {
		p.off = start + n
		p.tok = token{kind: kind, off: start, text: s[start:p.off]}
		return nil
	}
	rest := s[start:]
	switch {
	case strings.HasPrefix(rest, "--") || strings.HasPrefix(rest, "/*"):
		return p.errAt(start, rest[:2], "comments are not allowed in a target")
	case c == ';':
		return p.errAt(start, ";", "semicolons are not allowed in a target")
	case strings.HasPrefix(rest, "->>"):
		return emit(tokArrow, 3)
	case strings.HasPrefix(rest, "->"):
		return emit(tokArrow, 2)
	case strings.HasPrefix(rest, "<=") || strings.HasPrefix(rest, ">=") ||
		strings.HasPrefix(rest, "!=") || strings.HasPrefix(rest, "<>"):
		return emit(tokOp, 2)
	case c == '=' || c == '<' || c == '>':
		return emit(tokOp, 1)
	case c == '(':
		return emit(tokLParen, 1)
	case c == ')':
		return emit(tokRParen, 1)
	case c == ',':
		return emit(tokComma, 1)
	case c == '\'':
		return p.lexString(start)
	case isDigit(c):
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n < len(rest) && (isIdentStart(rest[n]) || rest[n] == '.') {
			return p.errAt(start, p.word(start), "malformed number")
		}
		return emit(tokInt, n)
	case isIdentStart(c):
		n := 1
		for n < len(rest) && (isIdentStart(rest[n]) || isDigit(rest[n])) {
			n++
		}
		if n < len(rest) && rest[n] >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(rest[n:])
			return p.errAt(start+n, rest[n:n+size], "unexpected character in a name")
		}
		p.off = start + n
		p.tok = token{kind: tokIdent, off: start, text: rest[:n], val: strings.ToLower(rest[:n])}
		return nil
	}
	_, size := utf8.DecodeRuneInString(rest)
	return p.errAt(start, rest[:size], "unexpected character")
}

// word returns the run of non-space characters at off, for error messages.
func (p *parser) word(off int) string {
	end := off
	for end < len(p.src) && !isSpace(p.src[end]) {
		end++
	}
	return p.src[off:end]
}

// lexString reads a single-quoted string starting at byte offset start.
func (p *parser) lexString(start int) error {
	s := p.src
	var b strings.Builder
	i := start + 1
	for {
		if b.Len() > MaxStringLen {
			return p.errAt(start, s[start:i], fmt.Sprintf("string is longer than the limit of %d bytes", MaxStringLen))
		}
		if i >= len(s) {
			return p.errAt(start, s[start:], "unterminated string")
		}
		c := s[i]
		if c == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i += 2
				continue
			}
			i++
			break
		}
		if c == 0 {
			return p.errAt(i, "\\x00", "NUL characters are not allowed in strings")
		}
		b.WriteByte(c)
		i++
	}
	p.off = i
	p.tok = token{kind: tokString, off: start, text: s[start:i], val: b.String()}
	return nil
}

// isKeyword reports whether the current token is the keyword kw (lower-case).
func (p *parser) isKeyword(kw string) bool {
	return p.tok.kind == tokIdent && p.tok.val == kw
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return p.errTok(fmt.Sprintf("nesting deeper than the limit of %d", MaxDepth))
	}
	return nil
}

func (p *parser) parseOr() (Expr, error) {
	var terms []Expr
	for {
		t, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		if o, ok := t.(*Or); ok {
			terms = append(terms, o.Terms...)
		} else {
			terms = append(terms, t)
		}
		if !p.isKeyword("or") {
			break
		}
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &Or{Terms: terms}, nil
}

func (p *parser) parseAnd() (Expr, error) {
	var terms []Expr
	for {
		t, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		if a, ok := t.(*And); ok {
			terms = append(terms, a.Terms...)
		} else {
			terms = append(terms, t)
		}
		if !p.isKeyword("and") {
			break
		}
		if err := p.next(); err != nil {
			return nil, err
		}
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return &And{Terms: terms}, nil
}

func (p *parser) parseNot() (Expr, error) {
	if !p.isKeyword("not") {
		return p.parsePrimary()
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	x, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	p.depth--
	return &Not{X: x}, nil
}

func (p *parser) parsePrimary() (Expr, error) {
	switch {
	case p.tok.kind == tokLParen:
		if err := p.enter(); err != nil {
			return nil, err
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.tok.kind != tokRParen {
			return nil, p.errTok("expected ) or AND, OR")
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		p.depth--
		return e, nil
	case p.isKeyword("true"):
		if err := p.next(); err != nil {
			return nil, err
		}
		return &True{}, nil
	case p.tok.kind == tokIdent:
		return p.parseCompare()
	}
	return nil, p.errTok("expected a field name, TRUE, NOT or (")
}

// fieldKind is the type of a field's values.
type fieldKind int

const (
	kindText fieldKind = iota
	kindInt
	kindTime
)

func kindOf(f Field) fieldKind {
	switch f.Column {
	case "pid":
		return kindInt
	case "heartbeattime", "starttime":
		return kindTime
	}
	return kindText
}

func (p *parser) parseField() (Field, error) {
	name := p.tok.val
	if name == ColumnEnvironment || name == ColumnTags {
		if err := p.next(); err != nil {
			return Field{}, err
		}
		if p.tok.kind != tokArrow {
			return Field{}, p.errTok(fmt.Sprintf("%s needs a key, as in %s->>'key'", name, name))
		}
		if err := p.next(); err != nil {
			return Field{}, err
		}
		if p.tok.kind != tokString {
			return Field{}, p.errTok(fmt.Sprintf("the key after %s-> must be a quoted string, as in %s->>'key'", name, name))
		}
		key := p.tok.val
		if name == ColumnEnvironment && !slices.Contains(envKeys, key) {
			return Field{}, p.errTok(fmt.Sprintf("unknown environment key %q (known: %s)", key, strings.Join(envKeys, ", ")))
		}
		if err := p.next(); err != nil {
			return Field{}, err
		}
		return Field{Column: name, Key: key}, nil
	}
	if !slices.Contains(columns, name) {
		return Field{}, p.errTok(fmt.Sprintf("unknown field %q (known: %s, environment->>'key', tags->>'key')",
			p.tok.text, strings.Join(columns, ", ")))
	}
	if err := p.next(); err != nil {
		return Field{}, err
	}
	return Field{Column: name}, nil
}

func (p *parser) parseCompare() (Expr, error) {
	f, err := p.parseField()
	if err != nil {
		return nil, err
	}
	switch {
	case p.tok.kind == tokOp:
		op := Op(p.tok.text)
		if op == "<>" {
			op = OpNe
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		v, err := p.parseValue(f)
		if err != nil {
			return nil, err
		}
		return &Compare{Field: f, Op: op, Value: v}, nil
	case p.isKeyword("is"):
		if err := p.next(); err != nil {
			return nil, err
		}
		not := false
		if p.isKeyword("not") {
			not = true
			if err := p.next(); err != nil {
				return nil, err
			}
		}
		if !p.isKeyword("null") {
			return nil, p.errTok("expected NULL after IS")
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return &IsNull{Field: f, Not: not}, nil
	}
	not := false
	if p.isKeyword("not") {
		not = true
		if err := p.next(); err != nil {
			return nil, err
		}
		if !p.isKeyword("in") && !p.isKeyword("like") {
			return nil, p.errTok("expected IN or LIKE after NOT")
		}
	}
	switch {
	case p.isKeyword("in"):
		return p.parseIn(f, not)
	case p.isKeyword("like"):
		if kindOf(f) != kindText {
			return nil, p.errTok(fmt.Sprintf("LIKE applies to text fields, and %s is not one", f))
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		if p.tok.kind != tokString {
			return nil, p.errTok("expected a quoted pattern after LIKE")
		}
		pat := p.tok.val
		if _, err := compileLike(pat); err != nil {
			return nil, p.errTok(err.Error())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		return &Like{Field: f, Not: not, Pattern: pat}, nil
	}
	return nil, p.errTok(fmt.Sprintf("expected an operator, IN, LIKE or IS after %s", f))
}

func (p *parser) parseIn(f Field, not bool) (Expr, error) {
	if err := p.next(); err != nil {
		return nil, err
	}
	if p.tok.kind != tokLParen {
		return nil, p.errTok("expected ( after IN")
	}
	in := &In{Field: f, Not: not}
	for {
		if err := p.next(); err != nil {
			return nil, err
		}
		if len(in.Values) == MaxInValues {
			return nil, p.errTok(fmt.Sprintf("IN list is longer than the limit of %d values", MaxInValues))
		}
		v, err := p.parseValue(f)
		if err != nil {
			return nil, err
		}
		in.Values = append(in.Values, v)
		if p.tok.kind == tokRParen {
			break
		}
		if p.tok.kind != tokComma {
			return nil, p.errTok("expected , or ) in the IN list")
		}
	}
	if err := p.next(); err != nil {
		return nil, err
	}
	return in, nil
}

// parseValue reads a literal of the type field f takes.
func (p *parser) parseValue(f Field) (Value, error) {
	var v Value
	switch p.tok.kind {
	case tokString:
		switch kindOf(f) {
		case kindInt:
			n, err := parseInt(p.tok.val)
			if err != nil {
				return v, p.errTok(fmt.Sprintf("%s takes an integer: %v", f, err))
			}
			v = Value{Int: n, IsInt: true}
		case kindTime:
			if _, err := parseTime(p.tok.val); err != nil {
				return v, p.errTok(fmt.Sprintf("%s takes a timestamp: %v", f, err))
			}
			v = Value{Str: p.tok.val}
		default:
			v = Value{Str: p.tok.val}
		}
	case tokInt:
		if kindOf(f) != kindInt {
			return v, p.errTok(fmt.Sprintf("%s takes a quoted string, not a number", f))
		}
		n, err := parseInt(p.tok.text)
		if err != nil {
			return v, p.errTok(err.Error())
		}
		v = Value{Int: n, IsInt: true}
	case tokEOF:
		return v, p.errTok("expected a value")
	default:
		return v, p.errTok("expected a value: a quoted string or an integer")
	}
	return v, p.next()
}

// parseInt parses a non-negative decimal integer.
func parseInt(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty integer")
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("%q is not a non-negative decimal integer", s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("integer %s is out of range", s)
	}
	return n, nil
}

// timeLayouts are the timestamp forms a target accepts. Fractional seconds
// are accepted after the seconds in each. Layouts without a zone are UTC.
var timeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

// parseTime parses a timestamp value, returning it in UTC. Years outside
// 0000-9999 in UTC are refused, so that every component formats and compares
// them the same way.
func parseTime(s string) (time.Time, error) {
	for _, layout := range timeLayouts {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		t = t.UTC()
		if y := t.Year(); y < 0 || y > 9999 {
			return time.Time{}, fmt.Errorf("timestamp %q is outside the years 0000-9999 in UTC", s)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is not a timestamp such as '2024-05-01T10:00:00Z' or '2024-05-01'", s)
}
