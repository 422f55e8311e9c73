package action

import (
	"bytes"
	"slices"
	"time"
)

// Checked is an action that passed Validate, together with its Encoding,
// both computed by Check in one pass over the parameters. Canonicalising
// the parameters is most of the cost of checking, signing and verifying a
// large action (a scribe policy of thousands of tests), and Validate and
// Encoding each do it: a client that checks an action, then signs it, and
// an agent that checks an action, then verifies its signatures, do it once
// with Check.
//
// A Checked holds its own deep copy of the action, taken when it was
// checked, and hands out only copies: its encoding is always the encoding of
// the action it holds, whatever happens to the action it was made from or
// to what it returned. There is no other way to make one, so stale bytes
// cannot be signed or verified in place of an action's: an action that
// changed must be checked again.
type Checked struct {
	a   Action
	enc []byte
}

// Check validates a (see Validate) and computes its Encoding, from a copy
// of a taken first. The error wraps ErrInvalid, as those of Validate and
// Encoding do.
func (a *Action) Check() (*Checked, error) {
	c := &Checked{a: *a.Clone()}
	canon, err := c.a.validate()
	if err != nil {
		return nil, err
	}
	if c.enc, err = c.a.encode(canon); err != nil {
		return nil, err
	}
	return c, nil
}

// Action returns a deep copy of the checked action.
func (c *Checked) Action() *Action { return c.a.Clone() }

// Encoding returns a copy of the checked action's Encoding: the bytes its
// signatures cover.
func (c *Checked) Encoding() []byte { return bytes.Clone(c.enc) }

// ID returns the checked action's ID.
func (c *Checked) ID() uint64 { return c.a.ID }

// Target returns the checked action's target.
func (c *Checked) Target() string { return c.a.Target }

// ExpireAfter returns the end of the checked action's validity window.
func (c *Checked) ExpireAfter() time.Time { return c.a.ExpireAfter }

// Signatures returns a copy of the checked action's signatures.
func (c *Checked) Signatures() []string { return slices.Clone(c.a.PGPSignatures) }

// Clone returns a deep copy of a: nothing the copy holds is shared with a.
func (a *Action) Clone() *Action {
	c := *a
	if a.Operations != nil {
		c.Operations = make([]Operation, len(a.Operations))
		for i, op := range a.Operations {
			op.Parameters = bytes.Clone(op.Parameters)
			c.Operations[i] = op
		}
	}
	c.PGPSignatures = slices.Clone(a.PGPSignatures)
	c.Investigators = slices.Clone(a.Investigators)
	for i := range c.Investigators {
		c.Investigators[i].Permissions = slices.Clone(a.Investigators[i].Permissions)
	}
	return &c
}
