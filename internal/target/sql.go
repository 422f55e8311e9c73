package target

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dialect is the SQL dialect Compile writes.
type Dialect int

// SQL dialects.
const (
	SQLite Dialect = iota
	Postgres
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case SQLite:
		return "sqlite"
	case Postgres:
		return "postgres"
	}
	return "dialect(" + strconv.Itoa(int(d)) + ")"
}

// Compile translates e into a parenthesised SQL boolean condition over the
// agents table, for use in a WHERE clause, and the arguments it binds. Every
// value and every JSON key is a bind parameter: SQLite placeholders are ?,
// PostgreSQL placeholders are $firstArg, $firstArg+1, ... (firstArg is
// ignored for SQLite). The condition selects exactly the agents Eval
// matches, given an agents table with these columns:
//
//	id, name, queueloc, mode, version, status   TEXT, not NULL
//	pid                                         INTEGER, not NULL
//	heartbeattime, starttime                    SQLite: TEXT, RFC 3339 in UTC ending in Z, with
//	                                            any number of fraction digits (time.RFC3339Nano,
//	                                            or nine fixed digits); the zero time is stored
//	                                            like any other; Postgres: timestamptz
//	environment                                 SQLite: TEXT, the JSON of action.Environment;
//	                                            Postgres: jsonb
//	tags                                        the JSON of action.Agent.Tags (null or an object)
//
// In SQLite, LIKE is compiled to GLOB, which is case-sensitive, and times
// are compared through a fixed-width key so that the text compares
// chronologically to the nanosecond. In PostgreSQL, ordering comparisons of
// text use COLLATE "C" so that they are byte-wise like Eval's; timestamptz
// keeps microseconds, so time comparisons there are exact only to the
// microsecond.
//
// Compile returns an error wrapping ErrInvalid for an expression Parse could
// not have produced, and for an unknown dialect or a firstArg below 1 with
// Postgres.
func Compile(e Expr, d Dialect, firstArg int) (where string, args []any, err error) {
	switch d {
	case SQLite:
	case Postgres:
		if firstArg < 1 {
			return "", nil, fmt.Errorf("%w: first argument number %d is below 1", ErrInvalid, firstArg)
		}
	default:
		return "", nil, fmt.Errorf("%w: unknown SQL dialect %d", ErrInvalid, int(d))
	}
	if err := check(e); err != nil {
		return "", nil, err
	}
	c := &compiler{d: d, n: firstArg}
	c.expr(e)
	return c.b.String(), c.args, nil
}

type compiler struct {
	d    Dialect
	n    int // next Postgres placeholder number
	b    strings.Builder
	args []any
}

// arg binds v and returns its placeholder.
func (c *compiler) arg(v any) string {
	c.args = append(c.args, v)
	if c.d == SQLite {
		return "?"
	}
	p := "$" + strconv.Itoa(c.n)
	c.n++
	return p
}

// expr writes a checked expression.
func (c *compiler) expr(e Expr) {
	switch e := e.(type) {
	case *True:
		c.b.WriteString("(1=1)")
	case *And:
		c.join(e.Terms, " AND ")
	case *Or:
		c.join(e.Terms, " OR ")
	case *Not:
		c.b.WriteString("(NOT ")
		c.expr(e.X)
		c.b.WriteByte(')')
	case *Compare:
		c.b.WriteByte('(')
		lhs := c.field(e.Field)
		if c.d == Postgres && kindOf(e.Field) == kindText && e.Op != OpEq && e.Op != OpNe {
			lhs += ` COLLATE "C"`
		}
		c.b.WriteString(lhs + " " + string(e.Op) + " " + c.value(e.Field, e.Value) + ")")
	case *In:
		c.b.WriteByte('(')
		c.b.WriteString(c.field(e.Field))
		if e.Not {
			c.b.WriteString(" NOT")
		}
		c.b.WriteString(" IN (")
		for i, v := range e.Values {
			if i > 0 {
				c.b.WriteByte(',')
			}
			c.b.WriteString(c.value(e.Field, v))
		}
		c.b.WriteString("))")
	case *Like:
		c.b.WriteByte('(')
		c.b.WriteString(c.field(e.Field))
		if e.Not {
			c.b.WriteString(" NOT")
		}
		if c.d == SQLite {
			pat, _ := compileLike(e.Pattern) // checked
			c.b.WriteString(" GLOB " + c.arg(likeToGlob(pat)) + ")")
		} else {
			c.b.WriteString(" LIKE " + c.arg(e.Pattern) + ")")
		}
	case *IsNull:
		c.b.WriteByte('(')
		if kindOf(e.Field) == kindTime {
			c.b.WriteString(e.Field.Column) // the raw column, not its sort key
		} else {
			c.b.WriteString(c.field(e.Field))
		}
		if e.Not {
			c.b.WriteString(" IS NOT NULL)")
		} else {
			c.b.WriteString(" IS NULL)")
		}
	}
}

