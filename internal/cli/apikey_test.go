package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/api"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

type nopDispatcher struct{}

func (nopDispatcher) Dispatch(context.Context, *action.Action) (int, error) { return 0, nil }

// TestAPIKey runs mig apikey create, list and revoke against the real API,
// and mig dashboard and agents authenticated by the key alone.
func TestAPIKey(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	inv, err := api.NewInvestigator("alice", string(investigatorKey(t, 0).pub), nil, time.Now())
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

	// Refused before anything is sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apikey", "create", "-c", cfg}, "-name is required"},
		{[]string{"apikey", "create", "-c", cfg, "-name", "x", "-expire", "-1h"}, "-expire -1h0m0s"},
		{[]string{"apikey", "create", "-c", cfg, "-name", "x", "-expire", "soon"}, `"soon"`},
		{[]string{"apikey", "revoke", "-c", cfg, "XYZ"}, `"XYZ"`},
		{[]string{"apikey", "revoke", "-c", cfg}, "give one key id"},
		{[]string{"apikey", "rotate", "-c", cfg}, `unknown verb "rotate"`},
	} {
		code, _, stderr := run(t, tc.args...)
		if code != ExitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("mig %s: exit %d, stderr %q; want %d naming %q", strings.Join(tc.args, " "), code, stderr, ExitUsage, tc.want)
		}
	}

	code, stdout, stderr := run(t, "apikey", "create", "-c", cfg, "-name", "nightly report", "-expire", "720h")
	if code != ExitOK {
		t.Fatalf("apikey create: exit %d, %s", code, stderr)
	}
	key := strings.TrimSpace(stdout)
	keyID, _, err := action.ParseAPIKey(key)
	if err != nil {
		t.Fatalf("apikey create printed %q: %v", stdout, err)
	}
	if !strings.Contains(stderr, keyID) || !strings.Contains(stderr, "not shown again") || !strings.Contains(stderr, "action.read,agent.read") {
		t.Errorf("apikey create stderr %q: want the key id, the permissions and a warning", stderr)
	}

	code, stdout, stderr = run(t, "apikey", "list", "-c", cfg)
	if code != ExitOK || !strings.Contains(stdout, keyID) || !strings.Contains(stdout, "nightly report") || !strings.Contains(stdout, "active") {
		t.Errorf("apikey list: exit %d, %q %q", code, stdout, stderr)
	}
	if strings.Contains(stdout, key[21:]) {
		t.Errorf("apikey list prints the secret: %q", stdout)
	}
	code, stdout, _ = run(t, "apikey", "list", "-c", cfg, "-render", "json")
	var k action.APIKey
	if err := json.Unmarshal([]byte(stdout), &k); code != ExitOK || err != nil || k.KeyID != keyID || k.ExpireAfter.IsZero() {
		t.Errorf("apikey list -render json: exit %d, %q, %v", code, stdout, err)
	}

	// The key alone authenticates reads, from the configuration or the
	// environment; it never signs.
	keyOnly := filepath.Join(t.TempDir(), "migrc")
	var c map[string]any
	b, _ := os.ReadFile(cfg)
	_ = json.Unmarshal(b, &c)
	delete(c, "signer")
	c["apikey"] = key
	b, _ = json.Marshal(c)
	if err := os.WriteFile(keyOnly, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := run(t, "dashboard", "-c", keyOnly); code != ExitOK || !strings.Contains(stdout, "agents:") {
		t.Errorf("dashboard with the API key: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "apikey", "create", "-c", keyOnly, "-name", "child"); code != ExitFailure || !strings.Contains(stderr, "OpenPGP") {
		t.Errorf("apikey create with an API key: exit %d, %q; want refused", code, stderr)
	}
	t.Setenv("MIG_API_KEY", key)
	if code, _, stderr := run(t, "agents", "-c", cfg); code != ExitOK {
		t.Errorf("agents with $MIG_API_KEY: exit %d, %q", code, stderr)
	}
	t.Setenv("MIG_API_KEY", "")

	if code, stdout, stderr := run(t, "apikey", "revoke", "-c", cfg, keyID); code != ExitOK || !strings.Contains(stdout, keyID+` "nightly report" revoked`) {
		t.Errorf("apikey revoke: exit %d, %q %q", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "dashboard", "-c", keyOnly); code != ExitFailure || !strings.Contains(stderr, "revoked") || strings.Contains(stderr, key[21:]) {
		t.Errorf("dashboard with a revoked key: exit %d, %q; want 401 revoked without the secret", code, stderr)
	}
}
