package pkgdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// This file reads the BerkeleyDB Packages file of RPM before 4.16, read-only
// and without BerkeleyDB: a hash database (a btree one too) whose keys are
// 4-byte package numbers and whose values are RPM headers.
//
// On-disk layout, as BerkeleyDB writes it (every integer in the byte order of
// the machine that made the file, which the magic number tells):
//
//   - Page 0 is the metadata page: magic at byte 12, format version at 16,
//     page size at 20, encryption algorithm at 24 (one byte), page type at 25,
//     meta flags at 26, last page number at 32. A hash database continues
//     with max_bucket at 72, high and low masks at 76 and 80 and 32 "spares"
//     from 96: bucket b lives on page b + spares[bits.Len(b)]. A btree
//     database has its root page number at 88.
//   - Every other page starts with a 26-byte header: its own page number at
//     8, previous and next page at 12 and 16, the number of entries at 20,
//     the high-free offset at 22 (on an overflow page: how many bytes it
//     holds), the btree level at 24 and the page type at 25. An array of
//     2-byte item offsets follows the header.
//   - Hash pages (types 2 and 13) hold key/value pairs: item 2i is a key,
//     item 2i+1 its value; an item runs from its offset to the previous
//     item's offset (the first one to the end of the page). Its first byte
//     is its kind: 1 the bytes follow, 3 "off page": 3 unused bytes, the
//     first overflow page and the total length. Overflow pages (type 7)
//     carry their part of the value after the header and chain by next page.
//   - Btree leaf pages (type 5) hold key/value pairs too, each item a 2-byte
//     length, a kind byte (0x80 marks a deleted item) and the bytes, or for
//     kind 3 an unused byte, the first overflow page and the total length.
//     Internal pages (type 3) hold a 2-byte length, a kind byte, an unused
//     byte, then the child page number; leaves chain by next page.
//
// Every offset, length and page number read from the file is checked
// against the page and the file before use; a page is visited at most once
// per read, so a loop in a bucket, leaf or overflow chain is an error, not
// a hang.

// BerkeleyDB constants this reader needs.
const (
	bdbHashMagic  = 0x061561
	bdbBtreeMagic = 0x053162

	bdbPageHeader = 26

	bdbPageHashUnsorted = 2
	bdbPageBtreeInner   = 3
	bdbPageBtreeLeaf    = 5
	bdbPageOverflow     = 7
	bdbPageHash         = 13

	bdbItemKeyData  = 1
	bdbItemOverflow = 3
	bdbItemDeleted  = 0x80
)

// rpmMaxHeader is the largest header blob RPM accepts: the index of
// rpmMaxIndex entries and rpmMaxData bytes of data after the two counts.
const rpmMaxHeader = 8 + 16*rpmMaxIndex + rpmMaxData

// bdbFile is one BerkeleyDB file being read.
type bdbFile struct {
	name     string
	r        io.ReaderAt
	size     int64
	order    binary.ByteOrder
	btree    bool
	pageSize uint32
	lastPage uint32
	// seen marks the pages visited so far: a page reached twice means a
	// loop (or two chains sharing a page) and is refused.
	seen []uint64
}

// errorf makes the error of a BerkeleyDB file that is not as RPM wrote it;
// it wraps ErrMalformed.
func (db *bdbFile) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// readRPMBerkeley reads the RPM headers of the BerkeleyDB file r of size
// bytes, named name in errors.
func readRPMBerkeley(ctx context.Context, name string, r io.ReaderAt, size int64) ([]Package, error) {
	db, err := openBDB(name, r, size)
	if err != nil {
		return nil, err
	}
	var (
		pkgs    []Package
		bad     int
		lastErr error
	)
	visit := func(key, value []byte, err error) {
		if err == nil {
			if isZeroKey(key) {
				// Record 0 holds RPM's next package number, not a header.
				return
			}
			var p Package
			if p, err = ParseRPMHeader(value); err == nil {
				pkgs = append(pkgs, p)
				return
			}
			err = fmt.Errorf("header %d: %w", db.keyNumber(key), err)
		}
		bad++
		lastErr = err
	}
	if db.btree {
		err = db.walkBtree(ctx, visit)
	} else {
		err = db.walkHash(ctx, visit)
	}
	if err != nil {
		return pkgs, fmt.Errorf("rpm database %s: %w", name, err)
	}
	if bad > 0 {
		return pkgs, fmt.Errorf("rpm database %s: %d entries skipped, last: %w", name, bad, lastErr)
	}
	return pkgs, nil
}

