// Package target implements MIG's target language: the expression that
// selects which agents an action is for, such as
//
//	environment->>'os' IN ('linux','darwin') AND mode='daemon'
//
// A target is parsed into an Expr (Parse), which the store compiles to a
// parameterised SQL condition (Compile) and which an agent evaluates against
// its own attributes (Eval). Target strings are never handed to a database as
// SQL: only the forms this package accepts exist.
//
// The grammar, with case-insensitive keywords and column names:
//
//	expr    := or
//	or      := and ('OR' and)*
//	and     := not ('AND' not)*
//	not     := 'NOT' not | primary
//	primary := '(' expr ')' | 'TRUE' | compare
//	compare := field op value
//	         | field ['NOT'] 'IN' '(' value (',' value)* ')'
//	         | field ['NOT'] 'LIKE' string
//	         | field 'IS' ['NOT'] 'NULL'
//	op      := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
//	field   := column | ('environment' | 'tags') ('->>' | '->') string
//	column  := id | name | queueloc | mode | version | pid | status
//	         | heartbeattime | starttime
//	value   := string | integer
//
// Strings are single-quoted, a quote inside written twice. pid takes integers (a
// quoted integer is accepted too); heartbeattime and starttime take quoted
// timestamps (RFC 3339, or '2006-01-02 15:04:05' or '2006-01-02' in UTC);
// every other field takes strings. The environment keys are init, ident, os,
// arch, isproxied ('true' or 'false'), proxy and publicip; tag keys are any
// string. Comments, semicolons and anything else are refused, and the sizes
// are bounded by MaxLen, MaxStringLen, MaxDepth and MaxInValues.
package target

// Expr is a parsed target expression. The concrete node types are in ast.go.
type Expr interface {
	// String returns the expression in canonical target syntax; parsing
	// the string again yields an equal expression.
	String() string
	isExpr()
}
