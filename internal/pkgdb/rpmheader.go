package pkgdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
)

// RPM header tags this package reads.
const (
	rpmTagName      = 1000
	rpmTagVersion   = 1001
	rpmTagRelease   = 1002
	rpmTagEpoch     = 1003
	rpmTagArch      = 1022
	rpmTagSourceRPM = 1044
)

// RPM header data types.
const (
	rpmTypeInt32       = 4
	rpmTypeString      = 6
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9
)

// Limits of an RPM header, as RPM itself enforces them.
const (
	rpmMaxIndex = 0xffff
	rpmMaxData  = 256 << 20
)

// rpmMagic starts a header in a package file, before the index counts; the
// headers stored in the RPM database do not carry it.
var rpmMagic = []byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0}

// ParseRPMHeader parses an RPM header as the RPM database stores it (an
// index count, a data length, the index entries and the data store, all
// big-endian; a leading header magic is accepted too) and returns the
// package it describes. Errors wrap ErrMalformed.
func ParseRPMHeader(blob []byte) (Package, error) {
	blob = bytes.TrimPrefix(blob, rpmMagic)
	if len(blob) < 8 {
		return Package{}, fmt.Errorf("%w: rpm header of %d bytes", ErrMalformed, len(blob))
	}
	il := binary.BigEndian.Uint32(blob[0:4])
	dl := binary.BigEndian.Uint32(blob[4:8])
	if il == 0 || il > rpmMaxIndex || dl > rpmMaxData {
		return Package{}, fmt.Errorf("%w: rpm header with %d entries and %d data bytes", ErrMalformed, il, dl)
	}
	indexEnd := 8 + 16*uint64(il)
	if uint64(len(blob)) < indexEnd+uint64(dl) {
		return Package{}, fmt.Errorf("%w: rpm header of %d bytes is shorter than its %d entries and %d data bytes", ErrMalformed, len(blob), il, dl)
	}
	data := blob[indexEnd : indexEnd+uint64(dl)]
	var (
		p     Package
		epoch = -1
		rel   string
	)
	for i := range uint64(il) {
		e := blob[8+16*i : 8+16*i+16]
		tag := binary.BigEndian.Uint32(e[0:4])
		typ := binary.BigEndian.Uint32(e[4:8])
		off := binary.BigEndian.Uint32(e[8:12])
		count := binary.BigEndian.Uint32(e[12:16])
		switch tag {
		case rpmTagName, rpmTagVersion, rpmTagRelease, rpmTagArch, rpmTagSourceRPM:
			s, err := rpmString(data, typ, off)
			if err != nil {
				return Package{}, fmt.Errorf("rpm header tag %d: %w", tag, err)
			}
			switch tag {
			case rpmTagName:
				p.Name = s
			case rpmTagVersion:
				p.Version = s
			case rpmTagRelease:
				rel = s
			case rpmTagArch:
				p.Arch = s
			case rpmTagSourceRPM:
				p.Source = s
			}
		case rpmTagEpoch:
			if typ != rpmTypeInt32 || count < 1 || uint64(off)+4 > uint64(len(data)) {
				return Package{}, fmt.Errorf("%w: rpm epoch of type %d count %d at offset %d", ErrMalformed, typ, count, off)
			}
			epoch = int(binary.BigEndian.Uint32(data[off : off+4]))
		}
	}
	if p.Name == "" || p.Version == "" {
		return Package{}, fmt.Errorf("%w: rpm header without a name or version", ErrMalformed)
	}
	if rel != "" {
		p.Version += "-" + rel
	}
	if epoch >= 0 {
		p.Version = strconv.Itoa(epoch) + ":" + p.Version
	}
	p.Type = TypeRPM
	return p, nil
}

// rpmString returns the NUL-terminated string at off (the first one of an
// array).
func rpmString(data []byte, typ, off uint32) (string, error) {
	switch typ {
	case rpmTypeString, rpmTypeStringArray, rpmTypeI18NString:
	default:
		return "", fmt.Errorf("%w: type %d is not a string", ErrMalformed, typ)
	}
	if uint64(off) >= uint64(len(data)) {
		return "", fmt.Errorf("%w: string offset %d past the %d data bytes", ErrMalformed, off, len(data))
	}
	end := bytes.IndexByte(data[off:], 0)
	if end < 0 {
		return "", fmt.Errorf("%w: string at offset %d has no end", ErrMalformed, off)
	}
	return string(data[off : off+uint32(end)]), nil
}
