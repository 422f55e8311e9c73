// Package audit is the server's audit trail: every action created (with the
// fingerprints that signed it), every launch, and every investigator and
// API key change is one Entry of an append-only log whose entries are
// hash-chained. Each entry carries the hash of the entry before it, and its
// own hash covers its contents and that link, so that editing an entry, or
// deleting one in the middle, breaks the chain at a sequence number a
// Verifier names.
//
// The hashed encoding (version 1) of an entry is, in this order:
//
//	the 13 bytes "mig-audit-v1\x00" (domain separation)
//	seq                      8 bytes, unsigned, big-endian
//	time                     8 bytes, signed, big-endian: Unix microseconds, UTC
//	actor, kind, object      each a string
//	details                  4 bytes, big-endian: the number of pairs, then
//	                         each pair in increasing byte order of keys: key,
//	                         value, each a string
//	prev                     the 32 bytes of the previous entry's hash (32
//	                         zero bytes before entry 1)
//
// where a string is its length in bytes as 4 bytes big-endian, then its
// UTF-8 bytes. The hash is the SHA-256 of that encoding, written as 64
// lower-case hex digits. The encoding does not depend on JSON, so an entry
// read from the API or from an export file hashes the same however it was
// formatted.
//
// What the chain proves, and its limit: the hashes are not keyed, so
// someone who can write the store can rewrite the whole log from an entry
// onwards, or drop its newest entries, and leave a chain that verifies. A
// verifier detects that only against a head it saw before (Verifier.Expect:
// "mig audit verify" remembers the newest head it verified, per server) or
// against an export kept elsewhere. Within those limits a deleted, edited,
// reordered or truncated entry is detected.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Kinds of entries.
const (
	KindActionCreate        = "action.create"        // a signed action was stored; details hold its signers
	KindActionLaunch        = "action.launch"        // it was fanned out to agents
	KindInvestigatorCreate  = "investigator.create"  // an investigator was added
	KindInvestigatorDisable = "investigator.disable" // an investigator was disabled
	KindInvestigatorEnable  = "investigator.enable"  // an investigator was (re)activated
	KindAPIKeyCreate        = "apikey.create"        // an API key was made
	KindAPIKeyRevoke        = "apikey.revoke"        // an API key was revoked
	KindAgentEnroll         = "agent.enroll"         // an agent identity (key) enrolled for the first time
)

// Actors that are not a request's investigator.
const (
	// ActorServer is the server itself: the development bootstrap and
	// mig-server -add-investigator.
	ActorServer = "server"
	// ActorInvestigatorPrefix precedes the fingerprint of an investigator
	// who authenticated with their OpenPGP key.
	ActorInvestigatorPrefix = "investigator:"
	// ActorAPIKeyPrefix precedes the ID of the API key a request
	// authenticated with.
	ActorAPIKeyPrefix = "apikey:"
	// ActorAgentPrefix precedes the ID of an agent that enrolled itself
	// with the enrollment token.
	ActorAgentPrefix = "agent:"
)

// Bounds of an entry, applied when it is made (Next) and when one is read
// (Verifier, ReadExport).
const (
	MaxField      = 256  // bytes of actor, kind, object and of a details key
	MaxValue      = 4096 // bytes of a details value
	MaxDetails    = 32   // details pairs
	domain        = "mig-audit-v1\x00"
	hashHexLen    = 2 * sha256.Size
	truncatedMark = "…"
)

// Genesis is the prev of entry 1: 32 zero bytes in hex.
var Genesis = strings.Repeat("0", hashHexLen)

// Record is what to append: an entry before the store gives it its place in
// the chain.
type Record struct {
	// Time is when the change happened; zero means when it is appended.
	Time time.Time
	// Actor is who did it: ActorServer, or ActorInvestigatorPrefix or
	// ActorAPIKeyPrefix and an ID.
	Actor string
	// Kind is one of the Kind constants.
	Kind string
	// Object is the ID of what changed: an action ID, an investigator ID
	// or fingerprint, an API key ID.
	Object string
	// Details are a few facts about the change.
	Details map[string]string
}

