package target

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// ErrInvalid is wrapped by the errors Compile returns for an expression that
// Parse could not have produced: a nil node, an unknown field or operator, a
// value of the wrong type, an empty AND, OR or IN list, or a bad pattern.
var ErrInvalid = errors.New("invalid target expression")

// Eval reports whether agent a matches e, evaluating e against the agent's
// own attributes the way Compile's SQL does against the stored agent:
//
//   - strings compare byte-wise and case-sensitively; pid compares as an
//     integer and heartbeattime and starttime chronologically;
//   - LIKE knows only % and _ (a backslash makes the next character
//     literal) and is case-sensitive, as in PostgreSQL;
//   - environment->>'key' always exists (isproxied reads 'true' or 'false');
//   - a missing tag is NULL: comparisons, IN and LIKE with it are unknown,
//     NOT of unknown is unknown, and an unknown target does not match, as in
//     SQL's three-valued logic;
//   - status is a.Status as set by whoever holds the record.
//
// Eval returns false for a nil agent and for an invalid expression.
func Eval(e Expr, a *action.Agent) bool {
	if a == nil || check(e) != nil {
		return false
	}
	return eval(e, a) == triTrue
}

// tri is a three-valued truth value.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func (t tri) not() tri {
	switch t {
	case triTrue:
		return triFalse
	case triFalse:
		return triTrue
	}
	return triUnknown
}

// eval evaluates a checked expression.
func eval(e Expr, a *action.Agent) tri {
	switch e := e.(type) {
	case *True:
		return triTrue
	case *And:
		r := triTrue
		for _, t := range e.Terms {
			switch eval(t, a) {
			case triFalse:
				return triFalse
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case *Or:
		r := triFalse
		for _, t := range e.Terms {
			switch eval(t, a) {
			case triTrue:
				return triTrue
			case triUnknown:
				r = triUnknown
			}
		}
		return r
	case *Not:
		return eval(e.X, a).not()
	case *Compare:
		v, ok := attrOf(e.Field, a)
		if !ok {
			return triUnknown
		}
		c := v.compare(e.Value)
		switch e.Op {
		case OpEq:
			return triOf(c == 0)
		case OpNe:
			return triOf(c != 0)
		case OpLt:
			return triOf(c < 0)
		case OpLe:
			return triOf(c <= 0)
		case OpGt:
			return triOf(c > 0)
		case OpGe:
			return triOf(c >= 0)
		}
	case *In:
		v, ok := attrOf(e.Field, a)
		if !ok {
			return triUnknown
		}
		found := slices.ContainsFunc(e.Values, func(x Value) bool { return v.compare(x) == 0 })
		return triOf(found != e.Not)
	case *Like:
		v, ok := attrOf(e.Field, a)
		if !ok {
			return triUnknown
		}
		pat, _ := compileLike(e.Pattern) // checked
		return triOf(likeMatch(pat, v.s) != e.Not)
	case *IsNull:
		_, ok := attrOf(e.Field, a)
		return triOf(ok == e.Not)
	}
	return triUnknown
}

// attr is the value of one field of an agent.
type attr struct {
	kind fieldKind
	s    string
	n    int64
	t    time.Time
}

// compare compares the attribute with a checked value of the field's type.
func (v attr) compare(x Value) int {
	switch v.kind {
	case kindInt:
		return cmp.Compare(v.n, x.Int)
	case kindTime:
		t, _ := parseTime(x.Str) // checked
		return v.t.Compare(t)
	}
	return strings.Compare(v.s, x.Str)
}

// attrOf returns the value of field f of agent a, and false if it is NULL.
func attrOf(f Field, a *action.Agent) (attr, bool) {
	text := func(s string) (attr, bool) { return attr{kind: kindText, s: s}, true }
	switch f.Column {
	case "id":
		return text(a.ID)
	case "name":
		return text(a.Name)
	case "queueloc":
		return text(a.QueueLoc)
	case "mode":
		return text(a.Mode)
	case "version":
		return text(a.Version)
	case "status":
		return text(a.Status)
	case "pid":
		return attr{kind: kindInt, n: int64(a.PID)}, true
	case "heartbeattime":
		return attr{kind: kindTime, t: a.HeartbeatTime}, true
	case "starttime":
		return attr{kind: kindTime, t: a.StartTime}, true
	case ColumnEnvironment:
		s, ok := a.Environment.EnvValue(f.Key)
		if !ok {
			return attr{}, false
		}
		return text(s)
	case ColumnTags:
		s, ok := a.Tags[f.Key]
		if !ok {
			return attr{}, false
		}
		return text(s)
	}
	return attr{}, false
}

// check reports whether e is an expression Parse could have produced, up to
// the size limits.
func check(e Expr) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch e := e.(type) {
	case nil:
		return bad("nil expression")
	case *True:
		if e == nil {
			return bad("nil TRUE node")
		}
		return nil
	case *And:
		if e == nil || len(e.Terms) == 0 {
			return bad("AND without terms")
		}
		for _, t := range e.Terms {
			if err := check(t); err != nil {
				return err
			}
		}
		return nil
	case *Or:
		if e == nil || len(e.Terms) == 0 {
			return bad("OR without terms")
		}
		for _, t := range e.Terms {
			if err := check(t); err != nil {
				return err
			}
		}
		return nil
	case *Not:
		if e == nil {
			return bad("nil NOT node")
		}
		return check(e.X)
	case *Compare:
		if e == nil {
			return bad("nil comparison node")
		}
		if !e.Op.valid() {
			return bad("unknown operator %q", string(e.Op))
		}
		if err := checkField(e.Field); err != nil {
			return err
		}
		return checkValue(e.Field, e.Value)
	case *In:
		if e == nil || len(e.Values) == 0 {
			return bad("IN without values")
		}
		if err := checkField(e.Field); err != nil {
			return err
		}
		for _, v := range e.Values {
			if err := checkValue(e.Field, v); err != nil {
				return err
			}
		}
		return nil
	case *Like:
		if e == nil {
			return bad("nil LIKE node")
		}
		if err := checkField(e.Field); err != nil {
			return err
		}
		if kindOf(e.Field) != kindText {
			return bad("LIKE on %s, which is not a text field", e.Field)
		}
		if _, err := compileLike(e.Pattern); err != nil {
			return bad("%v", err)
		}
		return nil
	case *IsNull:
		if e == nil {
			return bad("nil IS NULL node")
		}
		return checkField(e.Field)
	}
	return bad("unknown node type %T", e)
}

func checkField(f Field) error {
	switch f.Column {
	case ColumnEnvironment:
		if !slices.Contains(envKeys, f.Key) {
			return fmt.Errorf("%w: unknown environment key %q", ErrInvalid, f.Key)
		}
		return nil
	case ColumnTags:
		if len(f.Key) > MaxStringLen || strings.IndexByte(f.Key, 0) >= 0 {
			return fmt.Errorf("%w: tag key is longer than %d bytes or holds NUL", ErrInvalid, MaxStringLen)
		}
		return nil
	}
	if f.Key != "" || !slices.Contains(columns, f.Column) {
		return fmt.Errorf("%w: unknown field %q", ErrInvalid, f.String())
	}
	return nil
}

func checkValue(f Field, v Value) error {
	switch kindOf(f) {
	case kindInt:
		if !v.IsInt {
			return fmt.Errorf("%w: %s takes an integer, not %s", ErrInvalid, f, v)
		}
		if v.Int < 0 {
			return fmt.Errorf("%w: %s compared with negative integer %d", ErrInvalid, f, v.Int)
		}
		return nil
	case kindTime:
		if v.IsInt {
			return fmt.Errorf("%w: %s takes a timestamp, not %s", ErrInvalid, f, v)
		}
		if _, err := parseTime(v.Str); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalid, f, err)
		}
	}
	if v.IsInt {
		return fmt.Errorf("%w: %s takes a string, not %s", ErrInvalid, f, v)
	}
	if len(v.Str) > MaxStringLen || strings.IndexByte(v.Str, 0) >= 0 {
		return fmt.Errorf("%w: string value is longer than %d bytes or holds NUL", ErrInvalid, MaxStringLen)
	}
	return nil
}