func isZeroKey(key []byte) bool {
	if len(key) != 4 {
		return false
	}
	return key[0]|key[1]|key[2]|key[3] == 0
}

// keyNumber is the package number a 4-byte key holds, for error messages.
func (db *bdbFile) keyNumber(key []byte) uint32 {
	if len(key) != 4 {
		return 0
	}
	return db.order.Uint32(key)
}

// openBDB reads and checks the metadata page.
func openBDB(name string, r io.ReaderAt, size int64) (*bdbFile, error) {
	db := &bdbFile{name: name, r: r, size: size}
	var meta [512]byte
	if size < int64(len(meta)) {
		return nil, fmt.Errorf("rpm database %s: %w: BerkeleyDB file of %d bytes is shorter than its %d-byte metadata page", name, ErrMalformed, size, len(meta))
	}
	if _, err := r.ReadAt(meta[:], 0); err != nil {
		return nil, fmt.Errorf("rpm database %s: %w", name, err)
	}
	le, be := binary.LittleEndian.Uint32(meta[12:]), binary.BigEndian.Uint32(meta[12:])
	switch {
	case le == bdbHashMagic:
		db.order = binary.LittleEndian
	case be == bdbHashMagic:
		db.order = binary.BigEndian
	case le == bdbBtreeMagic:
		db.order, db.btree = binary.LittleEndian, true
	case be == bdbBtreeMagic:
		db.order, db.btree = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("rpm database %s: %w: magic %#08x is neither a BerkeleyDB hash nor a btree database", name, ErrMalformed, le)
	}
	u32 := func(off int) uint32 { return db.order.Uint32(meta[off:]) }
	version := u32(16)
	if (!db.btree && (version < 8 || version > 10)) || (db.btree && (version < 9 || version > 10)) {
		return nil, fmt.Errorf("rpm database %s: BerkeleyDB format version %d: %w", name, version, ErrUnsupported)
	}
	if alg := meta[24]; alg != 0 {
		return nil, fmt.Errorf("rpm database %s: encrypted BerkeleyDB (algorithm %d): %w", name, alg, ErrUnsupported)
	}
	if flags := meta[26]; flags&1 != 0 {
		// Checksummed pages carry their checksum after the header, which
		// moves every item; RPM never made such databases.
		return nil, fmt.Errorf("rpm database %s: BerkeleyDB with page checksums: %w", name, ErrUnsupported)
	}
	db.pageSize = u32(20)
	if db.pageSize < 512 || db.pageSize > 64<<10 || db.pageSize&(db.pageSize-1) != 0 {
		return nil, fmt.Errorf("rpm database %s: %w: BerkeleyDB page size %d is not a power of two from 512 to 65536", name, ErrMalformed, db.pageSize)
	}
	db.lastPage = u32(32)
	if need := (int64(db.lastPage) + 1) * int64(db.pageSize); need > size {
		return nil, fmt.Errorf("rpm database %s: %w: truncated: last page %d of %d bytes needs %d bytes, the file has %d", name, ErrMalformed, db.lastPage, db.pageSize, need, size)
	}
	db.seen = make([]uint64, (uint64(db.lastPage)+1+63)/64)
	db.seen[0] = 1 // the metadata page is never part of a chain
	return db, nil
}

// metaUint32 reads a 4-byte field of the metadata page.
func (db *bdbFile) metaUint32(off int64) (uint32, error) {
	var b [4]byte
	if _, err := db.r.ReadAt(b[:], off); err != nil {
		return 0, err
	}
	return db.order.Uint32(b[:]), nil
}

// page reads page pgno into buf (db.pageSize bytes), once per read: a page
// asked for a second time is a loop.
func (db *bdbFile) page(pgno uint32, buf []byte) error {
	if pgno == 0 || pgno > db.lastPage {
		return db.errorf("page %d is outside the file's pages 1 to %d", pgno, db.lastPage)
	}
	if db.seen[pgno/64]&(1<<(pgno%64)) != 0 {
		return db.errorf("page %d is reached twice (a loop in a page chain)", pgno)
	}
	db.seen[pgno/64] |= 1 << (pgno % 64)
	if _, err := db.r.ReadAt(buf, int64(pgno)*int64(db.pageSize)); err != nil {
		return fmt.Errorf("page %d: %w", pgno, err)
	}
	if got := db.order.Uint32(buf[8:]); got != pgno {
		return db.errorf("page %d says it is page %d", pgno, got)
	}
	return nil
}

