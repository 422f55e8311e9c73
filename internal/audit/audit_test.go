package audit

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// chain makes n entries.
func chain(n int) []Entry {
	var out []Entry
	var head Head
	now := time.Date(2026, 12, 7, 10, 0, 0, 123456789, time.UTC)
	for i := 0; i < n; i++ {
		e := Next(head, Record{Actor: ActorInvestigatorPrefix + "ABCD", Kind: KindActionCreate, Object: "42",
			Details: map[string]string{"signers": "ABCD,EF01", "name": "find passwd"}}, now.Add(time.Duration(i)*time.Second))
		out = append(out, e)
		head = Head{Seq: e.Seq, Hash: e.Hash}
	}
	return out
}

func verify(entries []Entry, expect ...Head) error {
	var v Verifier
	for _, h := range expect {
		v.Expect(h)
	}
	if err := v.Add(entries...); err != nil {
		return err
	}
	return v.Done()
}

func TestNextChains(t *testing.T) {
	es := chain(3)
	if es[0].Seq != 1 || es[0].Prev != Genesis {
		t.Errorf("first entry seq %d prev %s, want 1 and Genesis", es[0].Seq, es[0].Prev)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Prev != es[i-1].Hash || es[i].Seq != es[i-1].Seq+1 {
			t.Errorf("entry %d does not follow entry %d", es[i].Seq, es[i-1].Seq)
		}
	}
	if es[0].Time.Nanosecond()%1000 != 0 {
		t.Errorf("time %v not truncated to the microsecond", es[0].Time)
	}
	if err := verify(es); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// TestEncodingGolden pins the hashed encoding: a change to it must be a new
// version, since stored logs would stop verifying.
func TestEncodingGolden(t *testing.T) {
	e := Entry{Seq: 1, Time: time.Unix(1, 2000).UTC(), Actor: "server", Kind: "k", Object: "o",
		Details: map[string]string{"b": "2", "a": "1"}, Prev: Genesis}
	want := "mig-audit-v1\x00" +
		"\x00\x00\x00\x00\x00\x00\x00\x01" + // seq
		"\x00\x00\x00\x00\x00\x0f\x42\x42" + // 1000002 µs
		"\x00\x00\x00\x06server" + "\x00\x00\x00\x01k" + "\x00\x00\x00\x01o" +
		"\x00\x00\x00\x02" + "\x00\x00\x00\x01a\x00\x00\x00\x011" + "\x00\x00\x00\x01b\x00\x00\x00\x012" +
		strings.Repeat("\x00", 32)
	if got := string(e.Encode()); got != want {
		t.Errorf("Encode:\n got %q\nwant %q", got, want)
	}
	if got, want := e.ComputeHash(), "48a22ad10d1366ffe2839d241649da4740838e7a1ebb8f2d9e4da1d42df08041"; got != want {
		t.Errorf("ComputeHash = %s, want %s", got, want)
	}
}

// TestAmbiguity checks that moving bytes between fields changes the hash.
func TestAmbiguity(t *testing.T) {
	a := Entry{Seq: 1, Actor: "ab", Kind: "c", Prev: Genesis}
	b := Entry{Seq: 1, Actor: "a", Kind: "bc", Prev: Genesis}
	c := Entry{Seq: 1, Actor: "a", Kind: "bc", Details: map[string]string{"": ""}, Prev: Genesis}
	if a.ComputeHash() == b.ComputeHash() || b.ComputeHash() == c.ComputeHash() {
		t.Error("different entries hash the same")
	}
}

func TestVerifyDetects(t *testing.T) {
	tests := []struct {
		name    string
		edit    func([]Entry) []Entry
		wantSeq uint64
		want    string
	}{
		{"edited details", func(es []Entry) []Entry { es[2].Details = map[string]string{"signers": "EVIL"}; return es }, 3, "edited"},
		{"edited actor", func(es []Entry) []Entry { es[1].Actor = "server"; return es }, 2, "edited"},
		{"edited time", func(es []Entry) []Entry { es[3].Time = es[3].Time.Add(time.Second); return es }, 4, "edited"},
		{"sub-microsecond time", func(es []Entry) []Entry { es[3].Time = es[3].Time.Add(1); return es }, 4, "microsecond"},
		{"rehashed edit", func(es []Entry) []Entry {
			es[2].Object = "43"
			es[2].Hash = es[2].ComputeHash()
			return es
		}, 4, "prev"},
		{"deleted middle", func(es []Entry) []Entry { return append(es[:2:2], es[3:]...) }, 3, "missing (deleted)"},
		{"deleted two", func(es []Entry) []Entry { return append(es[:1:1], es[3:]...) }, 2, "entries 2 to 3 are missing"},
		{"deleted first", func(es []Entry) []Entry { return es[1:] }, 1, "missing"},
		{"deleted and renumbered", func(es []Entry) []Entry {
			out := append(es[:2:2], es[3:]...)
			for i := 2; i < len(out); i++ {
				out[i].Seq--
				out[i].Hash = out[i].ComputeHash()
			}
			return out
		}, 3, "prev"},
		{"swapped", func(es []Entry) []Entry { es[1], es[2] = es[2], es[1]; return es }, 2, "missing"},
		{"duplicated", func(es []Entry) []Entry { return append(es[:3:3], es[2:]...) }, 3, "appears again"},
		{"bad hash text", func(es []Entry) []Entry { es[0].Hash = "xyz"; return es }, 1, "hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verify(tt.edit(chain(5)))
			var be *BreakError
			if !errors.As(err, &be) || !errors.Is(err, ErrBroken) {
				t.Fatalf("verify: %v, want a BreakError", err)
			}
			if be.Seq != tt.wantSeq || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("verify: %v\nwant entry %d and %q", err, tt.wantSeq, tt.want)
			}
		})
	}
}

