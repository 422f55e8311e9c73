package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/secfile"
)

// AuditStateEnv names the file where "mig audit verify" remembers the
// newest head it verified of each server; default ~/.mig/audit-heads.json.
const AuditStateEnv = "MIG_AUDIT_STATE"

// "mig audit" prints the server's audit log, or exports it to a file;
// "mig audit verify" checks a log's hash chain, from the server or from an
// export file, offline.
//
// Verifying a server's log remembers its head (sequence number and hash)
// in the state file, 0600, and every later verification checks that the
// log still holds that entry unchanged: this catches a log whose newest
// entries were deleted, or that was rewritten up to that entry, which the
// chain alone cannot show. A file is checked against -head when given.

// auditFlags are the flags of "mig audit [-after SEQ] [-render text|json]
// [-export FILE]", and its run.
func auditFlags(fs *flag.FlagSet) runFunc {
	after := fs.Uint64("after", 0, "print the entries after this sequence `number`")
	export := fs.String("export", "", "write the whole log to `file` (one JSON entry a line) and verify it")
	return func(r *runner, g *globals, _ []string) error {
		if *export != "" && *after != 0 {
			return usagef("mig audit: -export writes the whole log; it does not take -after")
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		if *export != "" {
			return r.exportAudit(c, *export)
		}
		// The entries are verified as they are printed: from entry 1 the
		// whole chain, after -after only that the entries printed are
		// unchanged and linked (the first one's prev is taken as given).
		// A break is reported after the listing, which is printed whole: it
		// is the evidence.
		var rows [][]string
		var v audit.Verifier
		first := true
		err = c.EachAuditEntry(r.ctx, *after, func(e audit.Entry) error {
			if first && *after != 0 && e.Seq > 0 {
				v.From(audit.Head{Seq: e.Seq - 1, Hash: e.Prev})
			}
			first = false
			_ = v.Add(e) // the first break is kept in v
			if g.render == RenderJSON {
				return writeJSONLine(r.stdout, e, fmt.Sprintf("audit entry %d", e.Seq))
			}
			rows = append(rows, []string{fmt.Sprint(e.Seq), formatTime(e.Time), e.Actor, e.Kind, e.Object, auditDetails(e.Details)})
			return nil
		})
		if err != nil {
			return err
		}
		if g.render != RenderJSON {
			if err := writeTable(r.stdout, []string{"SEQ", "TIME", "ACTOR", "KIND", "OBJECT", "DETAILS"}, rows); err != nil {
				return err
			}
		}
		if err := v.Done(); err != nil {
			return fmt.Errorf("the audit log printed above does not verify: %w", err)
		}
		return nil
	}
}

// auditVerifyFlags are the flags of "mig audit verify [-file FILE] [-head
// SEQ:HASH]", and its run.
func auditVerifyFlags(fs *flag.FlagSet) runFunc {
	file := fs.String("file", "", "verify this export `file` instead of the server's log")
	headFlag := fs.String("head", "", "also check that the log holds this `SEQ:HASH` (a head verified before)")
	return func(r *runner, g *globals, _ []string) error {
		var expect audit.Head
		if *headFlag != "" {
			var err error
			if expect, err = audit.ParseHead(*headFlag); err != nil {
				return asUsage(err)
			}
		}
		if *file != "" {
			return r.verifyAuditFile(*file, expect)
		}
		cfg, err := r.loadConfig(g)
		if err != nil {
			return err
		}
		c, err := client.New(cfg)
		if err != nil {
			return err
		}
		return r.verifyAuditServer(c, cfg.API.URL, expect)
	}
}

// auditDetails prints details as key=value in key order, quoting values
// that hold spaces or are empty.
func auditDetails(d map[string]string) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		v := d[k]
		if v == "" || strings.ContainsAny(v, " \t\n\"'=") || !isPrint(v) {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, "%s=%s", k, v)
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func isPrint(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// exportAudit writes the server's whole log to name, verifying it on the
// way: the file is written even when the chain is broken (it is the
// evidence), and the break is reported.
func (r *runner) exportAudit(c *client.Client, name string) error {
	f, commit, abort, err := createPrivate(name)
	if err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	defer abort()
	w := bufio.NewWriter(f)
	var v audit.Verifier
	var n int
	var broken error
	err = c.EachAuditEntry(r.ctx, 0, func(e audit.Entry) error {
		n++
		if err := v.Add(e); err != nil && broken == nil {
			broken = err
		}
		return audit.WriteEntry(w, e)
	})
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = commit()
	}
	if err != nil {
		return fmt.Errorf("export audit log to %s: %w", name, err)
	}
	fmt.Fprintf(r.stderr, "%d audit entries written to %s\n", n, name)
	if broken != nil {
		return broken
	}
	fmt.Fprintf(r.stdout, "audit log verified: %d entries, head %s\n", n, v.Head())
	return nil
}

// verifyAuditFile verifies an export file offline.
func (r *runner) verifyAuditFile(name string, expect audit.Head) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	var v audit.Verifier
	v.Expect(expect)
	n := 0
	if err := audit.ReadExport(f, func(e audit.Entry) error { n++; return v.Add(e) }); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := v.Done(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return r.reportVerified(n, v.Head())
}

func (r *runner) reportVerified(n int, h audit.Head) error {
	if n == 0 {
		_, err := fmt.Fprintln(r.stdout, "audit log verified: it is empty")
		return err
	}
	_, err := fmt.Fprintf(r.stdout, "audit log verified: %d entries, head %s\n", n, h)
	return err
}

// verifyAuditServer verifies the server's log against the head remembered
// from the last verification (and expect), then remembers the new head.
func (r *runner) verifyAuditServer(c *client.Client, server string, expect audit.Head) error {
	statePath, err := r.auditStatePath()
	if err != nil {
		return err
	}
	heads, err := readAuditHeads(statePath)
	if err != nil {
		return err
	}
	var v audit.Verifier
	v.Expect(expect)
	pinned := heads[server]
	v.Expect(pinned)
	n := 0
	if err := c.EachAuditEntry(r.ctx, 0, func(e audit.Entry) error { n++; return v.Add(e) }); err != nil {
		return err
	}
	if err := v.Done(); err != nil {
		if pinned.Seq > 0 {
			return fmt.Errorf("%w (the head remembered in %s is %s)", err, statePath, pinned)
		}
		return err
	}
	if h := v.Head(); h.Seq > pinned.Seq {
		heads[server] = h
		if err := writeAuditHeads(statePath, heads); err != nil {
			return err
		}
	}
	return r.reportVerified(n, v.Head())
}

// auditStatePath is $MIG_AUDIT_STATE or ~/.mig/audit-heads.json.
func (r *runner) auditStatePath() (string, error) {
	if p := os.Getenv(AuditStateEnv); p != "" {
		return p, nil
	}
	dir, err := r.userDir()
	if err != nil {
		return "", fmt.Errorf("audit state: %w (or set $%s)", err, AuditStateEnv)
	}
	return filepath.Join(dir, "audit-heads.json"), nil
}

// userDir returns ~/.mig (client.UserDir), warning when it had to be made
// private.
func (r *runner) userDir() (string, error) {
	dir, was, err := client.UserDir()
	if err != nil {
		return "", err
	}
	if was != 0 {
		fmt.Fprintf(r.stderr, "mig: warning: %s was mode %04o, open to other users; made it 0700\n", dir, was)
	}
	return dir, nil
}

// readAuditHeads reads the remembered heads by server URL; a missing file
// is none.
func readAuditHeads(path string) (map[string]audit.Head, error) {
	heads := map[string]audit.Head{}
	// Not secret, but whoever could write it could make verify forget a
	// head.
	if err := secfile.Check(path, secfile.Rule{What: "audit state", Kind: secfile.Public}); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return heads, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit state: %w", err)
	}
	if err := json.Unmarshal(b, &heads); err != nil {
		return nil, fmt.Errorf("audit state %s: %w", path, err)
	}
	for server, h := range heads {
		if _, err := audit.ParseHead(h.String()); err != nil {
			return nil, fmt.Errorf("audit state %s: server %s: %w", path, server, err)
		}
	}
	return heads, nil
}

// writeAuditHeads writes the heads to path, 0600 in a 0700 directory.
func writeAuditHeads(path string, heads map[string]audit.Head) error {
	b, err := json.MarshalIndent(heads, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	f, commit, abort, err := createPrivate(path)
	if err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	defer abort()
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	if err := commit(); err != nil {
		return fmt.Errorf("audit state: %w", err)
	}
	return nil
}

// createPrivate creates a temporary file (0600) next to name. commit
// closes it and renames it over name; abort, deferred, removes it unless it
// was committed.
func createPrivate(name string) (f *os.File, commit func() error, abort func(), err error) {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return nil, nil, nil, err
	}
	done := false
	commit = func() error {
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), name); err != nil {
			return err
		}
		done = true
		return nil
	}
	abort = func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}
	return tmp, commit, abort, nil
}