// likeElem is one element of a LIKE pattern.
type likeElem struct {
	kind byte // 'c': the literal character r; '_': any one character; '%': any run
	r    rune
}

// errLikeEscape reports a pattern that ends with its escape character.
var errLikeEscape = errors.New("LIKE pattern must not end with a lone backslash")

// compileLike splits a LIKE pattern into elements.
func compileLike(p string) ([]likeElem, error) {
	if len(p) > MaxStringLen || strings.IndexByte(p, 0) >= 0 {
		return nil, fmt.Errorf("LIKE pattern is longer than %d bytes or holds NUL", MaxStringLen)
	}
	var out []likeElem
	esc := false
	for _, r := range p {
		switch {
		case esc:
			out = append(out, likeElem{kind: 'c', r: r})
			esc = false
		case r == '\\':
			esc = true
		case r == '%':
			if len(out) > 0 && out[len(out)-1].kind == '%' {
				continue // %% is the same as %
			}
			out = append(out, likeElem{kind: '%'})
		case r == '_':
			out = append(out, likeElem{kind: '_'})
		default:
			out = append(out, likeElem{kind: 'c', r: r})
		}
	}
	if esc {
		return nil, errLikeEscape
	}
	return out, nil
}

// likeMatch reports whether s matches the whole pattern. It backtracks only
// to the last %, so it runs in time proportional to len(pat)*len(s).
func likeMatch(pat []likeElem, str string) bool {
	s := []rune(str)
	i, j := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case j < len(pat) && (pat[j].kind == '_' || pat[j].kind == 'c' && pat[j].r == s[i]):
			i++
			j++
		case j < len(pat) && pat[j].kind == '%':
			star, mark = j, i
			j++
		case star >= 0:
			mark++
			i, j = mark, star+1
		default:
			return false
		}
	}
	for j < len(pat) && pat[j].kind == '%' {
		j++
	}
	return j == len(pat)
}