func TestVerifyExpectedHead(t *testing.T) {
	es := chain(5)
	head := Head{Seq: 4, Hash: es[3].Hash}
	if err := verify(es, head); err != nil {
		t.Errorf("whole chain with head 4: %v", err)
	}
	err := verify(es[:2], head)
	var be *BreakError
	if !errors.As(err, &be) || be.Seq != 3 || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated to 2 with head 4: %v, want a break at 3 naming truncation", err)
	}
	// A chain rewritten from entry 2 (valid in itself) is caught at the
	// remembered head.
	rewritten := chain(1)
	h := Head{Seq: 1, Hash: rewritten[0].Hash}
	for i := 0; i < 4; i++ {
		e := Next(h, Record{Actor: "server", Kind: KindAPIKeyCreate}, time.Now())
		rewritten = append(rewritten, e)
		h = Head{Seq: e.Seq, Hash: e.Hash}
	}
	err = verify(rewritten, head)
	if !errors.As(err, &be) || be.Seq != 4 || !strings.Contains(err.Error(), "rewritten") {
		t.Errorf("rewritten chain with head 4: %v, want a break at 4", err)
	}
}

func TestVerifyInPages(t *testing.T) {
	es := chain(7)
	var v Verifier
	for i := 0; i < len(es); i += 3 {
		if err := v.Add(es[i:min(i+3, len(es))]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.Done(); err != nil || v.Head().Seq != 7 || v.Head().Hash != es[6].Hash {
		t.Errorf("after pages: head %v, err %v", v.Head(), err)
	}
}

func TestNextCleans(t *testing.T) {
	long := strings.Repeat("é", MaxValue)
	e := Next(Head{}, Record{Actor: "a\x00b\xff", Kind: "k", Details: map[string]string{"v": long}}, time.Now())
	if e.Actor != "a\uFFFDb\uFFFD" {
		t.Errorf("actor %q, want NUL and invalid UTF-8 replaced", e.Actor)
	}
	if v := e.Details["v"]; len(v) > MaxValue || !strings.HasSuffix(v, "…") {
		t.Errorf("long value is %d bytes, want at most %d, marked cut", len(v), MaxValue)
	}
	if err := verify([]Entry{e}); err != nil {
		t.Errorf("cleaned entry does not verify: %v", err)
	}
}

func TestExportRoundTrip(t *testing.T) {
	es := chain(4)
	var buf bytes.Buffer
	for _, e := range es {
		if err := WriteEntry(&buf, e); err != nil {
			t.Fatal(err)
		}
	}
	var v Verifier
	n := 0
	if err := ReadExport(&buf, func(e Entry) error { n++; return v.Add(e) }); err != nil {
		t.Fatal(err)
	}
	if err := v.Done(); err != nil || n != 4 {
		t.Errorf("read %d entries, verify %v", n, err)
	}
}

func TestParseEntryRefuses(t *testing.T) {
	good := `{"seq":1,"time":"2026-12-07T10:00:00Z","actor":"server","kind":"k","object":"o","prev":"` + Genesis + `","hash":"` + Genesis + `"}`
	if _, err := ParseEntry([]byte(good)); err != nil {
		t.Fatalf("good entry: %v", err)
	}
	for name, in := range map[string]string{
		"not json":      `{`,
		"unknown field": strings.Replace(good, `"seq"`, `"extra":1,"seq"`, 1),
		"missing hash":  strings.Replace(good, `,"hash":"`+Genesis+`"`, ``, 1),
		"seq zero":      strings.Replace(good, `"seq":1`, `"seq":0`, 1),
		"bad time":      strings.Replace(good, `2026-12-07T10:00:00Z`, `yesterday`, 1),
		"upper hex":     strings.Replace(good, `"hash":"0`, `"hash":"A`, 1),
		"trailing":      good + ` {}`,
		"long actor":    strings.Replace(good, `"server"`, `"`+strings.Repeat("a", MaxField+1)+`"`, 1),
	} {
		if _, err := ParseEntry([]byte(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	err := ReadExport(strings.NewReader(good+"\n{\n"), func(Entry) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadExport with a bad line 2: %v, want it named", err)
	}
}

func TestParseHead(t *testing.T) {
	h, err := ParseHead("12:" + Genesis)
	if err != nil || h.Seq != 12 || h.String() != "12:"+Genesis {
		t.Errorf("ParseHead: %v %v", h, err)
	}
	for _, s := range []string{"", "0:" + Genesis, "x:" + Genesis, "12", "12:abc", "+12:" + Genesis} {
		if _, err := ParseHead(s); err == nil {
			t.Errorf("ParseHead(%q): no error", s)
		}
	}
}

// FuzzReadExport: any input either fails to parse with an error or parses
// into entries that write back to lines parsing to the same entries, and
// verification never panics.
func FuzzReadExport(f *testing.F) {
	var buf bytes.Buffer
	for _, e := range chain(2) {
		_ = WriteEntry(&buf, e)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"seq":1,"time":"2026-12-07T10:00:00Z","actor":"","kind":"","object":"","details":{"a":"b"},"prev":"` + Genesis + `","hash":"` + Genesis + `"}`))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []Entry
		var v Verifier
		err := ReadExport(bytes.NewReader(data), func(e Entry) error {
			got = append(got, e)
			_ = v.Add(e)
			return nil
		})
		_ = v.Done()
		if err != nil {
			return
		}
		var out bytes.Buffer
		for _, e := range got {
			if err := WriteEntry(&out, e); err != nil {
				t.Fatalf("WriteEntry: %v", err)
			}
		}
		var again []Entry
		if err := ReadExport(&out, func(e Entry) error { again = append(again, e); return nil }); err != nil {
			t.Fatalf("re-reading written entries: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("re-read %d entries, want %d", len(again), len(got))
		}
		for i := range got {
			if got[i].ComputeHash() != again[i].ComputeHash() {
				t.Fatalf("entry %d hashes differently after a round trip", i)
			}
		}
	})
}
