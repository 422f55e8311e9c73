package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/migplatform/mig/internal/strictjson"
)

// An export file ("mig audit -export FILE") holds one entry per line, as
// the JSON object the API returns, oldest first, from entry 1.

// MaxLine bounds one line of an export file.
const MaxLine = 1 << 20

// WriteEntry writes e as one line of an export file.
func WriteEntry(w io.Writer, e Entry) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return fmt.Errorf("audit entry %d: %w", e.Seq, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ReadExport reads an export file and calls fn with each entry in order,
// stopping at fn's first error. A line that is not one well-formed entry
// (unknown or missing fields, text over the bounds, trailing data) is an
// error naming its line number; it says nothing of whether the chain
// verifies, which is the Verifier's job.
func ReadExport(r io.Reader, fn func(Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		e, err := ParseEntry(b)
		if err != nil {
			return fmt.Errorf("audit export line %d: %w", line, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("audit export line %d: over %d bytes", line+1, MaxLine)
		}
		return fmt.Errorf("audit export line %d: %w", line+1, err)
	}
	return nil
}

// ParseEntry reads one entry from its JSON object, strictly: every field
// present, no unknown one, nothing after the object, a time in RFC 3339,
// hashes of 64 lower-case hex digits and text within the bounds.
func ParseEntry(b []byte) (Entry, error) {
	var raw struct {
		Seq     *uint64           `json:"seq"`
		Time    *string           `json:"time"`
		Actor   *string           `json:"actor"`
		Kind    *string           `json:"kind"`
		Object  *string           `json:"object"`
		Details map[string]string `json:"details"`
		Prev    *string           `json:"prev"`
		Hash    *string           `json:"hash"`
	}
	if err := strictjson.Decode(b, &raw); err != nil {
		return Entry{}, fmt.Errorf("not an audit entry: %w", err)
	}
	for name, f := range map[string]bool{"seq": raw.Seq == nil, "time": raw.Time == nil, "actor": raw.Actor == nil,
		"kind": raw.Kind == nil, "object": raw.Object == nil, "prev": raw.Prev == nil, "hash": raw.Hash == nil} {
		if f {
			return Entry{}, fmt.Errorf("audit entry has no %q", name)
		}
	}
	e := Entry{Seq: *raw.Seq, Actor: *raw.Actor, Kind: *raw.Kind, Object: *raw.Object, Prev: *raw.Prev, Hash: *raw.Hash}
	if e.Seq == 0 {
		return Entry{}, errors.New("audit entry seq is 0; entries count from 1")
	}
	if err := e.Time.UnmarshalText([]byte(*raw.Time)); err != nil {
		return Entry{}, fmt.Errorf("audit entry %d: time: %w", e.Seq, err)
	}
	for name, s := range map[string]string{"actor": e.Actor, "kind": e.Kind, "object": e.Object} {
		if len(s) > MaxField {
			return Entry{}, fmt.Errorf("audit entry %d: %s is over %d bytes", e.Seq, name, MaxField)
		}
	}
	if len(raw.Details) > MaxDetails {
		return Entry{}, fmt.Errorf("audit entry %d: %d details, over %d", e.Seq, len(raw.Details), MaxDetails)
	}
	for k, v := range raw.Details {
		if len(k) > MaxField || len(v) > MaxValue {
			return Entry{}, fmt.Errorf("audit entry %d: detail %.40q is over the bounds", e.Seq, k)
		}
	}
	if len(raw.Details) > 0 {
		e.Details = raw.Details
	}
	if !validHash(e.Prev) || !validHash(e.Hash) {
		return Entry{}, fmt.Errorf("audit entry %d: prev and hash must be %d lower-case hex digits", e.Seq, hashHexLen)
	}
	return e, nil
}
