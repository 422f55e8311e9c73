package memory

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
)

// fakeMem is an address space for tests: bytes at base, with unreadable
// spans.
type fakeMem struct {
	base uint64
	data []byte
	bad  [][2]uint64 // unreadable [start, end)
}

func (m *fakeMem) ReadAt(p []byte, off int64) (int, error) {
	a := uint64(off)
	for i := range p {
		addr := a + uint64(i)
		for _, b := range m.bad {
			if addr >= b[0] && addr < b[1] {
				return i, io.ErrUnexpectedEOF
			}
		}
		if addr < m.base || addr >= m.base+uint64(len(m.data)) {
			return i, io.EOF
		}
		p[i] = m.data[addr-m.base]
	}
	return len(p), nil
}

func mustRunner(t *testing.T, s Search) *Runner {
	t.Helper()
	r, err := Parameters{Searches: map[string]Search{"s": s}}.compile()
	if err != nil {
		t.Fatal(err)
	}
	r.chunkSize = 4096
	return r
}

func TestScanChunkBorders(t *testing.T) {
	const base = 0x7f0000000000
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte('a' + i%7)
	}
	needle := []byte("NEEDLE-across-a-border")
	at := 3*4096 - 9 // straddles the border at 3*4096
	copy(data[at:], needle)
	split := []byte("SPLIT-between-regions")
	copy(data[8*4096-5:], split) // regions below end at 8*4096 and restart at 9*4096
	mem := &fakeMem{base: base, data: data, bad: [][2]uint64{{base + 12*4096, base + 13*4096}}}
	regions := []region{
		{start: base, end: base + 8*4096},
		{start: base + 9*4096, end: base + 16*4096},
	}
	hexOf := func(b []byte) string { return hex.EncodeToString(b) }
	for _, tc := range []struct {
		name     string
		s        Search
		wantHits []string // addresses, in filter order, or nil for no match
	}{
		{"bytes across a chunk border", Search{Bytes: []string{hexOf(needle)}}, []string{fmt.Sprintf("%#x", base+at)}},
		{"regex across a chunk border", Search{Contents: []string{"NEEDLE-[a-z-]+border"}, Options: Options{Window: 64}}, []string{fmt.Sprintf("%#x", base+at)}},
		{"regex longer than its window", Search{Contents: []string{"NEEDLE-[a-z-]+border"}, Options: Options{Window: 4}}, nil},
		{"split across non-contiguous regions", Search{Bytes: []string{hexOf(split)}}, nil},
		{"both, matchall", Search{Bytes: []string{hexOf(needle)}, Contents: []string{"NEEDLE"}}, []string{fmt.Sprintf("%#x", base+at), fmt.Sprintf("%#x", base+at)}},
		{"one missing, matchall", Search{Bytes: []string{hexOf(needle), hexOf(split)}}, nil},
		{"one missing, matchany", Search{Bytes: []string{hexOf(split), hexOf(needle)}, Options: Options{MatchAny: new(true)}}, []string{fmt.Sprintf("%#x", base+at)}},
		{"maxlength before the needle", Search{Bytes: []string{hexOf(needle)}, Options: Options{MaxLength: 2 * 4096}}, nil},
		{"needle straddling the end of maxlength", Search{Bytes: []string{hexOf(needle)}, Options: Options{Offset: 2 * 4096, MaxLength: 4096}}, nil},
		{"offset past the needle", Search{Bytes: []string{hexOf(needle)}, Options: Options{Offset: 4 * 4096}}, nil},
		{"offset and maxlength around it", Search{Bytes: []string{hexOf(needle)}, Options: Options{Offset: 2 * 4096, MaxLength: 4096 + 64}}, []string{fmt.Sprintf("%#x", base+at)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRunner(t, tc.s)
			var st Statistics
			hits, err := r.matchProcess(t.Context(), "proc", nil, regions, mem, &st)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, h := range hits[r.searches[0]] {
				got = append(got, h.Address)
			}
			if strings.Join(got, " ") != strings.Join(tc.wantHits, " ") {
				t.Errorf("hits at %v, want %v", got, tc.wantHits)
			}
		})
	}
	// The unreadable page ends its region's scan; a needle after it is not
	// found, and the region is counted as skipped.
	copy(data[14*4096:], "AFTER-THE-HOLE")
	r := mustRunner(t, Search{Contents: []string{"AFTER-THE-HOLE"}})
	var st Statistics
	hits, err := r.matchProcess(t.Context(), "proc", nil, regions, mem, &st)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 0 || st.RegionsSkipped != 1 || st.RegionsRead != 1 {
		t.Errorf("hits %v, statistics %+v; want no hit, 1 region read, 1 skipped", hits, st)
	}
	if want := int64(8*4096 + 3*4096); st.BytesRead != want {
		t.Errorf("read %d bytes, want %d", st.BytesRead, want)
	}
}

