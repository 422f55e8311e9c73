package file

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/migplatform/mig/internal/action"
)

// PrintResult writes one line per file found, as MIG prints them:
//
//	<agent> <file> [lastmodified:<time>, mode:<mode>, size:<n>] in search '<label>'
//
// with ", sha256:<hex>" inside the brackets when the search returned it,
// and, for a matchany search, the filters that matched after it:
// " on checks name='^x$' content='y'". Searches are printed in label
// order. It prints nothing when nothing was found. File names come from
// the endpoint, where anyone may name a file: a string holding a newline,
// a terminal escape sequence or any other character that does not print
// is written as a Go string literal ("/tmp/a\nb"), so that every match is
// one line and nothing reaches the terminal as a control sequence.
func (fileModule) PrintResult(w io.Writer, agentName string, r action.Result) error {
	if len(r.Elements) == 0 || string(r.Elements) == "null" {
		return nil
	}
	var el Elements
	if err := json.Unmarshal(r.Elements, &el); err != nil {
		return fmt.Errorf("file module elements: %w", err)
	}
	labels := make([]string, 0, len(el))
	for l := range el {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	var line strings.Builder
	for _, label := range labels {
		for _, m := range el[label] {
			fi := m.FileInfo
			line.Reset()
			fmt.Fprintf(&line, "%s %s [lastmodified:%s, mode:%s, size:%d", printable(agentName), printable(m.File),
				printable(fi.LastModified), printable(fi.Mode), fi.Size)
			if fi.SHA256 != "" {
				line.WriteString(", sha256:" + printable(fi.SHA256))
			}
			fmt.Fprintf(&line, "] in search '%s'", printable(label))
			if c := m.Checks; c != nil {
				line.WriteString(" on checks")
				for _, kv := range []struct {
					name   string
					values []string
				}{
					{"name", c.Names}, {"size", c.Sizes}, {"mode", c.Modes}, {"mtime", c.Mtimes},
					{"content", c.Contents}, {"md5", c.MD5}, {"sha1", c.SHA1}, {"sha2", c.SHA2}, {"sha3", c.SHA3},
				} {
					for _, v := range kv.values {
						fmt.Fprintf(&line, " %s='%s'", kv.name, printable(v))
					}
				}
			}
			line.WriteByte('\n')
			if _, err := io.WriteString(w, line.String()); err != nil {
				return err
			}
		}
	}
	return nil
}

// printable returns s as it is when every character of s prints, and as a
// double-quoted Go string literal otherwise.
func printable(s string) string {
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