func (c *compiler) join(terms []Expr, sep string) {
	c.b.WriteByte('(')
	for i, t := range terms {
		if i > 0 {
			c.b.WriteString(sep)
		}
		c.expr(t)
	}
	c.b.WriteByte(')')
}

// field returns the SQL expression for a checked field, binding JSON keys.
// In SQLite, time columns are returned as their sort key (see timeKey).
func (c *compiler) field(f Field) string {
	switch f.Column {
	case ColumnEnvironment:
		// Every environment key exists in action.Environment, so a missing
		// JSON member reads as the zero value, as EnvValue does.
		if c.d == SQLite {
			if f.Key == "isproxied" {
				return "(CASE json_type(environment, " + c.arg(jsonPath(f.Key)) + ") WHEN 'true' THEN 'true' ELSE 'false' END)"
			}
			return "COALESCE(json_extract(environment, " + c.arg(jsonPath(f.Key)) + "), '')"
		}
		zero := "''"
		if f.Key == "isproxied" {
			zero = "'false'"
		}
		return "COALESCE((environment->>" + c.arg(f.Key) + "::text), " + zero + ")"
	case ColumnTags:
		if c.d == SQLite {
			return "json_extract(tags, " + c.arg(jsonPath(f.Key)) + ")"
		}
		return "(tags->>" + c.arg(f.Key) + "::text)"
	case "heartbeattime", "starttime":
		if c.d == SQLite {
			col := f.Column
			return "(substr(" + col + ",1,19) || substr(replace(substr(" + col + ",21),'Z','') || '000000000',1,9))"
		}
	}
	return f.Column
}

// value binds a checked value of field f and returns its placeholder.
func (c *compiler) value(f Field, v Value) string {
	switch kindOf(f) {
	case kindInt:
		return c.arg(v.Int)
	case kindTime:
		t, _ := parseTime(v.Str) // checked
		if c.d == SQLite {
			return c.arg(timeKey(t))
		}
		return c.arg(t)
	}
	return c.arg(v.Str)
}

// timeKey returns the SQLite sort key of a UTC time: the form the SQL in
// compiler.field derives from a stored RFC 3339 time with nanoseconds, in
// which the fraction is always nine digits.
func timeKey(t time.Time) string {
	t = t.UTC()
	return t.Format("2006-01-02T15:04:05") + fmt.Sprintf("%09d", t.Nanosecond())
}

// jsonPath returns the SQLite JSON path of an object member: $."key", with
// the key quoted as a JSON string.
func jsonPath(key string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(key) // a string always encodes
	return "$." + strings.TrimSuffix(b.String(), "\n")
}

// likeToGlob translates a LIKE pattern to an SQLite GLOB pattern, putting
// GLOB's metacharacters in the literal parts into brackets.
func likeToGlob(pat []likeElem) string {
	var b strings.Builder
	for _, e := range pat {
		switch e.kind {
		case '%':
			b.WriteByte('*')
		case '_':
			b.WriteByte('?')
		default:
			switch e.r {
			case '*', '?', '[', ']':
				b.WriteByte('[')
				b.WriteRune(e.r)
				b.WriteByte(']')
			default:
				b.WriteRune(e.r)
			}
		}
	}
	return b.String()
}
