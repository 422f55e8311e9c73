package client

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testAPIKey = "mig_0123456789abcdef_" + "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestAPIKeyConfig(t *testing.T) {
	base := `{"api":{"url":"http://127.0.0.1:1/api/v1"}`
	tests := []struct {
		name, json, env, wantErr string
		wantKey                  string
	}{
		{"apikey without signer", base + `,"apikey":"` + testAPIKey + `"}`, "", "", testAPIKey},
		{"env replaces the file", base + `,"apikey":"` + strings.Replace(testAPIKey, "0123", "4567", 1) + `"}`, testAPIKey, "", testAPIKey},
		{"env alone", base + `}`, testAPIKey, "", testAPIKey},
		{"bad apikey", base + `,"apikey":"mig_nothex"}`, "", "apikey: malformed API key", ""},
		{"bad env", base + `}`, "mig_x_secretsecret", "$MIG_API_KEY: malformed API key", ""},
		{"upper-case secret", base + `,"apikey":"` + strings.ToUpper(testAPIKey[21:]) + `"}`, "", "apikey: malformed API key", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(APIKeyEnv, tc.env)
			path := writeFile(t, t.TempDir(), "migrc", tc.json)
			cfg, err := LoadConfig(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("LoadConfig: %v, want an ErrConfig saying %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secretsecret") {
					t.Errorf("error %q quotes the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if cfg.APIKey != tc.wantKey {
				t.Errorf("APIKey = %q, want %q", cfg.APIKey, tc.wantKey)
			}
		})
	}
}

func TestAPIKeyClient(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/dashboard":
			w.Write([]byte(`{"agents":{"online":2}}`))
		case "POST /api/v1/apikeys":
			var req map[string]any
			_ = json.NewDecoder(r.Body).Decode(&req)
			if req["name"] != "nightly" || req["expireafter"] == nil {
				w.WriteHeader(400)
				w.Write([]byte(`{"error":"bad body","code":"bad_request"}`))
				return
			}
			w.WriteHeader(201)
			w.Write([]byte(`{"key":"` + testAPIKey + `","apikey":{"keyid":"0123456789abcdef","name":"nightly"}}`))
		case "GET /api/v1/apikeys":
			if r.URL.Query().Get("all") != "true" {
				w.WriteHeader(403)
				w.Write([]byte(`{"error":"no","code":"forbidden"}`))
				return
			}
			w.Write([]byte(`{"apikeys":[{"keyid":"0123456789abcdef","name":"nightly"}]}`))
		case "POST /api/v1/apikeys/0123456789abcdef/revoke":
			w.Write([]byte(`{"apikey":{"keyid":"0123456789abcdef","revokedat":"2030-01-01T00:00:00Z"}}`))
		default:
			w.WriteHeader(404)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{API: APIConfig{URL: srv.URL + "/api/v1"}, APIKey: testAPIKey})
	if err != nil {
		t.Fatalf("New with only an API key: %v", err)
	}
	d, err := c.Dashboard(t.Context())
	if err != nil || d.Agents.Online != 2 {
		t.Fatalf("Dashboard = %+v, %v", d, err)
	}
	nk, err := c.CreateAPIKey(t.Context(), "nightly", nil, time.Now().Add(time.Hour))
	if err != nil || nk.Key != testAPIKey || nk.APIKey.KeyID != "0123456789abcdef" {
		t.Fatalf("CreateAPIKey = %+v, %v", nk, err)
	}
	keys, err := c.APIKeys(t.Context(), true)
	if err != nil || len(keys) != 1 || keys[0].Name != "nightly" {
		t.Fatalf("APIKeys = %+v, %v", keys, err)
	}
	if _, err := c.APIKeys(t.Context(), false); err == nil {
		t.Errorf("APIKeys(false) answered 403 but no error")
	}
	k, err := c.RevokeAPIKey(t.Context(), "0123456789abcdef")
	if err != nil || k.RevokedAt.IsZero() {
		t.Fatalf("RevokeAPIKey = %+v, %v", k, err)
	}
	mu.Lock()
	for _, a := range auths {
		if a != APIKeyScheme+" "+testAPIKey {
			t.Errorf("Authorization %q, want the API key", a)
		}
	}
	mu.Unlock()

	// An API key never signs.
	if _, err := c.Signer().Sign([]byte("x")); !errors.Is(err, ErrNoSigner) {
		t.Errorf("Sign with only an API key: %v, want ErrNoSigner", err)
	}
}
