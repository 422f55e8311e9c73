package memory

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"slices"
)

// region is a readable span of a process's address space.
type region struct {
	start, end uint64
	path       string
}

// Hit is one filter that matched a process.
type Hit struct {
	// Filter is "name", "library", "content" or "bytes".
	Filter string `json:"filter"`
	// Value is the filter as given (a regex, or bytes in hexadecimal).
	Value string `json:"value"`
	// Library is the mapped file a library filter matched.
	Library string `json:"library,omitempty"`
	// Address is where a content or bytes filter first matched, in
	// hexadecimal ("0x7f12...").
	Address string `json:"address,omitempty"`
}

// memFilter is a content or bytes filter being searched in one process.
type memFilter struct {
	s       *search
	value   string
	kind    string
	re      *regexp.Regexp
	needle  []byte
	found   bool
	done    bool // found, or past its search's maxlength
	address uint64
}

func (f *memFilter) find(data []byte) int {
	if f.re != nil {
		if loc := f.re.FindIndex(data); loc != nil {
			return loc[0]
		}
		return -1
	}
	return bytes.Index(data, f.needle)
}

// procState is what a process scan learns about each search.
type procState struct {
	hits   map[*search][]Hit
	failed map[*search]bool // a matchall search with a filter that cannot match any more
}

func (st *procState) decided(s *search) bool {
	if s.matchAny {
		return len(st.hits[s]) > 0
	}
	return st.failed[s]
}

// matchProcess checks the name and library filters of every search against
// a process (its executable's base name, the paths of the files it maps), then reads its memory once for the content and bytes filters
// that can still change an answer, and returns the hits of each search that
// matched.
func (r *Runner) matchProcess(ctx context.Context, name string, paths []string, regions []region, mem io.ReaderAt, stats *Statistics) (map[*search][]Hit, error) {
	st := &procState{hits: map[*search][]Hit{}, failed: map[*search]bool{}}
	for _, s := range r.searches {
		for _, re := range s.names {
			if re.MatchString(name) {
				st.hits[s] = append(st.hits[s], Hit{Filter: "name", Value: re.String()})
			} else {
				st.failed[s] = true
			}
		}
		for _, re := range s.libs {
			lib := ""
			for _, p := range paths {
				if re.MatchString(p) {
					lib = p
					break
				}
			}
			if lib != "" {
				st.hits[s] = append(st.hits[s], Hit{Filter: "library", Value: re.String(), Library: lib})
			} else {
				st.failed[s] = true
			}
		}
	}
	var filters []*memFilter
	for _, s := range r.searches {
		if st.decided(s) {
			continue
		}
		for _, re := range s.contents {
			filters = append(filters, &memFilter{s: s, kind: "content", value: re.String(), re: re})
		}
		for _, n := range s.needles {
			filters = append(filters, &memFilter{s: s, kind: "bytes", value: hex.EncodeToString(n), needle: n})
		}
	}
	var err error
	if len(filters) > 0 && mem != nil {
		stats.ProcessesRead++
		err = r.scanMemory(ctx, mem, regions, filters, st, stats)
	}
	for _, f := range filters {
		if !f.found && !f.s.matchAny {
			st.failed[f.s] = true
		}
	}
	out := map[*search][]Hit{}
	for _, s := range r.searches {
		h := st.hits[s]
		if (s.matchAny && len(h) > 0) || (!s.matchAny && len(h) == s.filters()) {
			out[s] = h
		}
	}
	return out, err
}

// scanMemory reads the regions in chunks whose borders fall on multiples of
// r.chunkSize, each chunk preceded by the overlap kept from the previous one
// when the regions are contiguous, and searches every filter that is not
// done and whose search is not decided. It stops when no filter is left.
func (r *Runner) scanMemory(ctx context.Context, mem io.ReaderAt, regions []region, filters []*memFilter, st *procState, stats *Statistics) error {
	overlap := 0
	for _, f := range filters {
		if f.re != nil {
			overlap = max(overlap, f.s.window)
		} else {
			overlap = max(overlap, len(f.needle)-1)
		}
	}
	cs := uint64(r.chunkSize)
	overlap = min(overlap, r.chunkSize)
	if cap(r.buf) < r.chunkSize+overlap {
		r.buf = make([]byte, r.chunkSize+overlap)
	}
	buf := r.buf[:r.chunkSize+overlap]
	var (
		pos     int64 // logical position: readable bytes before the current region
		carry   int
		prevEnd uint64
		pending = slices.Clone(filters)
	)
	for _, rg := range regions {
		if rg.start != prevEnd {
			carry = 0
		}
		prevEnd = rg.end
		regionPos := pos
		pos += int64(rg.end - rg.start)
		complete := true
		for addr := rg.start; addr < rg.end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			lpos := regionPos + int64(addr-rg.start)
			pending = r.prune(pending, lpos, st)
			if len(pending) == 0 {
				return nil
			}
			// Memory before every pending filter's offset is not read:
			// jump to the chunk that holds the lowest offset.
			if skip := minOffset(pending) - lpos; skip > 0 {
				if skip >= int64(rg.end-addr) {
					carry = 0
					complete = false // neither read nor skipped
					break
				}
				if next := (addr + uint64(skip)) / cs * cs; next > addr {
					carry = 0
					addr = next
					continue
				}
			}
			chunkEnd := min(rg.end, (addr/cs+1)*cs)
			n := int(chunkEnd - addr)
			got, err := mem.ReadAt(buf[carry:carry+n], int64(addr))
			if got < n {
				_ = err // an unreadable part ends the region: it is skipped
				stats.RegionsSkipped++
				stats.BytesRead += int64(got)
				carry = 0
				prevEnd = 0
				complete = false
				break
			}
			stats.BytesRead += int64(n)
			data := buf[:carry+n]
			base := addr - uint64(carry)
			dataPos := lpos - int64(carry) // logical position of data[0]
			for _, f := range pending {
				if f.done || st.decided(f.s) {
					continue
				}
				// Only what lies inside [offset, offset+maxlength) is
				// searched, so a match must start and end inside it.
				lo, hi := max(0, f.s.offset-dataPos), int64(len(data))
				if f.s.end >= 0 {
					hi = min(hi, f.s.end-dataPos)
				}
				if lo >= hi {
					continue
				}
				if i := f.find(data[lo:hi]); i >= 0 {
					f.found, f.done, f.address = true, true, base+uint64(lo)+uint64(i)
					st.hits[f.s] = append(st.hits[f.s], Hit{Filter: f.kind, Value: f.value, Address: fmt.Sprintf("%#x", f.address)})
				}
			}
			carry = min(overlap, len(data))
			copy(buf, data[len(data)-carry:])
			addr = chunkEnd
		}
		if complete {
			stats.RegionsRead++
		}
	}
	return nil
}

// minOffset returns the lowest offset of the searches of filters.
func minOffset(filters []*memFilter) int64 {
	m := filters[0].s.offset
	for _, f := range filters[1:] {
		m = min(m, f.s.offset)
	}
	return m
}

// prune drops the filters that are done, past their search's maxlength at
// logical position lpos, or whose search is decided.
func (r *Runner) prune(fs []*memFilter, lpos int64, st *procState) []*memFilter {
	out := fs[:0]
	for _, f := range fs {
		if !f.done && f.s.end >= 0 && lpos >= f.s.end {
			f.done = true
			if !f.s.matchAny {
				st.failed[f.s] = true
			}
		}
		if f.done || st.decided(f.s) {
			continue
		}
		out = append(out, f)
	}
	return out
}
