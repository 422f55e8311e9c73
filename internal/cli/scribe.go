package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/scribe"
)

// scribeConvertCmd runs "mig scribe convert -i oval.xml [-o policy.json]":
// it converts OVAL definitions into a Scribe policy, written to -o (or
// stdout), and reports what it skipped on stderr.
func (r *runner) scribeConvertCmd(args []string) error {
	fs := flag.NewFlagSet("mig scribe convert", flag.ContinueOnError)
	var in, out string
	var quiet bool
	fs.StringVar(&in, "i", "", "the OVAL definitions `file` (XML) to convert")
	fs.StringVar(&out, "o", "", "write the policy to `file` instead of stdout")
	fs.BoolVar(&quiet, "q", false, "do not list what was skipped")
	pos, err := r.parseFlags(fs, args, func(w io.Writer) {
		fmt.Fprintf(w, "usage: mig scribe convert -i oval.xml [-o policy.json] [-q]\n\n"+
			"Convert Ubuntu or Red Hat OVAL definitions into a Scribe policy for\n"+
			"mig scribe -path policy.json: one evr test per vulnerable package and fixed\n"+
			"version, with the advisory, CVEs and affected release, depending on the\n"+
			"release checks of the definition.\n\nflags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	})
	if err != nil {
		return err
	}
	if in == "" && len(pos) == 1 {
		in, pos = pos[0], nil
	}
	if len(pos) > 0 {
		return usagef("mig scribe convert: unexpected argument %q", pos[0])
	}
	if in == "" {
		return usagef("mig scribe convert: -i is required: the OVAL file")
	}
	f, err := os.Open(in)
	if err != nil {
		return asUsage(fmt.Errorf("mig scribe convert: %w", err))
	}
	defer f.Close()
	conv, err := scribe.ConvertOVAL(f)
	if err != nil {
		return asUsage(fmt.Errorf("mig scribe convert: %s: %w", in, err))
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conv.Document); err != nil {
		return fmt.Errorf("mig scribe convert: encoding the policy: %w", err)
	}
	if out == "" {
		if _, err := r.stdout.Write(buf.Bytes()); err != nil {
			return err
		}
	} else if err := atomicfile.Write(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("mig scribe convert: %w", err)
	}
	if !quiet {
		for _, s := range conv.Skipped {
			fmt.Fprintf(r.stderr, "skipped: %s\n", s)
		}
	}
	fmt.Fprintf(r.stderr, "%d definitions: %d tests on %d objects, %d checks skipped\n",
		conv.Definitions, len(conv.Document.Tests), len(conv.Document.Objects), len(conv.Skipped))
	return nil
}
