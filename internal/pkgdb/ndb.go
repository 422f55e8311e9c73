package pkgdb

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"hash/adler32"
	"io"
	"slices"
)

// This file reads RPM's own "ndb" package database (Packages.db, RPM's
// lib/backend/ndb), read-only. Every integer is little-endian.
//
//   - The file starts with a 32-byte header: magic "RpmP", format version
//     0, a generation counter, the number of 4096-byte slot pages and the
//     next package number.
//   - The slot pages follow the header (the header takes the place of the
//     first two slots): 16-byte slots, each the magic "Slot", a package
//     number, the offset and the length of its blob in 16-byte blocks. A
//     slot whose offset is 0 is free.
//   - A blob is a 16-byte head (magic "BlbS", the package number, a time
//     stamp, the header's length), the RPM header, zero padding to a whole
//     number of blocks less the tail, and a 12-byte tail: the Adler-32 of
//     head, header and padding, the header's length again and the magic
//     "BlbE".
//
// Slots are checked against the file (blobs must lie after the slot pages,
// inside the file and must not overlap), so a corrupt file costs at most
// one pass over its bytes.

// ndb constants.
const (
	ndbMagic       = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic   = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbHeadMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbTailMagic   = 'B' | 'l'<<8 | 'b'<<16 | 'E'<<24
	ndbHeaderSize  = 32
	ndbSlotSize    = 16
	ndbBlockSize   = 16
	ndbPageSize    = 4096
	ndbBlobHead    = 16
	ndbBlobTail    = 12
	ndbMinBlocks   = (ndbBlobHead + ndbBlobTail + ndbBlockSize - 1) / ndbBlockSize
	ndbSlotsInPage = ndbPageSize / ndbSlotSize
)

// ndbSlot is one used slot.
type ndbSlot struct {
	pkgidx, blkoff, blkcnt uint32
}

// readRPMNDB reads the RPM headers of the ndb file r of size bytes, named
// name in errors.
func readRPMNDB(ctx context.Context, name string, r io.ReaderAt, size int64) ([]Package, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("rpm database %s: %w: %s", name, ErrMalformed, fmt.Sprintf(format, args...))
	}
	var head [ndbHeaderSize]byte
	if size < ndbPageSize {
		return nil, fail("ndb file of %d bytes is shorter than its first %d-byte slot page", size, ndbPageSize)
	}
	if _, err := r.ReadAt(head[:], 0); err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", name, err)
	}
	le := binary.LittleEndian
	if m := le.Uint32(head[0:]); m != ndbMagic {
		return nil, fail("magic %q is not ndb's \"RpmP\"", head[0:4])
	}
	if v := le.Uint32(head[4:]); v != 0 {
		return nil, fmt.Errorf("rpm database %s: ndb format version %d: %w", name, v, ErrUnsupported)
	}
	npages := le.Uint32(head[12:])
	if npages == 0 || int64(npages)*ndbPageSize > size {
		return nil, fail("%d slot pages of %d bytes in a file of %d bytes", npages, ndbPageSize, size)
	}
	fileBlocks := uint64(size) / ndbBlockSize
	firstBlock := uint64(npages) * (ndbPageSize / ndbBlockSize)

	// Read every slot, a page at a time.
	var (
		slots   []ndbSlot
		bad     int
		lastErr error
	)
	skip := func(err error) {
		bad++
		lastErr = err
	}
	page := make([]byte, ndbPageSize)
	for p := range npages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := r.ReadAt(page, int64(p)*ndbPageSize); err != nil {
			return nil, fmt.Errorf("rpm database %s: slot page %d: %w", name, p, err)
		}
		start := 0
		if p == 0 {
			start = ndbHeaderSize
		}
		for off := start; off < ndbPageSize; off += ndbSlotSize {
			slotno := uint64(p)*ndbSlotsInPage + uint64(off/ndbSlotSize)
			s := page[off : off+ndbSlotSize]
			if le.Uint32(s) != ndbSlotMagic {
				skip(fmt.Errorf("%w: slot %d has magic %q, not \"Slot\"", ErrMalformed, slotno, s[:4]))
				continue
			}
			sl := ndbSlot{pkgidx: le.Uint32(s[4:]), blkoff: le.Uint32(s[8:]), blkcnt: le.Uint32(s[12:])}
			switch {
			case sl.blkoff == 0: // free
			case sl.pkgidx == 0 || sl.blkcnt < ndbMinBlocks || uint64(sl.blkoff) < firstBlock:
				skip(fmt.Errorf("%w: slot %d: package %d at block %d, %d blocks (blobs start at block %d and take at least %d)", ErrMalformed, slotno, sl.pkgidx, sl.blkoff, sl.blkcnt, firstBlock, ndbMinBlocks))
			case uint64(sl.blkoff)+uint64(sl.blkcnt) > fileBlocks:
				skip(fmt.Errorf("%w: slot %d: package %d at blocks %d to %d, past the file's %d blocks (truncated)", ErrMalformed, slotno, sl.pkgidx, sl.blkoff, uint64(sl.blkoff)+uint64(sl.blkcnt), fileBlocks))
			default:
				slots = append(slots, sl)
			}
		}
	}

	// Read the blobs in file order; one that overlaps the previous one is
	// refused, which bounds the bytes read by the file's size.
	slices.SortFunc(slots, func(a, b ndbSlot) int {
		return cmp.Or(cmp.Compare(a.blkoff, b.blkoff), cmp.Compare(a.pkgidx, b.pkgidx))
	})
	var (
		pkgs []Package
		end  uint64
		blob []byte
	)
	for _, sl := range slots {
		if err := ctx.Err(); err != nil {
			return pkgs, err
		}
		if uint64(sl.blkoff) < end {
			skip(fmt.Errorf("%w: package %d at block %d overlaps the blob before it, which ends at block %d", ErrMalformed, sl.pkgidx, sl.blkoff, end))
			continue
		}
		end = uint64(sl.blkoff) + uint64(sl.blkcnt)
		if uint64(sl.blkcnt)*ndbBlockSize > ndbBlobHead+rpmMaxHeader+ndbBlobTail+ndbBlockSize {
			skip(fmt.Errorf("%w: package %d: blob of %d blocks is larger than any RPM header", ErrMalformed, sl.pkgidx, sl.blkcnt))
			continue
		}
		n := int(sl.blkcnt) * ndbBlockSize
		if cap(blob) < n {
			blob = make([]byte, n)
		}
		blob = blob[:n]
		if _, err := r.ReadAt(blob, int64(sl.blkoff)*ndbBlockSize); err != nil {
			return pkgs, fmt.Errorf("rpm database %s: package %d: %w", name, sl.pkgidx, err)
		}
		hdr, err := ndbBlob(blob, sl)
		if err != nil {
			skip(err)
			continue
		}
		p, err := ParseRPMHeader(hdr)
		if err != nil {
			skip(fmt.Errorf("package %d: %w", sl.pkgidx, err))
			continue
		}
		pkgs = append(pkgs, p)
	}
	if bad > 0 {
		return pkgs, fmt.Errorf("rpm database %s: %d entries skipped, last: %w", name, bad, lastErr)
	}
	return pkgs, nil
}