// Entry is one entry of the log, as stored and as the API returns it.
type Entry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Kind    string            `json:"kind"`
	Object  string            `json:"object"`
	Details map[string]string `json:"details,omitempty"`
	// Prev is the hash of the entry before (Genesis for entry 1).
	Prev string `json:"prev"`
	// Hash is the SHA-256 of the entry's encoding, in hex.
	Hash string `json:"hash"`
}

// Head is the newest entry of a chain: its sequence number and hash. The
// zero Head is the empty log.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// String is "SEQ:HASH", the form ParseHead reads.
func (h Head) String() string { return fmt.Sprintf("%d:%s", h.Seq, h.Hash) }

// ParseHead reads "SEQ:HASH".
func ParseHead(s string) (Head, error) {
	seq, hash, ok := strings.Cut(strings.TrimSpace(s), ":")
	var h Head
	if _, err := fmt.Sscan(seq, &h.Seq); !ok || err != nil || h.Seq == 0 || fmt.Sprint(h.Seq) != seq {
		return Head{}, fmt.Errorf("audit head %q: want SEQ:HASH with a positive sequence number", s)
	}
	if !validHash(hash) {
		return Head{}, fmt.Errorf("audit head %q: hash is not %d lower-case hex digits", s, hashHexLen)
	}
	h.Hash = hash
	return h, nil
}

// Next returns rec as the entry that follows head (the zero Head: the
// first entry), at now when rec.Time is zero. Text that cannot be kept as
// it is (invalid UTF-8, NUL bytes, over the bounds) is replaced or cut
// before hashing, so that every store keeps it byte for byte.
func Next(head Head, rec Record, now time.Time) Entry {
	t := rec.Time
	if t.IsZero() {
		t = now
	}
	e := Entry{
		Seq:    head.Seq + 1,
		Time:   t.UTC().Truncate(time.Microsecond),
		Actor:  clean(rec.Actor, MaxField),
		Kind:   clean(rec.Kind, MaxField),
		Object: clean(rec.Object, MaxField),
		Prev:   head.Hash,
	}
	if head.Seq == 0 {
		e.Prev = Genesis
	}
	keys := sortedKeys(rec.Details)
	for i, k := range keys {
		if i == MaxDetails {
			break
		}
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details[clean(k, MaxField)] = clean(rec.Details[k], MaxValue)
	}
	e.Hash = e.ComputeHash()
	return e
}

