package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// EncodingPrefix starts every signed encoding. It names the format and its
// version and keeps a signature over an action from being valid over
// anything else (domain separation).
const EncodingPrefix = "mig-action-v1\n"

// MaxJSONDepth bounds the nesting of JSON that Canonical accepts.
const MaxJSONDepth = 64

// Encoding returns the bytes that investigators sign for this action.
//
// The format, version 1, is EncodingPrefix followed by one canonical JSON
// object (see Canonical) holding exactly these members:
//
//	description   object {author, email, revision, url}
//	expireafter   string, RFC 3339 with nanoseconds, UTC
//	id            string, the decimal action ID
//	name          string
//	operations    array of {module: string, parameters: canonical JSON}
//	syntaxversion number
//	target        string
//	threat        object {family, level, ref, type}
//	validfrom     string, RFC 3339 with nanoseconds, UTC
//
// Signatures and the platform fields (status, times, counters) are not
// covered. The encoding is deterministic: two actions that differ in any
// covered field have different encodings, and whitespace or key order in the
// action file does not matter. Parameters with duplicate object keys, or
// with two keys of one object equal when case is ignored ("paths" and
// "Paths" or "pathſ"), are refused rather than encoded: encoding/json reads
// both into one field and the last wins, so whoever could reorder the keys
// under a valid signature would choose what a module sees.
func (a *Action) Encoding() ([]byte, error) {
	if err := a.checkStrings(); err != nil {
		return nil, err
	}
	canon := make([][]byte, len(a.Operations))
	for i, op := range a.Operations {
		p, err := Canonical(op.Parameters)
		if err != nil {
			return nil, fmt.Errorf("%w: operation %d (%s): parameters: %v", ErrInvalid, i, op.Module, err)
		}
		canon[i] = p
	}
	return a.encode(canon)
}

// encode is Encoding with the canonical parameters of every operation
// already computed: canon[i] is Canonical(a.Operations[i].Parameters).
func (a *Action) encode(canon [][]byte) ([]byte, error) {
	if len(canon) != len(a.Operations) {
		return nil, fmt.Errorf("%w: %d operations but %d canonical parameters", ErrInvalid, len(a.Operations), len(canon))
	}
	if err := a.checkStrings(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	size := len(EncodingPrefix) + 512 + len(a.Name) + len(a.Target)
	for _, c := range canon {
		size += len(c) + 64
	}
	b.Grow(size)
	b.WriteString(EncodingPrefix)
	b.WriteString(`{"description":{"author":`)
	writeString(&b, a.Description.Author)
	b.WriteString(`,"email":`)
	writeString(&b, a.Description.Email)
	b.WriteString(`,"revision":`)
	b.WriteString(strconv.Itoa(a.Description.Revision))
	b.WriteString(`,"url":`)
	writeString(&b, a.Description.URL)
	b.WriteString(`},"expireafter":`)
	writeString(&b, a.ExpireAfter.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"id":`)
	writeString(&b, strconv.FormatUint(a.ID, 10))
	b.WriteString(`,"name":`)
	writeString(&b, a.Name)
	b.WriteString(`,"operations":[`)
	for i, op := range a.Operations {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"module":`)
		writeString(&b, op.Module)
		b.WriteString(`,"parameters":`)
		b.Write(canon[i])
		b.WriteByte('}')
	}
	sv := a.SyntaxVersion
	if sv == 0 {
		sv = SyntaxVersion
	}
	b.WriteString(`],"syntaxversion":`)
	b.WriteString(strconv.Itoa(sv))
	b.WriteString(`,"target":`)
	writeString(&b, a.Target)
	b.WriteString(`,"threat":{"family":`)
	writeString(&b, a.Threat.Family)
	b.WriteString(`,"level":`)
	writeString(&b, a.Threat.Level)
	b.WriteString(`,"ref":`)
	writeString(&b, a.Threat.Ref)
	b.WriteString(`,"type":`)
	writeString(&b, a.Threat.Type)
	b.WriteString(`},"validfrom":`)
	writeString(&b, a.ValidFrom.UTC().Format(time.RFC3339Nano))
	b.WriteString("}")
	return b.Bytes(), nil
}

// checkStrings refuses signed strings that are not valid UTF-8.
func (a *Action) checkStrings() error {
	for _, s := range []string{a.Name, a.Target, a.Description.Author, a.Description.Email,
		a.Description.URL, a.Threat.Family, a.Threat.Level, a.Threat.Ref, a.Threat.Type} {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: a signed field is not valid UTF-8: %q", ErrInvalid, s)
		}
	}
	for _, op := range a.Operations {
		if !utf8.ValidString(op.Module) {
			return fmt.Errorf("%w: module name is not valid UTF-8: %q", ErrInvalid, op.Module)
		}
	}
	return nil
}