// items returns the item offsets of a page, each checked to lie after the
// offset array and inside the page.
func (db *bdbFile) items(pgno uint32, buf []byte) ([]uint16, error) {
	n := int(db.order.Uint16(buf[20:]))
	end := bdbPageHeader + 2*n
	if end > len(buf) {
		return nil, db.errorf("page %d claims %d items, more than fit in %d bytes", pgno, n, len(buf))
	}
	offs := make([]uint16, n)
	for i := range offs {
		off := db.order.Uint16(buf[bdbPageHeader+2*i:])
		if int(off) < end || int(off) >= len(buf) {
			return nil, db.errorf("page %d item %d at offset %d is outside the page's item area %d to %d", pgno, i, off, end, len(buf))
		}
		offs[i] = off
	}
	return offs, nil
}

// overflow reads a value of length bytes stored on the overflow chain that
// starts at page pgno.
func (db *bdbFile) overflow(pgno, length uint32) ([]byte, error) {
	if length == 0 || length > rpmMaxHeader || int64(length) > db.size {
		return nil, db.errorf("overflow item of %d bytes (file of %d bytes, largest RPM header %d)", length, db.size, rpmMaxHeader)
	}
	buf := make([]byte, db.pageSize)
	out := make([]byte, 0, min(length, 1<<20))
	first := pgno
	for uint32(len(out)) < length {
		if pgno == 0 {
			return nil, db.errorf("overflow chain from page %d ends after %d of its %d bytes", first, len(out), length)
		}
		if err := db.page(pgno, buf); err != nil {
			return nil, fmt.Errorf("overflow chain from page %d: %w", first, err)
		}
		if typ := buf[25]; typ != bdbPageOverflow {
			return nil, db.errorf("overflow chain from page %d: page %d has type %d, not an overflow page", first, pgno, typ)
		}
		n := uint32(db.order.Uint16(buf[22:]))
		if n == 0 || bdbPageHeader+n > db.pageSize || n > length-uint32(len(out)) {
			return nil, db.errorf("overflow chain from page %d: page %d holds %d bytes (page of %d, %d bytes left of %d)", first, pgno, n, db.pageSize, length-uint32(len(out)), length)
		}
		out = append(out, buf[bdbPageHeader:bdbPageHeader+n]...)
		pgno = db.order.Uint32(buf[16:])
	}
	return out, nil
}

// visitFunc receives each key/value pair, or the error that kept one from
// being read.
type visitFunc func(key, value []byte, err error)

// walkHash visits every pair of a hash database, bucket by bucket.
func (db *bdbFile) walkHash(ctx context.Context, visit visitFunc) error {
	maxBucket, err := db.metaUint32(72)
	if err != nil {
		return err
	}
	if maxBucket >= db.lastPage || maxBucket >= 1<<31 {
		return db.errorf("hash with %d buckets in a file of %d pages", uint64(maxBucket)+1, db.lastPage+1)
	}
	var spares [32]uint32
	for i := range spares {
		if spares[i], err = db.metaUint32(96 + 4*int64(i)); err != nil {
			return err
		}
	}
	buf := make([]byte, db.pageSize)
	for b := uint32(0); b <= maxBucket; b++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		spare := spares[bits.Len32(b)]
		if b+spare < b { // wrapped around
			visit(nil, nil, db.errorf("bucket %d maps to no page (spare %d)", b, spare))
			continue
		}
		if err := db.walkBucket(b+spare, buf, visit); err != nil {
			// The other buckets are still read.
			visit(nil, nil, fmt.Errorf("bucket %d: %w", b, err))
		}
	}
	return nil
}

// walkBucket visits the pairs of the bucket whose first page is pgno.
func (db *bdbFile) walkBucket(pgno uint32, buf []byte, visit visitFunc) error {
	for pgno != 0 {
		if err := db.page(pgno, buf); err != nil {
			return err
		}
		typ := buf[25]
		if typ != bdbPageHash && typ != bdbPageHashUnsorted {
			return db.errorf("page %d has type %d, not a hash page", pgno, typ)
		}
		offs, err := db.items(pgno, buf)
		if err != nil {
			return err
		}
		if len(offs)%2 != 0 {
			return db.errorf("page %d has %d items, not key/value pairs", pgno, len(offs))
		}
		for i := 0; i < len(offs); i += 2 {
			keyEnd := db.pageSize
			if i > 0 {
				keyEnd = uint32(offs[i-1])
			}
			key, err := db.hashItem(pgno, buf, uint32(offs[i]), keyEnd)
			if err != nil {
				visit(nil, nil, err)
				continue
			}
			value, err := db.hashItem(pgno, buf, uint32(offs[i+1]), uint32(offs[i]))
			visit(key, value, err)
		}
		pgno = db.order.Uint32(buf[16:])
	}
	return nil
}

