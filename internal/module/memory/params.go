package memory

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/migplatform/mig/internal/module"
)

// Parameters are the memory module's JSON parameters: searches by label.
type Parameters struct {
	Searches map[string]Search `json:"searches"`
}

// Search is one labelled search.
type Search struct {
	// Names are regexes on the base name of a process's executable.
	Names []string `json:"names,omitempty"`
	// Libraries are regexes on the paths of the files a process maps.
	Libraries []string `json:"libraries,omitempty"`
	// Contents are regexes over a process's memory.
	Contents []string `json:"contents,omitempty"`
	// Bytes are byte strings, in hexadecimal, to find in memory.
	Bytes []string `json:"bytes,omitempty"`
	// Options tune the search.
	Options Options `json:"options,omitzero"`
}

// Options tune a search.
type Options struct {
	// MatchAll requires every filter to match (the default).
	MatchAll *bool `json:"matchall,omitempty"`
	// MatchAny requires one filter to match; it cannot be combined with
	// MatchAll true.
	MatchAny *bool `json:"matchany,omitempty"`
	// Offset skips this many bytes of readable memory.
	Offset int64 `json:"offset,omitempty"`
	// MaxLength stops after this many bytes of memory (0: no limit).
	MaxLength int64 `json:"maxlength,omitempty"`
	// Window is the overlap kept between chunks for content regexes
	// (DefaultWindow when 0).
	Window int `json:"window,omitempty"`
}

// search is a compiled search.
type search struct {
	label    string
	names    []*regexp.Regexp
	libs     []*regexp.Regexp
	contents []*regexp.Regexp
	needles  [][]byte
	matchAny bool
	offset   int64
	end      int64 // offset+maxlength, or -1 for no limit
	window   int
}

func (s *search) memFilters() int { return len(s.contents) + len(s.needles) }
func (s *search) filters() int    { return len(s.names) + len(s.libs) + s.memFilters() }

// ParseParameters decodes and validates the module's parameters, refusing
// unknown fields. Errors wrap ErrInvalidParameters and name the bad value.
func ParseParameters(raw []byte) (*Runner, error) {
	p, err := module.DecodeParameters[Parameters](raw, ErrInvalidParameters)
	if err != nil {
		return nil, err
	}
	return p.compile()
}

func (p Parameters) compile() (*Runner, error) {
	if len(p.Searches) == 0 {
		return nil, fmt.Errorf("%w: no search", ErrInvalidParameters)
	}
	if len(p.Searches) > MaxSearches {
		return nil, fmt.Errorf("%w: %d searches, at most %d", ErrInvalidParameters, len(p.Searches), MaxSearches)
	}
	r := &Runner{chunkSize: ChunkSize}
	labels := make([]string, 0, len(p.Searches))
	for l := range p.Searches {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	for _, l := range labels {
		s, err := p.Searches[l].compile(l)
		if err != nil {
			return nil, err
		}
		r.searches = append(r.searches, s)
	}
	return r, nil
}

func (s Search) compile(label string) (*search, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: search %q: %s", ErrInvalidParameters, label, fmt.Sprintf(format, args...))
	}
	if label == "" || len(label) > 256 {
		return nil, fmt.Errorf("%w: search label %q must be 1 to 256 bytes", ErrInvalidParameters, label)
	}
	c := &search{label: label, offset: s.Options.Offset, end: -1, window: DefaultWindow}
	n := len(s.Names) + len(s.Libraries) + len(s.Contents) + len(s.Bytes)
	if n == 0 {
		return nil, bad("no filter (names, libraries, contents or bytes)")
	}
	if n > MaxFilters {
		return nil, bad("%d filters, at most %d", n, MaxFilters)
	}
	res := func(what string, list []string) ([]*regexp.Regexp, error) {
		var out []*regexp.Regexp
		for _, v := range list {
			if v == "" || len(v) > MaxRegexBytes {
				return nil, bad("%s regex %q must be 1 to %d bytes", what, truncate(v), MaxRegexBytes)
			}
			re, err := regexp.Compile(v)
			if err != nil {
				return nil, bad("%s regex %q: %v", what, v, err)
			}
			out = append(out, re)
		}
		return out, nil
	}
	var err error
	if c.names, err = res("name", s.Names); err != nil {
		return nil, err
	}
	if c.libs, err = res("library", s.Libraries); err != nil {
		return nil, err
	}
	if c.contents, err = res("content", s.Contents); err != nil {
		return nil, err
	}
	for _, h := range s.Bytes {
		b, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(h), "0x"))
		if err != nil || len(b) == 0 || len(b) > MaxNeedleBytes {
			return nil, bad("bytes %q must be 1 to %d bytes in hexadecimal", truncate(h), MaxNeedleBytes)
		}
		c.needles = append(c.needles, b)
	}
	o := s.Options
	all, anyOpt := o.MatchAll != nil && *o.MatchAll, o.MatchAny != nil && *o.MatchAny
	if all && anyOpt {
		return nil, bad("matchall and matchany are both set")
	}
	c.matchAny = anyOpt || (o.MatchAll != nil && !*o.MatchAll)
	if o.Offset < 0 {
		return nil, bad("offset %d is negative", o.Offset)
	}
	if o.MaxLength < 0 {
		return nil, bad("maxlength %d is negative", o.MaxLength)
	}
	if o.MaxLength > 0 {
		if o.Offset > (1<<62)-o.MaxLength {
			return nil, bad("offset %d plus maxlength %d is too large", o.Offset, o.MaxLength)
		}
		c.end = o.Offset + o.MaxLength
	}
	if o.Window < 0 || o.Window > MaxWindow {
		return nil, bad("window %d must be 0 to %d", o.Window, MaxWindow)
	}
	if o.Window > 0 {
		c.window = o.Window
	}
	return c, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