// Canonical returns the canonical form of a JSON value: no insignificant
// whitespace, object members sorted by key (byte order of their UTF-8), strings
// escaped the same way every time (only '"', '\\' and control characters, as
// \uXXXX or the short escapes), and numbers kept as their literal text. It
// refuses invalid JSON, invalid UTF-8, duplicate object keys (also keys
// equal under Unicode simple case folding, as strings.EqualFold compares
// them), nesting deeper than MaxJSONDepth and trailing data.
func Canonical(raw []byte) ([]byte, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("JSON is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b bytes.Buffer
	if err := canonValue(dec, &b, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("JSON has data after the first value")
	}
	return b.Bytes(), nil
}

func canonValue(dec *json.Decoder, b *bytes.Buffer, depth int) error {
	if depth > MaxJSONDepth {
		return fmt.Errorf("JSON is nested deeper than %d levels", MaxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("bad JSON: %v", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			type member struct {
				key string
				val []byte
			}
			var members []member
			seen := map[string]string{} // folded key -> key
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("bad JSON: %v", err)
				}
				key, ok := kt.(string)
				if !ok {
					return errors.New("bad JSON: object key is not a string")
				}
				f := foldKey(key)
				if prev, dup := seen[f]; dup {
					if prev == key {
						return fmt.Errorf("duplicate object key %q", key)
					}
					return fmt.Errorf("object keys %q and %q are equal when case is ignored: a JSON reader may take either", prev, key)
				}
				seen[f] = key
				var vb bytes.Buffer
				if err := canonValue(dec, &vb, depth+1); err != nil {
					return err
				}
				members = append(members, member{key, vb.Bytes()})
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("bad JSON: %v", err)
			}
			sort.Slice(members, func(i, j int) bool { return members[i].key < members[j].key })
			b.WriteByte('{')
			for i, m := range members {
				if i > 0 {
					b.WriteByte(',')
				}
				writeString(b, m.key)
				b.WriteByte(':')
				b.Write(m.val)
			}
			b.WriteByte('}')
		case '[':
			b.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					b.WriteByte(',')
				}
				if err := canonValue(dec, b, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("bad JSON: %v", err)
			}
			b.WriteByte(']')
		default:
			return fmt.Errorf("bad JSON: unexpected %q", t)
		}
	case string:
		writeString(b, t)
	case json.Number:
		b.WriteString(t.String())
	case bool:
		if t {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case nil:
		b.WriteString("null")
	default:
		return fmt.Errorf("bad JSON: unexpected token %v", tok)
	}
	return nil
}

// foldKey maps s to a string that is the same for two strings exactly when
// strings.EqualFold says they are equal (Unicode simple case folding, which
// is how encoding/json matches object keys to fields): every rune is
// replaced by the largest rune of its folding orbit. That is the rune
// itself for ASCII other than upper case, 'k' (Kelvin sign) and 's' (long
// s), so most keys are returned as they are.
func foldKey(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') || c == 'k' || c == 's' {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		top := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			top = max(top, f)
		}
		b.WriteRune(top)
	}
	return b.String()
}

// writeString writes s as a JSON string in the canonical escaping.
func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hex[r>>4])
			b.WriteByte(hex[r&0xf])
		case r == utf8.RuneError:
			// Invalid UTF-8 is replaced so that the encoding stays valid JSON;
			// Validate refuses such strings before they are signed.
			b.WriteString(`\ufffd`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}
