package client

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/sign"
)

// testKey is one generated investigator key, shared by the tests.
var testKey = sync.OnceValues(func() (key struct {
	priv, pub []byte
	fp        string
}, err error) {
	key.priv, key.pub, key.fp, err = sign.GenerateKey("Test Investigator", "test@example.com")
	return key, err
})

// writeKey writes the test key to dir and returns its path, its keyring and
// fingerprint.
func writeKey(t *testing.T, dir string) (string, *sign.Keyring, string) {
	t.Helper()
	k, err := testKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	path := filepath.Join(dir, "investigator.asc")
	if err := os.WriteFile(path, k.priv, 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := sign.ReadKeyring(bytes.NewReader(k.pub))
	if err != nil {
		t.Fatalf("ReadKeyring: %v", err)
	}
	return path, kr, k.fp
}

// writeCA writes the certificate of a TLS test server as a PEM file.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // substring; empty: no error
	}{
		{"key file", `{"api":{"url":"https://127.0.0.1:12664/api/v1","ca":"ca.pem"},"signer":{"keyfile":"k.asc","passphrase":"x"},"targets":{"default":"status='online'","macros":{"linux":"environment->>'os'='linux'"}}}`, ""},
		{"gpg", `{"api":{"url":"https://mig.example.com/api/v1"},"signer":{"gpg":"/usr/bin/gpg","gpghome":"","keyid":"ABCD"}}`, ""},
		{"unknown key", `{"api":{"url":"https://a/api/v1"},"signer":{"keyfile":"k"},"extra":1}`, `unknown field "extra"`},
		{"unknown nested key", `{"api":{"url":"https://a/api/v1","insecure":true}}`, `unknown field "insecure"`},
		{"malformed", "{\"api\":\n {\"url\": x}}", "line 2, column"},
		{"trailing", `{"api":{"url":"https://a/api/v1"}} {}`, "data after"},
		{"no url", `{"signer":{"keyfile":"k"}}`, "api.url is empty"},
		{"plain http remote", `{"api":{"url":"http://mig.example.com/api/v1"}}`, `"http://mig.example.com/api/v1" is plain http`},
		{"plain http loopback", `{"api":{"url":"http://127.0.0.1:8080/api/v1"}}`, ""},
		{"bad scheme", `{"api":{"url":"ftp://a/api/v1"}}`, "scheme must be https"},
		{"two signers", `{"api":{"url":"https://a/api/v1"},"signer":{"keyfile":"k","keyid":"AB"}}`, "both keyfile"},
		{"gpg without key", `{"api":{"url":"https://a/api/v1"},"signer":{"gpg":"/usr/bin/gpg"}}`, "keyid is empty"},
		{"reserved macro", `{"api":{"url":"https://a/api/v1"},"targets":{"macros":{"all":"x='y'"}}}`, `"all" is reserved`},
		{"empty macro", `{"api":{"url":"https://a/api/v1"},"targets":{"macros":{"db":" "}}}`, `macros["db"] is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.json))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseConfig: got error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseConfig: got error %v, want one containing %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrConfig) {
				t.Errorf("ParseConfig: error %v does not wrap ErrConfig", err)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "migrc", `{"api":{"url":"https://127.0.0.1:1/api/v1","ca":"ca.pem"},"signer":{"keyfile":"keys/me.asc"}}`)
	bad := writeFile(t, dir, "bad", `{"api":{"url":"https://127.0.0.1:1/api/v1"},"colour":"blue"}`)

	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig(%s): %v", path, err)
	}
	if got, want := cfg.API.CA, filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("api.ca: got %q, want %q (relative to the config file)", got, want)
	}
	if got, want := cfg.Signer.KeyFile, filepath.Join(dir, "keys", "me.asc"); got != want {
		t.Errorf("signer.keyfile: got %q, want %q", got, want)
	}
	if cfg.Path != path {
		t.Errorf("Path: got %q, want %q", cfg.Path, path)
	}

	_, err = LoadConfig(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `"colour"`) {
		t.Errorf("LoadConfig(%s): got %v, want an error naming the file and the unknown key", bad, err)
	}

	t.Setenv(ConfigEnv, path)
	cfg, err = LoadConfig("")
	if err != nil || cfg.Path != path {
		t.Errorf("LoadConfig(\"\") with $%s=%s: got path %q, error %v", ConfigEnv, path, cfg.Path, err)
	}
	t.Setenv(ConfigEnv, "")
	t.Setenv("HOME", dir)
	if got, err := ConfigPath(""); err != nil || got != filepath.Join(dir, DefaultConfigName) {
		t.Errorf("ConfigPath(\"\"): got %q, %v; want %q", got, err, filepath.Join(dir, DefaultConfigName))
	}
	if got, _ := ConfigPath("/x/y"); got != "/x/y" {
		t.Errorf("ConfigPath(/x/y): got %q", got)
	}
}

func TestPrepareAction(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := &action.Action{Name: "n", Target: "status='online'"}
	PrepareAction(a, 20*time.Second, now)
	if a.ID == 0 || a.ID > 1<<53-1 {
		t.Errorf("ID: got %d, want in [1, 2^53-1]", a.ID)
	}
	if want := now.Add(-10 * time.Second); !a.ValidFrom.Equal(want) {
		t.Errorf("ValidFrom: got %s, want %s", a.ValidFrom, want)
	}
	if want := now.Add(20 * time.Second); !a.ExpireAfter.Equal(want) {
		t.Errorf("ExpireAfter: got %s, want %s", a.ExpireAfter, want)
	}
	if a.SyntaxVersion != 2 {
		t.Errorf("SyntaxVersion: got %d, want 2", a.SyntaxVersion)
	}

	set := &action.Action{ID: 42, ValidFrom: now, ExpireAfter: now.Add(time.Hour)}
	PrepareAction(set, time.Minute, now.Add(time.Minute))
	if set.ID != 42 || !set.ValidFrom.Equal(now) || !set.ExpireAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("PrepareAction changed set fields: got id %d, %s..%s", set.ID, set.ValidFrom, set.ExpireAfter)
	}

	seen := map[uint64]bool{}
	for range 1000 {
		id := NewActionID()
		if id == 0 || id > 1<<53-1 {
			t.Fatalf("NewActionID: got %d, out of range", id)
		}
		seen[id] = true
	}
	if len(seen) < 1000 {
		t.Errorf("NewActionID: got %d distinct IDs in 1000, want 1000", len(seen))
	}
}

// newTLSClient starts srv over TLS and returns a client trusting it,
// signing with the test key, and the keyring that verifies it.
func newTLSClient(t *testing.T, h http.Handler) (*Client, *sign.Keyring, *httptest.Server) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	key, kr, _ := writeKey(t, dir)
	cfg := Config{API: APIConfig{URL: srv.URL + "/api/v1", CA: writeCA(t, srv)}, Signer: SignerConfig{KeyFile: key}}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, kr, srv
}

func TestAuthAndTLS(t *testing.T) {
	var mu sync.Mutex
	var tokens []string
	var kr *sign.Keyring
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "MIG-PGP ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"no Authorization: MIG-PGP token","code":"unauthenticated"}`))
			return
		}
		if _, err := sign.VerifyToken(kr, tok, time.Now()); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error(), "code": "unauthenticated"})
			return
		}
		mu.Lock()
		tokens = append(tokens, tok)
		mu.Unlock()
		w.Write([]byte(`{"count": 7}`))
	})
	c, keyring, _ := newTLSClient(t, h)
	kr = keyring
	base := time.Now()
	c.now = func() time.Time { return base }
	// Every request gets its own token, even within one second: the
	// server refuses a nonce it has seen.
	for range 3 {
		n, err := c.CountAgents(t.Context(), "status='online'")
		if err != nil || n != 7 {
			t.Fatalf("CountAgents: got %d, %v; want 7, nil", n, err)
		}
	}
	if len(tokens) != 3 {
		t.Fatalf("got %d authenticated requests, want 3", len(tokens))
	}
	nonces := map[string]bool{}
	for _, tok := range tokens {
		vt, err := sign.VerifyToken(kr, tok, base)
		if err != nil {
			t.Fatalf("VerifyToken(%q): %v", tok, err)
		}
		if nonces[vt.Nonce] {
			t.Errorf("nonce %s sent in two requests", vt.Nonce)
		}
		nonces[vt.Nonce] = true
	}

	// A client that does not trust the server's CA refuses to talk to it.
	other := httptest.NewTLSServer(h)
	defer other.Close()
	key, _, _ := writeKey(t, t.TempDir())
	untrusting, err := New(Config{API: APIConfig{URL: other.URL + "/api/v1"}, Signer: SignerConfig{KeyFile: key}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if _, err := untrusting.CountAgents(t.Context(), ""); err == nil {
		t.Errorf("CountAgents against a server signed by an unknown CA: got no error, want a TLS error")
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   APIError
	}{
		{"json", 400, `{"error":"target \"name LIKE\": unexpected end at 9","code":"bad_request"}`,
			APIError{Status: 400, Code: "bad_request", Message: `target "name LIKE": unexpected end at 9`}},
		{"agent code", 400, `{"error":"signature 1 does not verify","code":"bad_signature"}`,
			APIError{Status: 400, Code: "bad_signature", Message: "signature 1 does not verify"}},
		{"not json", 502, "bad gateway\n", APIError{Status: 502, Message: "bad gateway"}},
		{"empty", 404, "", APIError{Status: 404, Message: "Not Found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, _ := newTLSClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			}))
			_, err := c.Action(t.Context(), 5)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("Action: got error %v (%T), want an *APIError", err, err)
			}
			if diff := cmp.Diff(tt.want, *ae); diff != "" {
				t.Errorf("APIError (-want +got):\n%s", diff)
			}
			if !strings.Contains(err.Error(), tt.want.Message) {
				t.Errorf("error text %q does not hold the server's message %q", err, tt.want.Message)
			}
		})
	}
}
