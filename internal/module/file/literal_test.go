package file

import (
	"bytes"
	"regexp"
	"testing"
)

// naiveAny is the definition scanAny must agree with: some line of block,
// without its end of line, matches re.
func naiveAny(re *regexp.Regexp, block []byte) bool {
	for rest := block; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		if re.Match(line) {
			return true
		}
	}
	return false
}

func scanWith(t testing.TB, src string, block []byte) (got, want, ok bool) {
	re, err := regexp.Compile(src)
	if err != nil {
		return false, false, false
	}
	e := &engine{r: &runner{regexes: []contentRegex{{re: re, pre: newPrefilter(src)}}}}
	w := newWorker(e)
	return w.scanAny(block, 0), naiveAny(re, block), true
}

func TestPrefilter(t *testing.T) {
	tests := []struct {
		src      string
		wantLits []string // nil: no prefilter
	}{
		{"AKIA[0-9A-Z]{16}", []string{"AKIA"}},
		{"(?i)password\\s*=\\s*hunter2", []string{"hunter2"}},
		{"(?i)kelvin", []string{"elvin"}},
		{"colou?r", []string{"colour", "color"}},
		{"^(foo|bar)baz$", []string{"foobaz", "barbaz"}},
		{"[e]lasticsearch", []string{"elasticsearch"}},
		{"a.*b", []string{"a"}},
		{".*", nil},
		{"\\d+", nil},
		{"x?", nil},
		{"(abc|.)", nil},
	}
	for _, tt := range tests {
		p := newPrefilter(tt.src)
		var got []string
		if p != nil {
			for _, l := range p.lits {
				got = append(got, l.s)
			}
		}
		if len(got) != len(tt.wantLits) {
			t.Errorf("newPrefilter(%q) literals = %q, want %q", tt.src, got, tt.wantLits)
			continue
		}
		for i := range got {
			if got[i] != tt.wantLits[i] {
				t.Errorf("newPrefilter(%q) literals = %q, want %q", tt.src, got, tt.wantLits)
			}
		}
	}
}

func TestScanAnyAgreesWithLines(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 1<<20)
	tests := []struct {
		src   string
		block string
	}{
		{"AKIA[0-9A-Z]{16}", "nothing\naws = AKIA0123456789ABCDEF\n"},
		{"AKIA[0-9A-Z]{16}", "AKIA too short\nAKIA\n"},
		{"(?i)password\\s*=\\s*hunter2", "PassWord =  HUNTER2\r\n"},
		{"(?i)kelvin", "\u212Aelvin\n"},
		{"(?i)^passwordauthentication no$", "PasswordAuthentication no\r\n"},
		{"no$", "no\r\n"},
		{"no\r$", "no\r\n"},
		{"^b", "ab\nb\n"},
		{"a\nb", "a\nb\n"},
		{"NEEDLE$", string(long) + "NEEDLE\n"},
		{"caf.", "caf\xe9\n"},
		{"\ufffd", "\xff\n"},
		{"(foo|bar)+z", "foofoo\nbarz\n"},
	}
	for _, tt := range tests {
		got, want, ok := scanWith(t, tt.src, []byte(tt.block))
		if !ok {
			t.Fatalf("%q does not compile", tt.src)
		}
		if got != want {
			t.Errorf("scanAny(%q) on %.40q = %v, want %v", tt.src, tt.block, got, want)
		}
	}
}

// FuzzScanAny checks that the literal prefilter never changes whether a
// regex matches a line.
func FuzzScanAny(f *testing.F) {
	for _, s := range [][2]string{
		{"AKIA[0-9A-Z]{16}", "x AKIA0123456789ABCDEF\n"},
		{"(?i)hunter2", "HUNTER2\r\n"},
		{"(?i)k", "\u212A\n"},
		{"colou?r|gr[ae]y", "grey\ncolor"},
		{"^$", "\n\n"},
		{"a\\Sb", "a\xffb"},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, src string, block []byte) {
		got, want, ok := scanWith(t, src, block)
		if ok && got != want {
			t.Errorf("scanAny(%q) on %q = %v, want %v", src, block, got, want)
		}
	})
}
