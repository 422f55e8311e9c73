package e2e

import (
	"database/sql"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAuditTrail runs the real mig-server -dev and mig: the local agent's
// first enrollment, launching an action and creating an API key are recorded in the audit log, which mig audit
// verify checks; an entry edited in the SQLite file, then one deleted from
// the middle, is reported by its sequence number.
func TestAuditTrail(t *testing.T) {
	env, _, dir := devPlatform(t)

	if out, errOut, code := run(t, env, "file", "-path", "/etc", "-name", "^passwd$"); code != 0 || !strings.Contains(out, "/etc/passwd") {
		t.Fatalf("mig file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, errOut, code := run(t, env, "apikey", "create", "-name", "audit e2e"); code != 0 {
		t.Fatalf("mig apikey create: exit %d\nstderr:\n%s", code, errOut)
	}
	out, errOut, code := run(t, env, "audit")
	if code != 0 {
		t.Fatalf("mig audit: exit %d\nstderr:\n%s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^1 .* server +investigator\.create `),
		regexp.MustCompile(`(?m)^2 .* agent:[0-9a-f]{32} +agent\.enroll +[0-9a-f]{32} +name=vm publickey=[0-9a-f]{64} source=127\.0\.0\.1$`),
		regexp.MustCompile(`(?m)^3 .* investigator:[0-9A-F]{40} +action\.create +\d+ .*signers=[0-9A-F]{40}`),
		regexp.MustCompile(`(?m)^4 .* action\.launch +\d+ +commands=1`),
		regexp.MustCompile(`(?m)^5 .* apikey\.create +[0-9a-f]{16} .*name="audit e2e"`),
	} {
		if !want.MatchString(out) {
			t.Errorf("mig audit output does not match %s:\n%s", want, out)
		}
	}
	out, errOut, code = run(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "audit log verified: 5 entries, head 5:") {
		t.Fatalf("mig audit verify: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if out, errOut, code = run(t, env, "audit", "-export", export); code != 0 {
		t.Fatalf("mig audit -export: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	db, err := sql.Open("sqlite", filepath.Join(dir, "mig.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var details string
	if err := db.QueryRow(`SELECT details FROM audit_log WHERE seq = 3`).Scan(&details); err != nil {
		t.Fatal(err)
	}
	// Someone with the store rewrites who signed the action's entry.
	atk := attack(t, "audit", "an audit entry edited in the store")
	exec(`UPDATE audit_log SET details = ? WHERE seq = 3`, regexp.MustCompile(`"signers":"[0-9A-F]+"`).ReplaceAllString(details, `"signers":"0000"`))
	_, errOut, code = run(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "audit log broken at entry 3") || !strings.Contains(errOut, "edited") {
		t.Errorf("mig audit verify after editing entry 3: exit %d, stderr %q; want entry 3 named as edited", code, errOut)
	}
	atk.refused()
	exec(`UPDATE audit_log SET details = ? WHERE seq = 3`, details)
	if out, errOut, code = run(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("mig audit verify with entry 3 restored: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// Then deletes the launch entry.
	atk = attack(t, "audit", "an audit entry deleted from the store")
	exec(`DELETE FROM audit_log WHERE seq = 4`)
	_, errOut, code = run(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(errOut, "audit log broken at entry 4") || !strings.Contains(errOut, "deleted") {
		t.Errorf("mig audit verify after deleting entry 4: exit %d, stderr %q; want entry 4 named as deleted", code, errOut)
	}
	// mig audit itself says so after its listing.
	if out, errOut, code = run(t, env, "audit"); code != 1 || !strings.Contains(out, "apikey.create") || !strings.Contains(errOut, "entry 4") {
		t.Errorf("mig audit after deleting entry 4: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	atk.refused()
	// The export made before still verifies offline.
	if out, errOut, code = run(t, env, "audit", "verify", "-file", export); code != 0 || !strings.Contains(out, "5 entries") {
		t.Errorf("mig audit verify -file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