// clean returns s as valid UTF-8 without NUL bytes, cut to at most max
// bytes on a character boundary.
func clean(s string, max int) string {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max - len(truncatedMark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + truncatedMark
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Encode returns the hashed encoding of e (see the package doc). Prev must
// be a valid hash; a malformed one is encoded as it is hex-decoded, and
// Verifier refuses it before.
func (e *Entry) Encode() []byte {
	b := make([]byte, 0, 256)
	b = append(b, domain...)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, s := range []string{e.Actor, e.Kind, e.Object} {
		b = appendString(b, s)
	}
	keys := sortedKeys(e.Details)
	b = binary.BigEndian.AppendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Details[k])
	}
	prev, _ := hex.DecodeString(e.Prev)
	var p [sha256.Size]byte
	copy(p[:], prev)
	return append(b, p[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// ComputeHash returns the SHA-256 of e's encoding in hex.
func (e *Entry) ComputeHash() string {
	sum := sha256.Sum256(e.Encode())
	return hex.EncodeToString(sum[:])
}

func validHash(s string) bool {
	if len(s) != hashHexLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ErrBroken is wrapped by every error a Verifier returns for a chain that
// does not verify (a *BreakError).
var ErrBroken = errors.New("audit log does not verify")

// BreakError says where a chain breaks: the first sequence number that
// does not verify, and why.
type BreakError struct {
	Seq    uint64
	Reason string
}

func (e *BreakError) Error() string {
	return fmt.Sprintf("audit log broken at entry %d: %s", e.Seq, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBroken) true.
func (e *BreakError) Unwrap() error { return ErrBroken }

func broken(seq uint64, format string, args ...any) error {
	return &BreakError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
}

// Verifier checks a chain entry by entry, from entry 1, so that a log read
// in pages never has to be held whole. The zero Verifier is ready.
type Verifier struct {
	head   Head
	expect []Head
	err    error
}

// Expect asks Done to check that the chain holds h: an entry with h.Seq
// and h.Hash (a head verified before). A chain that was cut below it, or
// rewritten up to it, then fails.
func (v *Verifier) Expect(h Head) {
	if h.Seq > 0 {
		v.expect = append(v.expect, h)
	}
}

// From makes v start after h instead of at entry 1, trusting h as verified
// before (by an earlier run, or as the prev of the first entry read): it is
// for a log read from the middle ("mig audit -after N"), which proves only
// that the entries read are unchanged and linked to each other. It must be
// called before Add.
func (v *Verifier) From(h Head) {
	v.head = h
}

// Head returns the newest entry verified so far.
func (v *Verifier) Head() Head { return v.head }

// Add verifies the next entries. The first error stops verification: later
// calls return it again.
func (v *Verifier) Add(entries ...Entry) error {
	for i := range entries {
		if v.err != nil {
			break
		}
		v.err = v.add(&entries[i])
	}
	return v.err
}

func (v *Verifier) add(e *Entry) error {
	want := v.head.Seq + 1
	prev := v.head.Hash
	if v.head.Seq == 0 {
		prev = Genesis
	}
	switch {
	case e.Seq < want:
		return broken(e.Seq, "sequence number %d appears again or out of order after entry %d", e.Seq, v.head.Seq)
	case e.Seq > want && e.Seq == want+1:
		return broken(want, "entry %d is missing (deleted): entry %d follows entry %d", want, e.Seq, v.head.Seq)
	case e.Seq > want:
		return broken(want, "entries %d to %d are missing (deleted): entry %d follows entry %d", want, e.Seq-1, e.Seq, v.head.Seq)
	case !validHash(e.Hash) || !validHash(e.Prev):
		return broken(e.Seq, "its hash or prev is not %d lower-case hex digits", hashHexLen)
	case e.Time.Nanosecond()%1000 != 0:
		return broken(e.Seq, "its time %s is not a whole microsecond (edited)", e.Time.Format(time.RFC3339Nano))
	}
	if got := e.ComputeHash(); got != e.Hash {
		return broken(e.Seq, "its contents do not match its hash (edited): computed %s, recorded %s", got[:16], e.Hash[:16])
	}
	if e.Prev != prev {
		return broken(e.Seq, "its prev %s is not the hash %s of entry %d (an entry before it was deleted, edited or replaced)",
			e.Prev[:16], prev[:16], v.head.Seq)
	}
	for _, x := range v.expect {
		if x.Seq == e.Seq && x.Hash != e.Hash {
			return broken(e.Seq, "its hash %s is not the %s verified before: the log was rewritten from here or before",
				e.Hash[:16], x.Hash[:16])
		}
	}
	v.head = Head{Seq: e.Seq, Hash: e.Hash}
	return nil
}

// Done reports whether every expected head was in the chain: an expected
// head past the last entry means the log lost its newest entries.
func (v *Verifier) Done() error {
	if v.err != nil {
		return v.err
	}
	for _, x := range v.expect {
		if x.Seq > v.head.Seq {
			if v.head.Seq+1 == x.Seq {
				return broken(x.Seq, "the log ends at entry %d, but entry %d was verified before: the newest entries were deleted (truncated)", v.head.Seq, x.Seq)
			}
			return broken(v.head.Seq+1, "the log ends at entry %d, but entry %d was verified before: entries %d to %d were deleted (truncated)",
				v.head.Seq, x.Seq, v.head.Seq+1, x.Seq)
		}
	}
	return nil
}
