package pgstore

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzPgText checks that what agents send becomes text PostgreSQL accepts,
// unchanged when it already is.
func FuzzPgText(f *testing.F) {
	for _, s := range []string{"", "plain", "nul\x00", "bad\xff\xfe", "é✓", "\x00\x00", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := pgText(s)
		if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("pgText(%q) = %q: not valid PostgreSQL text", s, got)
		}
		if validText(s) && got != s {
			t.Fatalf("pgText(%q) = %q, want it unchanged", s, got)
		}
		if !validText(got) {
			t.Fatalf("validText(pgText(%q)) is false", s)
		}
	})
}

// FuzzSplitTime checks that every time a store keeps comes back exactly.
func FuzzSplitTime(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1741964966), int64(535897932))
	f.Add(int64(-62135596800), int64(1))
	f.Add(int64(253402300799), int64(999999999))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		in := time.Unix(sec, nsec%1e9).UTC()
		if y := in.Year(); y < 0 || y > 9999 {
			return
		}
		ts, ns := splitTime(in)
		if ns < 0 || ns > 999 || ts.Nanosecond()%1000 != 0 {
			t.Fatalf("splitTime(%v) = %v, %d: not microseconds and a remainder", in, ts, ns)
		}
		if got := joinTime(ts, ns); !got.Equal(in) {
			t.Fatalf("joinTime(splitTime(%v)) = %v", in, got)
		}
	})
}
