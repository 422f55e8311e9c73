// Package packed appends a payload to an executable file, reads it back and
// strips it, so that one file carries both a program and its configuration
// ("repacking"). mig-agent and mig-loader use it for the configuration they
// carry; this package knows nothing of what the payload means.
//
// A packed file is the executable, then the payload, then a fixed-size
// trailer of TrailerSize bytes:
//
//	magic       8 bytes  "MIGPACK\x01"
//	version     4 bytes  big-endian, Version
//	reserved    4 bytes  zero
//	exe length  8 bytes  big-endian, bytes of the executable before the payload
//	payload len 8 bytes  big-endian, at most MaxPayload
//	checksum   32 bytes  SHA-256 (see below)
//	magic       8 bytes  "MIGPACK\x01"
//
// The magic is written twice, at both ends of the trailer, so that changing
// any one byte of a trailer still leaves it recognisable: a file whose last
// bytes carry one magic but not the other is corrupt, not unpacked, and so
// is one whose last TrailerSize bytes hold a magic out of place (a file cut
// short by up to 64 bytes). A file cut short by more has lost its trailer
// and reads as one without a payload; the package or manifest hash of the
// whole file is what detects such a download. Read
// finds the trailer from the end of the file, reads the payload (bounded by
// MaxPayload) and streams the executable through the hash without holding it
// in memory.
//
// The checksum is SHA-256 over the domain string "mig-packed-v1\n", the
// trailer's version, exe length and payload length fields (as written), the
// executable bytes and the payload. It gives integrity, not authenticity: a
// payload or an executable changed after repacking (a flipped bit, an edit,
// a payload moved onto another binary) is refused, but whoever can write the
// file can also write a new checksum. Authenticity of the whole file comes
// from the package signature or the loader's signed manifest, which sign the
// SHA-256 of the packed file.
//
// The package imports only the standard library.
package packed

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
)

// MaxPayload is the largest payload Append writes and Read accepts.
const MaxPayload = 8 << 20

// Version is the trailer format version Append writes and Read accepts.
const Version = 1

// TrailerSize is the size in bytes of the trailer after the payload.
const TrailerSize = 8 + 4 + 4 + 8 + 8 + sha256.Size + 8

// magic marks both ends of a trailer.
const magic = "MIGPACK\x01"

// domain starts the checksummed data, so that the checksum of a packed file
// is never the checksum of anything else this project hashes.
const domain = "mig-packed-v1\n"

// Offsets of the trailer's fields.
const (
	offVersion  = 8
	offReserved = 12
	offExeLen   = 16
	offPayLen   = 24
	offSum      = 32
	offMagic2   = offSum + sha256.Size
)

// ErrChecksum is wrapped by the error for a packed file whose checksum does
// not match its executable and payload.
var ErrChecksum = errors.New("does not match its checksum: the file was modified after repacking")

// ErrCorrupt is wrapped by the error for a packed file whose trailer is
// malformed, truncated or of an unknown version.
var ErrCorrupt = errors.New("is corrupt")

// Append returns exe, with any payload it already carries removed, followed
// by payload and a trailer. An exe whose old payload is corrupt is refused:
// repack a clean executable instead.
func Append(exe []byte, payload []byte) ([]byte, error) {
	if len(payload) == 0 {
		return nil, errors.New("append payload: empty payload")
	}
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("append payload: %d bytes, more than the %d allowed", len(payload), MaxPayload)
	}
	base, err := Strip(exe)
	if err != nil {
		return nil, err
	}
	if len(base) == 0 {
		return nil, errors.New("append payload: empty executable")
	}
	out := make([]byte, 0, len(base)+len(payload)+TrailerSize)
	out = append(out, base...)
	out = append(out, payload...)
	var t [TrailerSize]byte
	copy(t[:], magic)
	binary.BigEndian.PutUint32(t[offVersion:], Version)
	binary.BigEndian.PutUint64(t[offExeLen:], uint64(len(base)))
	binary.BigEndian.PutUint64(t[offPayLen:], uint64(len(payload)))
	h := newHash(t[:])
	h.Write(base)
	h.Write(payload)
	h.Sum(t[offSum:offSum])
	copy(t[offMagic2:], magic)
	return append(out, t[:]...), nil
}

