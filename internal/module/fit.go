package module

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/migplatform/mig/internal/action"
)

// The size of results has one policy, written here and applied wherever a
// result is bounded: by a module child before it writes its result
// (ServeChild), by RunParsed for a module run in process, and by the agent
// for the whole result message after the privacy rule and before it signs
// (FitMessage). The limit is the relay's, action.MaxMessageSize. A result
// over it is cut down in steps, stopping as soon as it fits, and says so;
// only one that cannot be cut down fails:
//
//  1. the result with the largest elements loses the second half of them
//     (a JSON array keeps its first elements; other JSON is dropped), again
//     until it fits; each result cut this way carries, first in its errors,
//     a note starting with action.CodeTooLarge that says how many elements
//     it kept of how many; Success and FoundAnything are left as the module
//     set them;
//  2. then error lists are cut to MaxErrors entries of MaxErrorLen bytes,
//     the note kept, statistics over MaxStatistics bytes are dropped, and
//     a message's error is cut to MaxCommandError bytes;
//  3. a result still too large is replaced by a failed one with no
//     elements and only the action.CodeTooLarge note; a message still too
//     large is failed with action.CodeTooLarge and no results.
//
// A child that writes more than MaxOutput bytes on its standard output
// (which ServeChild never does) is killed and reported as ErrCrashed.
const (
	// MaxOutput bounds what RunChild reads from a child's standard output.
	MaxOutput = action.MaxMessageSize
	// MessageReserve is the room a result message leaves for everything
	// but its results: the envelope and the agent's signature.
	MessageReserve = 16 << 10
	// MaxResultSize is the largest encoding of one operation's result a
	// module returns, so that a command of one operation always fits in
	// a relay message without being cut again.
	MaxResultSize = action.MaxMessageSize - MessageReserve
	// MaxErrors, MaxErrorLen, MaxStatistics and MaxCommandError bound
	// what step 2 keeps.
	MaxErrors       = 16
	MaxErrorLen     = 1024
	MaxStatistics   = 64 << 10
	MaxCommandError = 4096
)

// FitResult returns res cut to encode within limit bytes (at most
// MaxResultSize for what a module returns), following the policy above.
// A result that does not encode at all is returned unchanged; encoding it
// reports the error.
func FitResult(res action.Result, limit int) action.Result {
	size := func(r *action.Result) (int, error) {
		b, err := json.Marshal(r)
		return len(b), err
	}
	n, err := size(&res)
	if err != nil || n <= limit {
		return res
	}
	// Cutting works on a copy of the slices it changes.
	res.Errors = append([]string(nil), res.Errors...)
	results := []action.Result{res}
	fits := func() bool { n, err := size(&results[0]); return err == nil && n <= limit }
	if cutElements(results, n, fits) {
		return results[0]
	}
	cutDetails(results)
	if fits() {
		return results[0]
	}
	return action.Result{
		FoundAnything: res.FoundAnything,
		Errors: []string{fmt.Sprintf("%s: the result was %d bytes, over the relay limit of %d, and could not be cut down: narrow the search",
			action.CodeTooLarge, n, action.MaxMessageSize)},
	}
}

// FitMessage encodes a result message within limit bytes (at most
// action.MaxMessageSize), cutting it in place as the policy above says.
// It fails only if the message does not encode at all.
func FitMessage(m *action.ResultMessage, limit int) ([]byte, error) {
	var data []byte
	var err error
	marshal := func() bool {
		data, err = action.Marshal(m)
		if err == nil && len(data) > limit {
			err = fmt.Errorf("%w: message is %d bytes, over the limit of %d", action.ErrMessage, len(data), limit)
		}
		return err == nil
	}
	if marshal() || !errors.Is(err, action.ErrMessage) {
		return data, err
	}
	orig := len(mustJSON(m))
	if cutElements(m.Results, orig, marshal) {
		return data, nil
	}
	cutDetails(m.Results)
	if len(m.Error) > MaxCommandError {
		m.Error = m.Error[:MaxCommandError] + "..."
	}
	if marshal() {
		return data, nil
	}
	m.Results = nil
	m.Status = action.CmdFailed
	m.Code = action.CodeTooLarge
	m.Error = fmt.Sprintf("the result was %d bytes, over the relay limit of %d, and could not be cut down", orig, action.MaxMessageSize)
	marshal()
	return data, err
}

// cutElements is step 1 of the policy: it halves the elements of the
// result with the largest ones until fits reports true (it returns true)
// or no result has elements left (false). orig is the size before any cut,
// for the notes.
func cutElements(results []action.Result, orig int, fits func() bool) bool {
	type trim struct{ total, kept int }
	trims := map[int]*trim{}
	for {
		idx, size := -1, 0
		for i, r := range results {
			if len(r.Elements) > size {
				idx, size = i, len(r.Elements)
			}
		}
		if idx < 0 {
			return false
		}
		r := &results[idx]
		t := trims[idx]
		var elems []json.RawMessage
		if json.Unmarshal(r.Elements, &elems) == nil && len(elems) > 1 {
			if t == nil {
				t = &trim{total: len(elems)}
			}
			elems = elems[:len(elems)/2]
			t.kept = len(elems)
			r.Elements = mustJSON(elems)
		} else {
			if t == nil {
				t = &trim{total: max(len(elems), 1)}
			}
			t.kept = 0
			r.Elements = nil
		}
		note := fmt.Sprintf("%s: the result was %d bytes, over the relay limit of %d: kept %d of %d elements",
			action.CodeTooLarge, orig, action.MaxMessageSize, t.kept, t.total)
		if trims[idx] == nil {
			// The note goes first, where step 2 keeps it.
			r.Errors = append([]string{note}, r.Errors...)
			trims[idx] = t
		} else {
			r.Errors[0] = note
		}
		if fits() {
			return true
		}
	}
}

// cutDetails is step 2 of the policy for each result: error lists and
// large statistics. A leading action.CodeTooLarge note is among the
// errors kept.
func cutDetails(results []action.Result) {
	for i := range results {
		r := &results[i]
		if len(r.Errors) > MaxErrors {
			r.Errors = append(r.Errors[:MaxErrors-1], fmt.Sprintf("%d more errors dropped", len(r.Errors)-(MaxErrors-1)))
		}
		for k, e := range r.Errors {
			if len(e) > MaxErrorLen {
				r.Errors[k] = e[:MaxErrorLen] + "..."
			}
		}
		if len(r.Statistics) > MaxStatistics {
			r.Statistics = nil
		}
	}
}

// mustJSON encodes a value that always encodes (raw JSON already checked).
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}