// ndbBlob checks the blob of slot sl (sl.blkcnt blocks) and returns the RPM
// header it holds.
func ndbBlob(b []byte, sl ndbSlot) ([]byte, error) {
	le := binary.LittleEndian
	if m := le.Uint32(b); m != ndbHeadMagic {
		return nil, fmt.Errorf("%w: package %d: blob at block %d has magic %q, not \"BlbS\"", ErrMalformed, sl.pkgidx, sl.blkoff, b[:4])
	}
	if idx := le.Uint32(b[4:]); idx != sl.pkgidx {
		return nil, fmt.Errorf("%w: package %d: blob at block %d belongs to package %d", ErrMalformed, sl.pkgidx, sl.blkoff, idx)
	}
	length := uint64(le.Uint32(b[12:]))
	if want := (ndbBlobHead + length + ndbBlobTail + ndbBlockSize - 1) / ndbBlockSize; want != uint64(sl.blkcnt) {
		return nil, fmt.Errorf("%w: package %d: blob of %d bytes needs %d blocks, its slot has %d", ErrMalformed, sl.pkgidx, length, want, sl.blkcnt)
	}
	tail := b[len(b)-ndbBlobTail:]
	if m := le.Uint32(tail[8:]); m != ndbTailMagic {
		return nil, fmt.Errorf("%w: package %d: blob tail has magic %q, not \"BlbE\"", ErrMalformed, sl.pkgidx, tail[8:])
	}
	if l := le.Uint32(tail[4:]); uint64(l) != length {
		return nil, fmt.Errorf("%w: package %d: blob head says %d bytes, its tail %d", ErrMalformed, sl.pkgidx, length, l)
	}
	if sum, want := adler32.Checksum(b[:len(b)-ndbBlobTail]), le.Uint32(tail); sum != want {
		return nil, fmt.Errorf("%w: package %d: blob checksum %#08x, its tail says %#08x", ErrMalformed, sl.pkgidx, sum, want)
	}
	return b[ndbBlobHead : ndbBlobHead+length], nil
}
