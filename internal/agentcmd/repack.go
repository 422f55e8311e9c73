package agentcmd

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/packed"
)

// maxAgentBinary bounds the binary that repack reads.
const maxAgentBinary = 512 << 20

// repack implements "mig-agent repack -c agent.json -o OUT [-from EXE]":
// it writes a copy of the agent binary (the running one, or -from, which
// may be built for another OS or architecture) with the configuration
// appended, and the keyring, ACL and CA the configuration names carried
// inline, so that OUT is the one file to ship. OUT holds the enrollment
// token and is written 0700.
func repack(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mig-agent repack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "", "agent configuration file to carry (required); the keyring, acl and ca files it names are carried inline")
	out := fs.String("o", "", "file to write (required)")
	from := fs.String("from", "", "agent binary to repack (default: this one)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *conf == "" || *out == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: mig-agent repack -c agent.json -o mig-agent-acme [-from /path/to/mig-agent]")
		return 2
	}
	if err := doRepack(*conf, *out, *from, stdout); err != nil {
		fmt.Fprintf(stderr, "mig-agent repack: %v\n", err)
		return 1
	}
	return 0
}

func doRepack(conf, out, from string, stdout io.Writer) error {
	payload, err := agent.PackConfig(conf)
	if err != nil {
		return err
	}
	if from == "" {
		if from, err = os.Executable(); err != nil {
			return fmt.Errorf("cannot find this binary (give -from): %w", err)
		}
	}
	exe, err := readBounded(from, maxAgentBinary)
	if err != nil {
		return err
	}
	packedExe, err := packed.Append(exe, payload)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	// Write beside the target, then rename: a failed repack leaves no
	// half-written agent where an operator expects a good one.
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(packedExe); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Chmod(0o700); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	// Read it back as the agent will at start.
	p, err := agent.ReadPacked(out)
	if err != nil {
		return fmt.Errorf("the repacked binary does not read back: %w", err)
	}
	if p == nil {
		return fmt.Errorf("the repacked binary %s carries no configuration", out)
	}
	fmt.Fprintf(stdout, "wrote %s (%d bytes, mode 0700: it holds the enrollment token): %s from %s; keys %s; overridable %s\n",
		out, len(packedExe), conf, from, strings.Join(p.Keys, ", "), strings.Join(p.Overridable, ", "))
	return nil
}

// readBounded reads a whole file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// showConfig implements "mig-agent -show-config": what the binary carries
// (enrollment token redacted) and the configuration the agent would run
// with, after the file, the environment and the flags.
func showConfig(path string, setFlags func(*agent.Config, *agent.Packed) error, stdout io.Writer) error {
	p, cfg, err := loadConfig(path, setFlags)
	if err != nil {
		return err
	}
	if p == nil {
		fmt.Fprintln(stdout, "appended configuration: none")
	} else {
		fmt.Fprintf(stdout, "appended configuration: %s\n  keys: %s\n  overridable by a file, MIG_AGENT_* or a flag: %s\n%s\n",
			p.Source, strings.Join(p.Keys, ", "), strings.Join(p.Overridable, ", "), p.Redacted())
	}
	verr := cfg.Validate()
	if cfg.EnrollmentToken != "" {
		cfg.EnrollmentToken = "(redacted)"
	}
	if len(cfg.CAData) > 0 {
		cfg.CAData = fmt.Sprintf("(%d bytes of PEM)", len(cfg.CAData))
	}
	if len(cfg.KeyringData) > 0 {
		cfg.KeyringData = fmt.Sprintf("(%d bytes of armored keys)", len(cfg.KeyringData))
	}
	eff, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "effective configuration:\n%s\n", eff)
	if verr != nil {
		fmt.Fprintf(stdout, "not valid: %v\n", verr)
	}
	return nil
}
