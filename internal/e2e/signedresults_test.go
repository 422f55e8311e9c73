package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"

	_ "modernc.org/sqlite"
)

// TestSignedResults runs the real mig-server, a real mig-agent process and
// mig: the agent signs its result and mig results verifies it, pinning the
// agent's key on first use; a result edited in the SQLite store is reported
// FORGED (and, with -requiresigned, not printed and a failure); a pin that
// is not the agent's key is reported KEY CHANGED; a distributed pin file
// verifies, and one without the agent leaves its result unverified.
func TestSignedResults(t *testing.T) {
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG=", "MIG_AGENTKEYS="}
	srv := start(t, env, bins.server, "-dev", "-no-agent", "-api", apiAddr, "-relay", relayAddr)
	waitFor(t, 30*time.Second, "mig-server", func() bool { return strings.Contains(srv.output(), "API:") })
	dir := filepath.Join(home, ".mig", "dev")
	agentCfg := writeAgentConfigWith(t, dir, "https://"+apiAddr+"/api/v1", func(c map[string]any) { c["name"] = "signed-a" })
	start(t, nil, bins.agent, "-c", agentCfg)
	waitFor(t, 30*time.Second, "the agent to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Contains(out, `"online"`)
	})

	// Launching verifies the result as it arrives, and pins the key of an
	// agent seen for the first time.
	out, errOut, code := run(t, env, "file", "-path", "/etc", "-name", "^passwd$", "-render", "json")
	if code != 0 || !strings.Contains(out, "/etc/passwd") || !strings.Contains(out, `"signature":"pinned"`) ||
		!strings.Contains(errOut, "pinned the key of agent signed-a (") || !strings.Contains(errOut, "signatures: 1 verified (1 pinned now)") {
		t.Fatalf("mig file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var first struct {
		Action  uint64 `json:"action"`
		AgentID string `json:"agentid"`
	}
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &first); err != nil || first.Action == 0 {
		t.Fatalf("mig file -render json: no action id in %q: %v", out, err)
	}
	id := fmt.Sprint(first.Action)
	pinPath := filepath.Join(home, ".mig", "agentkeys")
	results := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, env, append([]string{"results", id}, args...)...)
	}

	// Then the result verifies against the pin.
	out, errOut, code = results()
	if code != 0 || !strings.Contains(out, "signed-a /etc/passwd") || strings.Contains(errOut, "pinned the key") ||
		!strings.Contains(errOut, "signatures: 1 verified (0 pinned now)") {
		t.Fatalf("mig results (first use): exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for p, want := range map[string]os.FileMode{filepath.Dir(pinPath): 0o700, pinPath: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %o", p, fi.Mode(), err, want)
		}
	}
	out, errOut, code = results("-requiresigned", "-render", "json")
	if code != 0 || !strings.Contains(out, `"signature":"verified"`) || !strings.Contains(errOut, "signatures: 1 verified (0 pinned now)") {
		t.Fatalf("mig results -requiresigned: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	pinned, err := os.ReadFile(pinPath)
	if err != nil {
		t.Fatal(err)
	}

	// Someone with the store changes what the agent found.
	db, err := sql.Open("sqlite", filepath.Join(dir, "mig.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Someone with the store changes the agent's answer in each way a
	// column allows; mig results -requiresigned refuses every one.
	var stored, storedName string
	if err := db.QueryRow(`SELECT results, agent_name FROM commands WHERE action_id = ?`, first.Action).Scan(&stored, &storedName); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		t.Helper()
		if _, err := db.Exec(`UPDATE commands SET results = ?, status = 'success', code = '', error = '', agent_name = ? WHERE action_id = ?`,
			stored, storedName, first.Action); err != nil {
			t.Fatal(err)
		}
	}
	var signature string
	if err := db.QueryRow(`SELECT signature FROM commands WHERE action_id = ?`, first.Action).Scan(&signature); err != nil {
		t.Fatalf("the stored result has no signature: %v", err)
	}
	for _, tt := range []struct {
		name, update string
		args         []any
		want         string
	}{
		{"a stored result's elements edited", `UPDATE commands SET results = ? WHERE action_id = ?`,
			[]any{strings.ReplaceAll(stored, "/etc/passwd", "/etc/shadow"), first.Action}, "FORGED: the result of agent signed-a"},
		{"a stored result turned into a failure", `UPDATE commands SET status = 'failed', code = 'module_failed', error = 'x' WHERE action_id = ?`,
			[]any{first.Action}, "does not match the result"},
		{"a stored result moved to another agent name", `UPDATE commands SET agent_name = 'db01' WHERE action_id = ?`,
			[]any{first.Action}, `signed by the agent named "signed-a", and shown as "db01"`},
		{"a stored result's signature removed", `UPDATE commands SET signature = NULL WHERE action_id = ?`,
			[]any{first.Action}, "-requiresigned: 1 results are not signed"},
	} {
		atk := attack(t, "signed-results", tt.name)
		if _, err := db.Exec(tt.update, tt.args...); err != nil {
			t.Fatal(err)
		}
		out, errOut, code = results("-requiresigned")
		if code == 1 && strings.Contains(errOut, tt.want) && !strings.Contains(out, "/etc/") {
			atk.refused()
		} else {
			atk.executed("mig results -requiresigned: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, %q and nothing printed", code, out, errOut, tt.want)
		}
		restore()
		if _, err := db.Exec(`UPDATE commands SET signature = ? WHERE action_id = ?`, signature, first.Action); err != nil {
			t.Fatal(err)
		}
	}
	// Without -requiresigned, what the server claims is printed, and
	// flagged.
	if _, err := db.Exec(`UPDATE commands SET results = ? WHERE action_id = ?`,
		strings.ReplaceAll(stored, "/etc/passwd", "/etc/shadow"), first.Action); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = results()
	if code != 1 || !strings.Contains(out, "/etc/shadow") || !strings.Contains(errOut, "1 FORGED") {
		t.Errorf("mig results after editing the store: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and FORGED", code, out, errOut)
	}
	restore()
	if _, errOut, code = results("-requiresigned"); code != 0 {
		t.Fatalf("mig results with the result restored: exit %d\nstderr:\n%s", code, errOut)
	}

	// The pin is not the agent's key.
	other, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	line := fmt.Sprintf("signed-a %s %s\n", action.AgentID(other), base64.StdEncoding.EncodeToString(other))
	if err := os.WriteFile(pinPath, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	atk := attack(t, "signed-results", "an agent's results signed by another key than its pin")
	out, errOut, code = results()
	if code == 1 && strings.Contains(errOut, "KEY CHANGED: agent signed-a ("+first.AgentID+")") &&
		strings.Contains(errOut, "mig agentkeys forget \"signed-a\"") {
		atk.refused()
	} else {
		atk.executed("mig results with another key pinned: exit %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1 and KEY CHANGED", code, out, errOut)
	}
	if _, errOut, code = run(t, env, "agentkeys", "forget", "signed-a"); code != 0 {
		t.Fatalf("mig agentkeys forget: exit %d\nstderr:\n%s", code, errOut)
	}
	if _, errOut, code = results(); code != 0 || !strings.Contains(errOut, "pinned the key of agent signed-a ("+first.AgentID+") on first use") ||
		!strings.Contains(errOut, "1 pinned now") {
		t.Fatalf("mig results after forget: exit %d\nstderr:\n%s", code, errOut)
	}
	if got, _ := os.ReadFile(pinPath); string(got) != string(pinned) {
		t.Errorf("pinned again:\n%s\nwant the first pin:\n%s", got, pinned)
	}

	// A pin file the operator distributes: export, then verify against it
	// only; a file without the agent verifies nothing, and pins nothing.
	dist := filepath.Join(t.TempDir(), "fleet-keys")
	if _, errOut, code = run(t, env, "agentkeys", "export", "-o", dist); code != 0 {
		t.Fatalf("mig agentkeys export: exit %d\nstderr:\n%s", code, errOut)
	}
	if _, errOut, code = results("-pinfile", dist, "-requiresigned"); code != 0 || !strings.Contains(errOut, "1 verified (0 pinned now)") {
		t.Errorf("mig results -pinfile (exported): exit %d\nstderr:\n%s", code, errOut)
	}
	empty := filepath.Join(t.TempDir(), "empty-keys")
	if err := os.WriteFile(empty, []byte("# no agents\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = results("-pinfile", empty, "-requiresigned")
	if code != 1 || strings.Contains(out, "/etc/passwd") || !strings.Contains(errOut, "unpinned: "+empty+" has no key for agent signed-a") {
		t.Errorf("mig results -pinfile without the agent: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got, _ := os.ReadFile(empty); string(got) != "# no agents\n" {
		t.Errorf("-pinfile was written: %q", got)
	}
	// The exported file imports on another investigator's machine.
	env2 := []string{"HOME=" + t.TempDir(), "MIG_CONFIG=", "MIG_AGENTKEYS="}
	if _, errOut, code = run(t, env2, "agentkeys", "import", dist); code != 0 || !strings.Contains(errOut, "pinned 1 new") {
		t.Errorf("mig agentkeys import: exit %d\nstderr:\n%s", code, errOut)
	}
}
