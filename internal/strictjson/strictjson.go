// Package strictjson decodes JSON that faces untrusted input strictly: one
// value only, no unknown object keys, and object keys that match the Go
// struct's JSON field names exactly.
//
// encoding/json matches object keys to struct fields case-insensitively
// (under Unicode simple folding, so "Paths" and "pathſ" both fill field
// "paths") and lets the last of two equal keys win. A document holding both
// "paths" and "Paths" then means what its key order says, and whoever can
// reorder keys without breaking a signature over a canonical, sorted form
// chooses which one a reader sees. Decode refuses such documents: a key that
// matches a field only when case is ignored, and a key repeated in one
// object, are errors naming the key.
//
// It imports only the standard library, so that any package may use it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// ErrTrailingData is wrapped by the error for data after the first value.
var ErrTrailingData = errors.New("data after the JSON value")

// Error is the error of Decode for every document it refuses. Its message
// starts with "json: " as encoding/json's do.
type Error struct {
	// Path locates the refused value, as in "searches.s1.paths[2]"; empty
	// for the top-level value or when unknown.
	Path string
	// Key is the refused object key for key errors, else empty.
	Key string
	// Err is the underlying error: encoding/json's (errors.As finds a
	// *json.SyntaxError or *json.UnmarshalTypeError), ErrTrailingData, or a
	// description of the key error.
	Err error
}

func (e *Error) Error() string {
	msg := e.Err.Error()
	if !strings.HasPrefix(msg, "json: ") {
		msg = "json: " + msg
	}
	if e.Path != "" && e.Path != e.Key {
		return msg + " (in " + e.Path + ")"
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Decode decodes exactly one JSON value from data into v, which must be a
// non-nil pointer. It refuses what json.Unmarshal refuses, unknown object
// keys (as Decoder.DisallowUnknownFields), data after the value, object keys
// that match a struct field only when case is ignored, and a key repeated
// in one object (struct or map). Values decoded by a json.Unmarshaler
// (json.RawMessage among them) are left to it. Every error is an *Error.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &Error{Err: ErrTrailingData}
	}
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return nil // json.Decode already refused it
	}
	w := walker{data: data}
	w.skipSpace()
	return w.value(t.Elem())
}

// DecodeReader reads r to its end and decodes it as Decode does. A read
// error is returned as it is (an *http.MaxBytesError stays one).
func DecodeReader(r io.Reader, v any) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return Decode(data, v)
}

// walker checks the keys of a document that encoding/json already decoded,
// so it may assume the bytes are valid JSON of the right shape.
type walker struct {
	data []byte
	pos  int
	path []segment // where the walk is, rendered only for an error
}

// segment is one step of a path: an object key, or an array index when
// key is empty and index >= 0.
type segment struct {
	key   string
	index int
}

func (w *walker) pathString() string {
	var b strings.Builder
	for i, s := range w.path {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

func (w *walker) keyError(key, format string) error {
	return &Error{Path: w.pathString(), Key: key, Err: fmt.Errorf(format, key)}
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// opaque reports whether values of t decode themselves.
func opaque(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType)
}

func (w *walker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		if opaque(t) {
			w.skipValue()
			return nil
		}
		t = t.Elem()
	}
	if t == nil || opaque(t) {
		w.skipValue()
		return nil
	}
	switch w.data[w.pos] {
	case '{':
		return w.object(t)
	case '[':
		var elem reflect.Type
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		} else if t.Kind() == reflect.Interface {
			elem = t
		}
		w.pos++ // [
		for i := 0; ; i++ {
			w.skipSpace()
			if w.data[w.pos] == ']' {
				w.pos++
				return nil
			}
			if elem == nil {
				w.skipValue()
			} else {
				w.path = append(w.path, segment{index: i})
				if err := w.value(elem); err != nil {
					return err
				}
				w.path = w.path[:len(w.path)-1]
			}
			w.skipSpace()
			if w.data[w.pos] == ',' {
				w.pos++
			}
		}
	default:
		w.skipValue()
		return nil
	}
}

func (w *walker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		fields = fieldsOf(t)
	case reflect.Map:
		elem = t.Elem()
	case reflect.Interface:
		elem = t
	}
	w.pos++           // {
	var seen []string // small objects: a slice beats a map
	var seenMap map[string]struct{}
	for {
		w.skipSpace()
		if w.data[w.pos] == '}' {
			w.pos++
			return nil
		}
		key := w.key()
		w.path = append(w.path, segment{key: key, index: -1})
		if seenMap != nil {
			if _, dup := seenMap[key]; dup {
				return w.keyError(key, "duplicate key %q")
			}
			seenMap[key] = struct{}{}
		} else {
			for _, s := range seen {
				if s == key {
					return w.keyError(key, "duplicate key %q")
				}
			}
			seen = append(seen, key)
			if len(seen) > 16 {
				seenMap = make(map[string]struct{}, 2*len(seen))
				for _, s := range seen {
					seenMap[s] = struct{}{}
				}
			}
		}
		w.skipSpace()
		w.pos++ // :
		w.skipSpace()
		ft := elem
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				return w.keyError(key, "key %q does not match a field name exactly (names are case-sensitive)")
			}
		}
		if ft == nil {
			w.skipValue()
		} else if err := w.value(ft); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
		w.skipSpace()
		if w.data[w.pos] == ',' {
			w.pos++
		}
	}
}

// key reads an object key (a JSON string) and returns it unescaped.
func (w *walker) key() string {
	start := w.pos
	w.skipString()
	raw := w.data[start:w.pos]
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1])
	}
	var s string
	_ = json.Unmarshal(raw, &s) // valid: encoding/json decoded it
	return s
}

func (w *walker) skipSpace() {
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) skipString() {
	w.pos++ // opening quote
	for w.pos < len(w.data) {
		switch w.data[w.pos] {
		case '\\':
			w.pos += 2
		case '"':
			w.pos++
			return
		default:
			w.pos++
		}
	}
}

// skipValue skips one value: a string, a literal or number, or a whole
// array or object.
func (w *walker) skipValue() {
	switch w.data[w.pos] {
	case '"':
		w.skipString()
	case '{', '[':
		depth := 0
		for w.pos < len(w.data) {
			switch w.data[w.pos] {
			case '"':
				w.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					w.pos++
					return
				}
			}
			w.pos++
		}
	default:
		for w.pos < len(w.data) {
			switch w.data[w.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return
			}
			w.pos++
		}
	}
}

var fieldCache sync.Map // reflect.Type -> map[string]reflect.Type

// fieldsOf returns the JSON names of t's fields with their types, as
// encoding/json computes them: tag names or field names, exported fields,
// embedded structs without a tag flattened (the shallowest name wins).
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	depthOf := map[string]int{}
	var walk func(t reflect.Type, depth int, visited map[reflect.Type]bool)
	walk = func(t reflect.Type, depth int, visited map[reflect.Type]bool) {
		if visited[t] {
			return
		}
		visited[t] = true
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := sf.Type
			if sf.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					walk(et, depth+1, visited)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if d, ok := depthOf[name]; ok && d <= depth {
				continue
			}
			fields[name] = ft
			depthOf[name] = depth
		}
	}
	walk(t, 0, map[reflect.Type]bool{})
	f, _ := fieldCache.LoadOrStore(t, fields)
	return f.(map[string]reflect.Type)
}