// Strip returns exe without the payload and trailer it carries, or exe itself
// if it carries none. A payload that is corrupt or does not match its
// checksum is an error.
func Strip(exe []byte) ([]byte, error) {
	_, exeLen, found, err := parse(bytes.NewReader(exe), int64(len(exe)))
	if err != nil {
		return nil, fmt.Errorf("appended configuration of the executable %w", err)
	}
	if !found {
		return exe, nil
	}
	return exe[:exeLen], nil
}

// Read returns the payload appended to the file at path. found is false, with
// a nil error, for a file that carries no payload. A payload that is corrupt
// or does not match its checksum is an error naming the file.
func Read(path string) (payload []byte, found bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("read appended configuration: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("read appended configuration: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, fmt.Errorf("read appended configuration of %s: not a regular file", path)
	}
	payload, _, found, err = parse(f, fi.Size())
	if err != nil {
		return nil, false, fmt.Errorf("appended configuration of %s %w", path, err)
	}
	return payload, found, nil
}

// ReadFrom is Read for the size bytes of r; it never reads past size.
func ReadFrom(r io.ReaderAt, size int64) (payload []byte, found bool, err error) {
	payload, _, found, err = parse(r, size)
	if err != nil {
		return nil, false, fmt.Errorf("appended configuration %w", err)
	}
	return payload, found, nil
}

// parse finds and checks the trailer at the end of the size bytes of r. Its
// errors complete a sentence that starts with the name of the file.
func parse(r io.ReaderAt, size int64) (payload []byte, exeLen int64, found bool, err error) {
	if size < 8 {
		return nil, 0, false, nil
	}
	// Look at the last TrailerSize bytes (or fewer for a small file): a
	// trailer is there when either of its magics is in place.
	n := int64(TrailerSize)
	if size < n {
		n = size
	}
	var t [TrailerSize]byte
	tail := t[TrailerSize-n:]
	if _, err := r.ReadAt(tail, size-n); err != nil {
		return nil, 0, false, fmt.Errorf("cannot be read: %w", err)
	}
	end := string(t[offMagic2:]) == magic
	start := n == TrailerSize && string(t[:8]) == magic
	if !end && !start {
		// A magic elsewhere in the tail is a trailer that lost its last
		// bytes: a truncated file, not one without a payload.
		if bytes.Contains(tail, []byte(magic)) {
			return nil, 0, true, fmt.Errorf("%w: the file is truncated (its trailer is cut short)", ErrCorrupt)
		}
		return nil, 0, false, nil
	}
	if n < TrailerSize {
		return nil, 0, true, fmt.Errorf("%w: the file is truncated (its trailer is cut short)", ErrCorrupt)
	}
	if !end || !start {
		return nil, 0, true, fmt.Errorf("%w: damaged trailer marker", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint32(t[offVersion:]); v != Version {
		return nil, 0, true, fmt.Errorf("%w: trailer version %d, this program reads version %d", ErrCorrupt, v, Version)
	}
	if binary.BigEndian.Uint32(t[offReserved:]) != 0 {
		return nil, 0, true, fmt.Errorf("%w: reserved trailer field is not zero", ErrCorrupt)
	}
	el := binary.BigEndian.Uint64(t[offExeLen:])
	pl := binary.BigEndian.Uint64(t[offPayLen:])
	if pl == 0 || pl > MaxPayload {
		return nil, 0, true, fmt.Errorf("%w: payload length %d is not between 1 and %d", ErrCorrupt, pl, MaxPayload)
	}
	body := uint64(size - TrailerSize)
	if el == 0 || el > body || body-el != pl {
		return nil, 0, true, fmt.Errorf("%w: its lengths (executable %d, payload %d) do not add up to the file's %d bytes", ErrCorrupt, el, pl, size)
	}
	h := newHash(t[:])
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, int64(el))); err != nil {
		return nil, 0, true, fmt.Errorf("cannot be read: %w", err)
	}
	payload = make([]byte, pl)
	if _, err := r.ReadAt(payload, int64(el)); err != nil {
		return nil, 0, true, fmt.Errorf("cannot be read: %w", err)
	}
	h.Write(payload)
	if !bytes.Equal(h.Sum(nil), t[offSum:offSum+sha256.Size]) {
		return nil, 0, true, ErrChecksum
	}
	return payload, int64(el), true, nil
}

// newHash returns a SHA-256 that has absorbed the domain string and the
// version and length fields of trailer t.
func newHash(t []byte) hash.Hash {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(t[offVersion:offSum])
	return h
}
