package target

import (
	"strconv"
	"strings"
)

// columns are the columns of the agents table that a target can name
// directly.
var columns = []string{
	"id", "name", "queueloc", "mode", "version", "pid", "status",
	"heartbeattime", "starttime",
}

// envKeys are the keys a target can read with environment->>'key': the JSON
// names of action.Environment's scalar attributes.
var envKeys = []string{
	"init", "ident", "os", "arch", "isproxied", "proxy", "publicip",
}

// JSON columns: the two fields that take a key with ->>.
const (
	ColumnEnvironment = "environment"
	ColumnTags        = "tags"
)

// Op is a comparison operator. "<>" is parsed as OpNe.
type Op string

// Comparison operators.
const (
	OpEq Op = "="
	OpNe Op = "!="
	OpLt Op = "<"
	OpLe Op = "<="
	OpGt Op = ">"
	OpGe Op = ">="
)

// valid reports whether o is one of the Op constants.
func (o Op) valid() bool {
	switch o {
	case OpEq, OpNe, OpLt, OpLe, OpGt, OpGe:
		return true
	}
	return false
}

// Field names an agent attribute: a column (Key empty), or a key of the
// environment or tags JSON object (Column is ColumnEnvironment or ColumnTags).
type Field struct {
	Column string
	Key    string
}

// String returns the field in target syntax, such as name or
// environment->>'os'.
func (f Field) String() string {
	if f.Column == ColumnEnvironment || f.Column == ColumnTags {
		return f.Column + "->>" + quote(f.Key)
	}
	return f.Column
}

// Value is a literal in a target: a string, or an integer (IsInt) for pid.
// For heartbeattime and starttime the string is a timestamp as written.
type Value struct {
	Str   string
	Int   int64
	IsInt bool
}

// String returns the value in target syntax: a single-quoted string with
// quotes doubled, or a decimal integer.
func (v Value) String() string {
	if v.IsInt {
		return strconv.FormatInt(v.Int, 10)
	}
	return quote(v.Str)
}

// True matches every agent.
type True struct{}

// And matches when every term matches.
type And struct{ Terms []Expr }

// Or matches when any term matches.
type Or struct{ Terms []Expr }

// Not negates X. As in SQL, NOT of an unknown result (a comparison with a
// missing tag) is still unknown, and unknown never matches.
type Not struct{ X Expr }

// Compare is field op value.
type Compare struct {
	Field Field
	Op    Op
	Value Value
}

// In is field [NOT] IN (values...).
type In struct {
	Field  Field
	Not    bool
	Values []Value
}

// Like is field [NOT] LIKE pattern, where % matches any sequence of
// characters, _ matches one character, and a backslash makes the next
// character literal (as in PostgreSQL). Matching is case-sensitive.
type Like struct {
	Field   Field
	Not     bool
	Pattern string
}

// IsNull is field IS [NOT] NULL. Only a missing tag is NULL.
type IsNull struct {
	Field Field
	Not   bool
}

func (*True) isExpr()    {}
func (*And) isExpr()     {}
func (*Or) isExpr()      {}
func (*Not) isExpr()     {}
func (*Compare) isExpr() {}
func (*In) isExpr()      {}
func (*Like) isExpr()    {}
func (*IsNull) isExpr()  {}

// String returns "TRUE".
func (*True) String() string { return "TRUE" }

// String returns the terms joined by AND, with OR and AND terms in
// parentheses.
func (e *And) String() string {
	var b strings.Builder
	for i, t := range e.Terms {
		if i > 0 {
			b.WriteString(" AND ")
		}
		switch t.(type) {
		case *And, *Or:
			b.WriteString("(" + exprString(t) + ")")
		default:
			b.WriteString(exprString(t))
		}
	}
	return b.String()
}

// String returns the terms joined by OR, with OR terms in parentheses.
func (e *Or) String() string {
	var b strings.Builder
	for i, t := range e.Terms {
		if i > 0 {
			b.WriteString(" OR ")
		}
		switch t.(type) {
		case *Or:
			b.WriteString("(" + exprString(t) + ")")
		default:
			b.WriteString(exprString(t))
		}
	}
	return b.String()
}

// String returns NOT followed by the operand, in parentheses if it is an AND
// or an OR.
func (e *Not) String() string {
	switch e.X.(type) {
	case *And, *Or:
		return "NOT (" + exprString(e.X) + ")"
	}
	return "NOT " + exprString(e.X)
}

// String returns field op value, such as status='online'.
func (e *Compare) String() string {
	return e.Field.String() + string(e.Op) + e.Value.String()
}

// String returns field [NOT] IN ('a','b').
func (e *In) String() string {
	var b strings.Builder
	b.WriteString(e.Field.String())
	if e.Not {
		b.WriteString(" NOT")
	}
	b.WriteString(" IN (")
	for i, v := range e.Values {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v.String())
	}
	b.WriteByte(')')
	return b.String()
}

// String returns field [NOT] LIKE 'pattern'.
func (e *Like) String() string {
	s := e.Field.String()
	if e.Not {
		s += " NOT"
	}
	return s + " LIKE " + quote(e.Pattern)
}

// String returns field IS [NOT] NULL.
func (e *IsNull) String() string {
	if e.Not {
		return e.Field.String() + " IS NOT NULL"
	}
	return e.Field.String() + " IS NULL"
}

// exprString is e.String(), tolerating a nil e inside a hand-built tree.
func exprString(e Expr) string {
	if e == nil {
		return "<nil>"
	}
	return e.String()
}

// quote returns s as a target string literal.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
