package cli

import (
	"database/sql"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestAudit runs mig audit, audit -export and audit verify against the real
// API, then tampers with the store and the export: an edited entry is
// named, and so is a log whose newest entry was deleted (the head that
// verify remembered is gone).
func TestAudit(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "mig.db")
	st, err := sqlitestore.Open(t.Context(), dbPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inv, err := api.NewInvestigator("alice", string(investigatorKey(t, 0).pub), api.AllPermissions, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateInvestigator(t.Context(), inv); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(api.New(api.Config{Store: st, Dispatcher: nopDispatcher{}}))
	t.Cleanup(srv.Close)
	cfg := writeConfig(t, srv, 0)
	t.Setenv("MIG_API_KEY", "")
	state := filepath.Join(t.TempDir(), "state", "audit-heads.json")
	t.Setenv(AuditStateEnv, state)

	for _, args := range [][]string{
		{"audit", "-c", cfg, "-head", "x"},
		{"audit", "rewrite", "-c", cfg},
		{"audit", "verify", "-c", cfg, "-head", "0:abc"},
		{"audit", "-c", cfg, "-export", "f", "-after", "2"},
	} {
		if code, _, stderr := run(t, args...); code != ExitUsage {
			t.Errorf("mig %s: exit %d (%s), want %d", strings.Join(args, " "), code, stderr, ExitUsage)
		}
	}

	for _, name := range []string{"one", "two", "three"} {
		if code, _, stderr := run(t, "apikey", "create", "-c", cfg, "-name", name); code != 0 {
			t.Fatalf("mig apikey create: %d %s", code, stderr)
		}
	}
	code, stdout, stderr := run(t, "audit", "-c", cfg)
	if code != 0 || strings.Count(stdout, "apikey.create") != 3 || !strings.Contains(stdout, "name=two") {
		t.Fatalf("mig audit: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "audit", "-c", cfg, "-after", "2", "-render", "json")
	if code != 0 || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"seq":3`) {
		t.Errorf("mig audit -after 2 -render json: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = run(t, "audit", "verify", "-c", cfg)
	if code != 0 || !strings.Contains(stdout, "audit log verified: 3 entries, head 3:") {
		t.Fatalf("mig audit verify: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	fi, err := os.Stat(state)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %s: %v, mode %v; want 0600", state, err, fi.Mode())
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, stdout, stderr = run(t, "audit", "-c", cfg, "-export", export); code != 0 || !strings.Contains(stdout, "verified: 3 entries") {
		t.Fatalf("mig audit -export: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr = run(t, "audit", "verify", "-file", export); code != 0 || !strings.Contains(stdout, "verified: 3 entries") {
		t.Fatalf("mig audit verify -file: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// An edited export file.
	b, _ := os.ReadFile(export)
	edited := filepath.Join(t.TempDir(), "edited.jsonl")
	os.WriteFile(edited, []byte(strings.Replace(string(b), `"name":"two"`, `"name":"TWO"`, 1)), 0o600)
	if code, _, stderr = run(t, "audit", "verify", "-file", edited); code != ExitFailure || !strings.Contains(stderr, "broken at entry 2") {
		t.Errorf("mig audit verify -file edited: exit %d, stderr %q; want entry 2 named", code, stderr)
	}
	// A file cut short, checked against a head verified before.
	lines := strings.SplitAfter(string(b), "\n")
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	os.WriteFile(cut, []byte(lines[0]), 0o600)
	head := strings.TrimSpace(stdout[strings.Index(stdout, "head ")+5:])
	if code, _, stderr = run(t, "audit", "verify", "-file", cut, "-head", head); code != ExitFailure || !strings.Contains(stderr, "truncated") {
		t.Errorf("mig audit verify -file cut -head %s: exit %d, stderr %q; want truncation", head, code, stderr)
	}

	// The store itself: the newest entry deleted, then an entry edited.
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM audit_log WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "audit", "verify", "-c", cfg)
	if code != ExitFailure || !strings.Contains(stderr, "broken at entry 3") || !strings.Contains(stderr, "truncated") {
		t.Errorf("mig audit verify after deleting the newest entry: exit %d, stderr %q; want truncation at 3", code, stderr)
	}
	if _, err := db.Exec(`UPDATE audit_log SET actor = 'server' WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = run(t, "audit", "verify", "-c", cfg)
	if code != ExitFailure || !strings.Contains(stderr, "broken at entry 1") || !strings.Contains(stderr, "edited") {
		t.Errorf("mig audit verify after editing entry 1: exit %d, stderr %q; want entry 1 named", code, stderr)
	}
	// Printing verifies too: the listing is printed whole (it is the
	// evidence), then the break is named. Read from after the edited
	// entry, the rest still links up.
	code, stdout, stderr = run(t, "audit", "-c", cfg)
	if code != ExitFailure || strings.Count(stdout, "apikey.create") != 2 || !strings.Contains(stderr, "broken at entry 1") {
		t.Errorf("mig audit after editing entry 1: exit %d\nstdout:\n%s\nstderr:\n%s\nwant the listing and entry 1 named", code, stdout, stderr)
	}
	if code, stdout, stderr = run(t, "audit", "-c", cfg, "-after", "1"); code != 0 || strings.Count(stdout, "apikey.create") != 1 {
		t.Errorf("mig audit -after 1 after editing entry 1: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if _, err := db.Exec(`UPDATE audit_log SET object = 'x' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr = run(t, "audit", "-c", cfg, "-after", "1"); code != ExitFailure || !strings.Contains(stderr, "broken at entry 2") {
		t.Errorf("mig audit -after 1 after editing entry 2: exit %d, stderr %q; want entry 2 named", code, stderr)
	}
}
