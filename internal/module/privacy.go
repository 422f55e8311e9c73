package module

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/migplatform/mig/internal/action"
)

// The privacy rule: results carry metadata about the endpoint, not its raw
// data. Text a module read from a file or from memory leaves the endpoint
// only as a short captured value (a version string, a setting's value) of at
// most MaxContentValue bytes; a longer one is withheld whole, not cut,
// because a prefix of a secret (a password hash past its salt) is as
// useful to an attacker as the whole. Every other string of a result (paths,
// names, the filters as given, errors) is bounded by MaxResultString. Only an
// operation whose signers also satisfy the ACL entry RawEntry(module), which
// must ask for more weight than the module's own entry, gets its result
// unlimited (see package acl). The agent applies LimitContent to every
// result before it leaves the endpoint, whatever the module did.
const (
	// MaxContentValue bounds each string of endpoint content in a result.
	// 64 bytes holds any package version (RPM epoch:version-release.arch
	// and Debian versions are well under 40 bytes) and a setting's value,
	// and no whole crypt(3) SHA-512 hash (106 bytes) or private key.
	MaxContentValue = 64
	// MaxResultString bounds every other string of a result: PATH_MAX on
	// Linux, so that a path is never cut. It also bounds what a module that
	// puts content in an undeclared field can leak per value.
	MaxResultString = 4096
)

// ContentDeclarer is implemented by modules whose results carry text read
// from the endpoint (file lines, memory). ContentFields returns the JSON
// object keys, anywhere in the result's elements, whose string values (or
// arrays of strings) are such text; they are bounded by MaxContentValue.
type ContentDeclarer interface {
	ContentFields() []string
}

// ContentFields returns the content fields the module name declares, or
// nil for an unknown module or one that declares none.
func ContentFields(name string) []string {
	m, ok := Lookup(name)
	if !ok {
		return nil
	}
	if d, ok := m.(ContentDeclarer); ok {
		return d.ContentFields()
	}
	return nil
}

// Withheld is what replaces a string over its privacy bound.
func Withheld(n int) string { return fmt.Sprintf("[withheld: %d bytes]", n) }

// LimitContent applies the privacy rule to one result of module name:
// values of its content fields over MaxContentValue bytes and any other
// string (or object key) of the elements, statistics or errors over
// MaxResultString bytes are replaced by Withheld, and a note in Errors says
// how many and what would allow them. With raw set (the signers satisfy
// the raw ACL entry) the result is left as it is. Elements or statistics
// that are not valid JSON are dropped, with a note. It returns the number
// of values withheld.
func LimitContent(r *action.Result, name string, raw bool) int {
	if raw {
		return 0
	}
	l := limiter{content: map[string]bool{}}
	for _, k := range ContentFields(name) {
		l.content[k] = true
	}
	r.Elements = l.limitJSON(r.Elements, "elements")
	r.Statistics = l.limitJSON(r.Statistics, "statistics")
	for i, e := range r.Errors {
		if len(e) > MaxResultString {
			r.Errors[i] = Withheld(len(e))
			l.other++
		}
	}
	r.Errors = append(r.Errors, l.notes...)
	if n := l.nContent + l.other; n > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf(
			"privacy: %d values withheld (%d of endpoint content over %d bytes, %d other strings over %d bytes); "+
				"whole values need signers satisfying the ACL entry %q", n, l.nContent, MaxContentValue, l.other, MaxResultString, RawEntry(name)))
	}
	return l.nContent + l.other
}

// RawEntry is the name of the ACL entry whose weight an operation of module
// name must reach for its result to leave the endpoint unlimited.
func RawEntry(name string) string { return "raw_" + name }

type limiter struct {
	content  map[string]bool
	nContent int
	other    int
	notes    []string
}

// limitJSON returns data with over-long strings withheld; data unchanged
// when nothing is.
func (l *limiter) limitJSON(data json.RawMessage, what string) json.RawMessage {
	if len(data) == 0 {
		return data
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() {
		l.notes = append(l.notes, fmt.Sprintf("privacy: the result's %s are not one JSON value and were dropped", what))
		return nil
	}
	before := l.nContent + l.other
	v = l.walk(v, false)
	if l.nContent+l.other == before {
		return data
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		l.notes = append(l.notes, fmt.Sprintf("privacy: the result's %s could not be encoded and were dropped", what))
		return nil
	}
	return bytes.TrimRight(buf.Bytes(), "\n")
}

// walk limits the strings in v; content says v is under a content key.
func (l *limiter) walk(v any, content bool) any {
	switch x := v.(type) {
	case string:
		switch {
		case content && len(x) > MaxContentValue:
			l.nContent++
			return Withheld(len(x))
		case len(x) > MaxResultString:
			l.other++
			return Withheld(len(x))
		}
		return x
	case []any:
		for i := range x {
			x[i] = l.walk(x[i], content)
		}
		return x
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			val := l.walk(x[k], l.content[k])
			if len(k) > MaxResultString {
				delete(x, k)
				l.other++
				k = fmt.Sprintf("%s#%d", Withheld(len(k)), i)
			}
			x[k] = val
		}
		return x
	}
	return v
}
