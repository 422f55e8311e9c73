package scribe

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Output formats of the printers.
const (
	// FormatLine prints one line per test: its result, id and name, and
	// the identifiers of the candidates that passed.
	FormatLine = "line"
	// FormatHuman prints each test over several lines, with its
	// description, aliases, tags and every candidate's result.
	FormatHuman = "human"
	// FormatJSON prints one TestResult as JSON per line.
	FormatJSON = "json"
)

// OnlyTrue returns the results whose master result is true.
func OnlyTrue(results []TestResult) []TestResult {
	var out []TestResult
	for _, r := range results {
		if r.MasterResult {
			out = append(out, r)
		}
	}
	return out
}

// Print writes results in format (FormatLine, FormatHuman or FormatJSON),
// every line starting with prefix (an agent's name and a space, or
// nothing). Values from the endpoint are printed on one line each:
// control characters are escaped.
func Print(w io.Writer, prefix, format string, results []TestResult) error {
	var b strings.Builder
	for _, r := range results {
		b.Reset()
		switch format {
		case FormatJSON:
			line, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("encoding the result of test %q: %w", r.TestID, err)
			}
			b.WriteString(prefix)
			b.Write(line)
			b.WriteByte('\n')
		case FormatHuman:
			writeHuman(&b, prefix, r)
		case FormatLine, "":
			writeLine(&b, prefix, r)
		default:
			return fmt.Errorf("output format %q is unknown (want %s, %s or %s)", format, FormatLine, FormatHuman, FormatJSON)
		}
		if _, err := io.WriteString(w, b.String()); err != nil {
			return err
		}
	}
	return nil
}

// writeLine writes one test on one line:
//
//	<prefix>[true] <testid> (<name>): libnss3:amd64 2:3.19.1-1
func writeLine(b *strings.Builder, prefix string, r TestResult) {
	fmt.Fprintf(b, "%s[%s] %s", prefix, r.Result(), clean(r.TestID))
	if r.Name != "" {
		fmt.Fprintf(b, " (%s)", clean(r.Name))
	}
	switch {
	case r.Error != "":
		fmt.Fprintf(b, ": %s", clean(r.Error))
	case r.Skipped != "":
		fmt.Fprintf(b, ": not run, %s", clean(r.Skipped))
	default:
		var passed []string
		for _, s := range r.Results {
			if s.Result {
				passed = append(passed, clean(s.Identifier)+" "+clean(s.Value))
			}
		}
		if len(passed) > 0 {
			fmt.Fprintf(b, ": %s", strings.Join(passed, ", "))
		}
	}
	b.WriteByte('\n')
}

// writeHuman writes one test over several lines:
//
//	<prefix>test <testid>: true
//	<prefix>  name: ...
//	<prefix>  description: ...
//	<prefix>  aliases: CVE-1, CVE-2
//	<prefix>  tags: key=value, ...
//	<prefix>  error: ...
//	<prefix>  [true] libnss3:amd64 2:3.19.1-1
func writeHuman(b *strings.Builder, prefix string, r TestResult) {
	fmt.Fprintf(b, "%stest %s: %s\n", prefix, clean(r.TestID), r.Result())
	if r.Name != "" {
		fmt.Fprintf(b, "%s  name: %s\n", prefix, clean(r.Name))
	}
	if r.Description != "" {
		fmt.Fprintf(b, "%s  description: %s\n", prefix, clean(r.Description))
	}
	if len(r.Aliases) > 0 {
		al := make([]string, len(r.Aliases))
		for i, a := range r.Aliases {
			al[i] = clean(a)
		}
		fmt.Fprintf(b, "%s  aliases: %s\n", prefix, strings.Join(al, ", "))
	}
	if len(r.Tags) > 0 {
		tags := make([]string, len(r.Tags))
		for i, t := range r.Tags {
			tags[i] = clean(t.Key) + "=" + clean(t.Value)
		}
		fmt.Fprintf(b, "%s  tags: %s\n", prefix, strings.Join(tags, ", "))
	}
	if r.Error != "" {
		fmt.Fprintf(b, "%s  error: %s\n", prefix, clean(r.Error))
	}
	if r.Skipped != "" {
		fmt.Fprintf(b, "%s  not run: %s\n", prefix, clean(r.Skipped))
	}
	if r.Error == "" && r.Skipped == "" && len(r.Results) == 0 {
		fmt.Fprintf(b, "%s  no candidates\n", prefix)
	}
	for _, s := range r.Results {
		fmt.Fprintf(b, "%s  [%t] %s %s\n", prefix, s.Result, clean(s.Identifier), clean(s.Value))
	}
}

// clean keeps a value on one line: control characters are quoted.
func clean(s string) string {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			q := fmt.Sprintf("%q", s)
			return q[1 : len(q)-1]
		}
	}
	return s
}
