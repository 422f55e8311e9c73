package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/scribe"
)

// scribeConvertFlags are the flags of "mig scribe convert -i oval.xml [-o
// policy.json]", and its run: it converts OVAL definitions into a Scribe
// policy, written to -o (or stdout), and reports what it skipped on stderr.
func scribeConvertFlags(fs *flag.FlagSet) runFunc {
	in := fs.String("i", "", "the OVAL definitions `file` (XML) to convert")
	out := fs.String("o", "", "write the policy to `file` instead of stdout")
	quiet := fs.Bool("q", false, "do not list what was skipped")
	return func(r *runner, _ *globals, pos []string) error {
		return r.scribeConvert(*in, *out, *quiet, pos)
	}
}

func (r *runner) scribeConvert(in, out string, quiet bool, pos []string) error {
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