// hashItem returns the bytes of the hash item that runs from start to end
// on page pgno, following it to its overflow pages.
func (db *bdbFile) hashItem(pgno uint32, buf []byte, start, end uint32) ([]byte, error) {
	if end <= start || end > uint32(len(buf)) {
		return nil, db.errorf("page %d: item from offset %d to %d", pgno, start, end)
	}
	item := buf[start:end]
	switch item[0] {
	case bdbItemKeyData:
		return append([]byte(nil), item[1:]...), nil
	case bdbItemOverflow:
		if len(item) != 12 {
			return nil, db.errorf("page %d: off-page item of %d bytes, not 12", pgno, len(item))
		}
		return db.overflow(db.order.Uint32(item[4:]), db.order.Uint32(item[8:]))
	default:
		return nil, db.errorf("page %d: hash item of kind %d (duplicates are not RPM's)", pgno, item[0])
	}
}

// walkBtree visits every pair of a btree database: down the leftmost
// branch to the first leaf, then along the leaves.
func (db *bdbFile) walkBtree(ctx context.Context, visit visitFunc) error {
	pgno, err := db.metaUint32(88)
	if err != nil {
		return err
	}
	buf := make([]byte, db.pageSize)
	for {
		if err := db.page(pgno, buf); err != nil {
			return fmt.Errorf("btree root or inner page: %w", err)
		}
		typ := buf[25]
		if typ == bdbPageBtreeLeaf {
			break
		}
		if typ != bdbPageBtreeInner {
			return db.errorf("btree page %d has type %d, neither an inner page nor a leaf", pgno, typ)
		}
		offs, err := db.items(pgno, buf)
		if err != nil {
			return err
		}
		if len(offs) == 0 || int(offs[0])+8 > len(buf) {
			return db.errorf("btree inner page %d has no child", pgno)
		}
		pgno = db.order.Uint32(buf[offs[0]+4:])
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		offs, err := db.items(pgno, buf)
		if err != nil {
			return err
		}
		if len(offs)%2 != 0 {
			return db.errorf("btree leaf %d has %d items, not key/value pairs", pgno, len(offs))
		}
		for i := 0; i < len(offs); i += 2 {
			key, kerr := db.btreeItem(pgno, buf, offs[i])
			value, verr := db.btreeItem(pgno, buf, offs[i+1])
			if errors.Is(kerr, errDeleted) || errors.Is(verr, errDeleted) {
				continue
			}
			visit(key, value, errors.Join(kerr, verr))
		}
		next := db.order.Uint32(buf[16:])
		if next == 0 {
			return nil
		}
		if err := db.page(next, buf); err != nil {
			return fmt.Errorf("btree leaf after page %d: %w", pgno, err)
		}
		if typ := buf[25]; typ != bdbPageBtreeLeaf {
			return db.errorf("btree leaf after page %d: page %d has type %d, not a leaf", pgno, next, typ)
		}
		pgno = next
	}
}

// errDeleted marks a btree item that BerkeleyDB flagged as deleted.
var errDeleted = errors.New("deleted item")

// btreeItem returns the bytes of the btree leaf item at off on page pgno.
func (db *bdbFile) btreeItem(pgno uint32, buf []byte, off uint16) ([]byte, error) {
	if int(off)+3 > len(buf) {
		return nil, db.errorf("btree page %d: item at offset %d past the page", pgno, off)
	}
	kind := buf[off+2]
	if kind&bdbItemDeleted != 0 {
		return nil, errDeleted
	}
	switch kind {
	case bdbItemKeyData:
		n := int(db.order.Uint16(buf[off:]))
		if int(off)+3+n > len(buf) {
			return nil, db.errorf("btree page %d: item at offset %d of %d bytes runs past the page", pgno, off, n)
		}
		return append([]byte(nil), buf[int(off)+3:int(off)+3+n]...), nil
	case bdbItemOverflow:
		if int(off)+12 > len(buf) {
			return nil, db.errorf("btree page %d: overflow item at offset %d past the page", pgno, off)
		}
		return db.overflow(db.order.Uint32(buf[off+4:]), db.order.Uint32(buf[off+8:]))
	default:
		return nil, db.errorf("btree page %d: item of kind %d (duplicates are not RPM's)", pgno, kind)
	}
}