func TestNameAndLibraryFilters(t *testing.T) {
	paths := []string{"/usr/bin/sshd", "/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libc.so.6"}
	for _, tc := range []struct {
		name string
		s    Search
		want string
	}{
		{"name", Search{Names: []string{"^sshd$"}}, `[{"filter":"name","value":"^sshd$"}]`},
		{"library", Search{Libraries: []string{`libssl\.so`}}, `[{"filter":"library","value":"libssl\\.so","library":"/usr/lib/x86_64-linux-gnu/libssl.so.3"}]`},
		{"name and library", Search{Names: []string{"sshd"}, Libraries: []string{"libc"}}, `[{"filter":"name","value":"sshd"},{"filter":"library","value":"libc","library":"/usr/lib/x86_64-linux-gnu/libc.so.6"}]`},
		{"wrong name", Search{Names: []string{"^nginx$"}, Libraries: []string{"libc"}}, `null`},
		{"wrong name, matchany", Search{Names: []string{"^nginx$"}, Libraries: []string{"libc"}, Options: Options{MatchAny: new(true)}}, `[{"filter":"library","value":"libc","library":"/usr/lib/x86_64-linux-gnu/libc.so.6"}]`},
		// The name does not match, so memory is never read (it is nil here).
		{"wrong name skips memory", Search{Names: []string{"^nginx$"}, Contents: []string{"x"}}, `null`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRunner(t, tc.s)
			var st Statistics
			hits, err := r.matchProcess(t.Context(), "sshd", paths, nil, nil, &st)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := json.Marshal(hits[r.searches[0]])
			if string(got) != tc.want {
				t.Errorf("hits %s, want %s", got, tc.want)
			}
		})
	}
}

// TestScanStopsWhenDecided checks that a process's memory is read only
// until every filter of a matchall search has matched, or one filter of a
// matchany search, and never past a search's maxlength.
func TestScanStopsWhenDecided(t *testing.T) {
	const base = 0x7f0000000000
	data := make([]byte, 64*4096)
	copy(data[100:], "FIRST-MARKER")
	copy(data[4096+200:], "SECOND-MARKER")
	copy(data[40*4096:], "LATE-MARKER")
	mem := &fakeMem{base: base, data: data}
	regions := []region{{start: base, end: base + uint64(len(data))}}
	hexOf := func(s string) string { return hex.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name      string
		s         Search
		wantHits  int
		wantBytes int64 // bytes read
	}{
		{"matchall: both found in the first two chunks", Search{Contents: []string{"FIRST-MARKER"}, Bytes: []string{hexOf("SECOND-MARKER")}}, 2, 2 * 4096},
		{"matchany: the first one decides", Search{Contents: []string{"FIRST-MARKER", "LATE-MARKER"}, Options: Options{MatchAny: new(true)}}, 1, 4096},
		{"matchall: one is late, read up to it", Search{Contents: []string{"FIRST-MARKER", "LATE-MARKER"}}, 2, 41 * 4096},
		{"matchall: one is absent, read everything", Search{Contents: []string{"FIRST-MARKER", "ABSENT-MARKER"}}, 0, 64 * 4096},
		{"maxlength stops an absent search", Search{Contents: []string{"ABSENT-MARKER"}, Options: Options{MaxLength: 3 * 4096}}, 0, 3 * 4096},
		{"offset: memory before it is not read", Search{Contents: []string{"LATE-MARKER"}, Options: Options{Offset: 40 * 4096, MaxLength: 4096}}, 1, 4096},
		{"offset inside a chunk: a match starting before it is not found", Search{Contents: []string{"FIRST-MARKER"}, Options: Options{Offset: 105}}, 0, 64 * 4096},
		{"maxlength inside a chunk: a match ending after it is not found", Search{Contents: []string{"FIRST-MARKER"}, Options: Options{MaxLength: 110}}, 0, 4096},
		{"maxlength inside a chunk: a match ending at it is found", Search{Contents: []string{"FIRST-MARKER"}, Options: Options{MaxLength: 112}}, 1, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustRunner(t, tc.s)
			var st Statistics
			hits, err := r.matchProcess(t.Context(), "proc", nil, regions, mem, &st)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(hits[r.searches[0]]); got != tc.wantHits {
				t.Errorf("%d hits, want %d: %+v", got, tc.wantHits, hits[r.searches[0]])
			}
			if st.BytesRead != tc.wantBytes {
				t.Errorf("read %d bytes, want %d", st.BytesRead, tc.wantBytes)
			}
		})
	}
}
