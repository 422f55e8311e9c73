package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPIKey runs the real mig-server -dev and mig: an investigator makes
// an API key with their OpenPGP key; the key alone then reads agents and
// the dashboard (from $MIG_API_KEY or the configuration's "apikey"), an
// action launched with it is still signed by the investigator's key, a
// configuration with only the key cannot launch anything, and once the key
// is revoked it is refused, its secret never in the server's output.
func TestAPIKey(t *testing.T) {
	env, srv, dir := devPlatform(t)

	out, errOut, code := run(t, env, "apikey", "create", "-name", "e2e automation",
		"-perm", "action.create,action.read,agent.read", "-expire", "1h")
	if code != 0 {
		t.Fatalf("mig apikey create: exit %d\nstderr:\n%s", code, errOut)
	}
	key := strings.TrimSpace(out)
	m := regexp.MustCompile(`^mig_([0-9a-f]{16})_([0-9a-f]{64})$`).FindStringSubmatch(key)
	if m == nil {
		t.Fatalf("mig apikey create printed %q, want one key", out)
	}
	keyID, secret := m[1], m[2]

	withKey := append(append([]string{}, env...), "MIG_API_KEY="+key)
	out, errOut, code = run(t, withKey, "agents", "-render", "json")
	if code != 0 || !strings.Contains(out, `"online"`) {
		t.Fatalf("mig agents with $MIG_API_KEY: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	// Launching with the key: requests carry the key, the action is signed
	// by the investigator's OpenPGP key as always, and the agent runs it.
	out, errOut, code = run(t, withKey, "file", "-path", "/etc", "-name", "^passwd$")
	if code != 0 || !strings.Contains(out, "/etc/passwd [lastmodified:") {
		t.Fatalf("mig file with $MIG_API_KEY: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// A configuration with the key and no signer reads, but cannot sign.
	b, err := os.ReadFile(filepath.Join(dir, "client.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	delete(cfg, "signer")
	cfg["apikey"] = key
	b, _ = json.Marshal(cfg)
	keyOnly := filepath.Join(t.TempDir(), "migrc")
	if err := os.WriteFile(keyOnly, b, 0o600); err != nil {
		t.Fatal(err)
	}
	keyEnv := append(append([]string{}, env...), "MIG_CONFIG="+keyOnly)
	out, errOut, code = run(t, keyEnv, "dashboard")
	if code != 0 || !strings.Contains(out, "agents: 1 online") {
		t.Fatalf("mig dashboard with only an API key: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	atk := attack(t, "api-auth", "an API key alone launches an unsigned action")
	_, errOut, code = run(t, keyEnv, "file", "-path", "/etc", "-name", "^passwd$")
	if code == 0 || !strings.Contains(errOut, "cannot sign") {
		t.Errorf("mig file with only an API key: exit %d, want a refusal to sign\nstderr:\n%s", code, errOut)
	}
	atk.refused()
	// It may launch an action an investigator signed beforehand: the API
	// and the agent check the signatures it carries.
	signedFile := filepath.Join(t.TempDir(), "signed.json")
	if _, errOut, code = run(t, env, "file", "-path", "/etc", "-name", "^passwd$", "-p", "-o", signedFile); code != 0 {
		t.Fatalf("mig file -p -o: exit %d\nstderr:\n%s", code, errOut)
	}
	out, errOut, code = run(t, keyEnv, "action", "-i", signedFile)
	if code != 0 || !strings.Contains(out, "/etc/passwd [lastmodified:") {
		t.Errorf("mig action -i signed.json with only an API key: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	atk = attack(t, "api-auth", "an API key makes another API key")
	_, errOut, code = run(t, keyEnv, "apikey", "create", "-name", "child")
	if code == 0 || !strings.Contains(errOut, "OpenPGP") {
		atk.executed("mig apikey create with an API key: exit %d, want refused\nstderr:\n%s", code, errOut)
	}
	atk.refused()

	atk = attack(t, "api-auth", "the API key's secret is read back")
	out, errOut, code = run(t, env, "apikey", "list")
	if code != 0 || !strings.Contains(out, keyID) || strings.Contains(out, secret) {
		t.Errorf("mig apikey list: exit %d, want the key id and no secret\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, errOut, code = run(t, env, "apikey", "revoke", keyID); code != 0 {
		t.Fatalf("mig apikey revoke: exit %d\nstderr:\n%s", code, errOut)
	}
	if strings.Contains(srv.output(), secret) {
		atk.executed("the server's output holds the key's secret")
	}
	atk.refused()
	atk = attack(t, "api-auth", "a revoked API key")
	_, errOut, code = run(t, keyEnv, "dashboard")
	if code != 1 || !strings.Contains(errOut, "revoked") || strings.Contains(errOut, secret) {
		t.Errorf("mig dashboard with a revoked key: exit %d, want 1 naming the revocation\nstderr:\n%s", code, errOut)
	}
	atk.refused()
}
