package pkgdb

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
)

// MaxLineSize is the longest line accepted in a dpkg status or apk installed
// file.
const MaxLineSize = 1 << 20

// readStanzas calls fn with the fields of each stanza of r: stanzas are
// separated by blank lines; a field is "Key: value" (sep ':' and an optional
// blank) or, for apk, "K:value"; a line starting with a blank continues the
// previous field and is ignored (no field this package reads spans lines).
// Only the keys in want are kept.
func readStanzas(ctx context.Context, r io.Reader, want map[string]bool, fn func(map[string]string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineSize)
	cur := map[string]string{}
	n, line := 0, 0
	flush := func() {
		if len(cur) > 0 {
			fn(cur)
			cur = map[string]string{}
		}
	}
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if text == "" {
			flush()
			n++
			if n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			continue
		}
		if text[0] == ' ' || text[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(text, ":")
		if !ok {
			return fmt.Errorf("%w: line %d: no ':' in %q", ErrMalformed, line, truncate(text))
		}
		if want[k] {
			cur[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: line %d: %w", ErrMalformed, line+1, err)
	}
	flush()
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
