package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestManifestsAndLoader publishes, serves and disables manifests, and
// refuses loader requests that are not an enrolled agent's.
func TestManifestsAndLoader(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	add := func(name string, perms []string) sign.Signer {
		priv, pub, _, err := sign.GenerateKey(name, name+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		s, err := sign.NewKeySigner(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := NewInvestigator(name, string(pub), perms, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.CreateInvestigator(t.Context(), inv); err != nil {
			t.Fatal(err)
		}
		return s
	}
	admin := add("admin", AllPermissions)
	reader := add("reader", []string{PermManifestRead})
	srv := httptest.NewServer(New(Config{Store: st}))
	t.Cleanup(srv.Close)

	do := func(s sign.Signer, method, path string, body []byte, hdr string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if s != nil {
			tok, err := sign.MakeToken(s, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "MIG-PGP "+tok)
		}
		if hdr != "" {
			req.Header.Set("Authorization", hdr)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}

	agentBin := []byte("pretend mig-agent binary")
	if code, body := do(reader, "POST", "/api/v1/manifests/files", agentBin, ""); code != http.StatusForbidden {
		t.Fatalf("upload by a reader: %d %s", code, body)
	}
	mk := func(serial uint64, data []byte) []byte {
		now := time.Now().UTC().Truncate(time.Second)
		m := &manifest.Manifest{Name: "prod", Serial: serial, OS: "linux", Arch: "amd64", Created: now, Expires: now.Add(time.Hour),
			Files: []manifest.File{{Role: "mig-agent", Version: "1.2.3", SHA256: sha256Hex(data), Size: int64(len(data))}}}
		if err := manifest.Sign(m, admin); err != nil {
			t.Fatal(err)
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if code, body := do(admin, "POST", "/api/v1/manifests", mk(1, agentBin), ""); code != http.StatusBadRequest || !strings.Contains(body, "never uploaded") {
		t.Fatalf("publish before upload: %d %s", code, body)
	}
	if code, body := do(admin, "POST", "/api/v1/manifests/files", agentBin, ""); code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, body)
	}
	if code, body := do(reader, "POST", "/api/v1/manifests", mk(1, agentBin), ""); code != http.StatusForbidden {
		t.Fatalf("publish by a reader: %d %s", code, body)
	}
	bad := bytes.Replace(mk(1, agentBin), []byte(`"serial": 1`), []byte(`"serial": 7`), 1)
	if code, body := do(admin, "POST", "/api/v1/manifests", bad, ""); code != http.StatusBadRequest {
		t.Fatalf("publish with a bad signature: %d %s", code, body)
	}
	for _, s := range []uint64{1, 2} {
		if code, body := do(admin, "POST", "/api/v1/manifests", mk(s, agentBin), ""); code != http.StatusCreated {
			t.Fatalf("publish %d: %d %s", s, code, body)
		}
	}
	if code, body := do(admin, "POST", "/api/v1/manifests", mk(2, agentBin), ""); code != http.StatusConflict {
		t.Fatalf("publish 2 again: %d %s", code, body)
	}

	// An enrolled agent, and another one.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	id := action.AgentID(pub)
	if err := st.SaveAgentCredential(t.Context(), store.AgentCredential{AgentID: id, PublicKey: pub, EnrolledAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pub2, priv2, _ := ed25519.GenerateKey(rand.Reader)
	id2 := action.AgentID(pub2)
	if err := st.SaveAgentCredential(t.Context(), store.AgentCredential{AgentID: id2, PublicKey: pub2, EnrolledAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	_, privUnknown, _ := ed25519.GenerateKey(rand.Reader)
	uri := "/api/v1/loader/manifest?name=prod&os=linux&arch=amd64"
	auth := func(k ed25519.PrivateKey, agent string, at time.Time, method, u string) string {
		ts := at.UTC().Format(time.RFC3339)
		sig := ed25519.Sign(k, LoaderSignedMessage(agent, ts, method, u))
		return "MIG-Agent id=" + agent + ",time=" + ts + ",sig=" + base64.StdEncoding.EncodeToString(sig)
	}
	now := time.Now()
	for name, h := range map[string]string{
		"wrong signature": auth(priv2, id, now, "GET", uri),
		"another agent":   auth(priv, id2, now, "GET", uri),
		"stale time":      auth(priv, id, now.Add(-10*time.Minute), "GET", uri),
		"unknown agent":   auth(privUnknown, action.AgentID(privUnknown.Public().(ed25519.PublicKey)), now, "GET", uri),
		"other URI":       auth(priv, id, now, "GET", "/api/v1/loader/manifest?name=dev&os=linux&arch=amd64"),
		"garbage":         "MIG-Agent id=x",
	} {
		if code, body := do(nil, "GET", uri, nil, h); code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	code, body := do(nil, "GET", uri, nil, auth(priv, id, now, "GET", uri))
	if code != http.StatusOK {
		t.Fatalf("loader manifest: %d %s", code, body)
	}
	m, err := manifest.Parse([]byte(body))
	if err != nil || m.Serial != 2 {
		t.Fatalf("loader got serial %v (%v), want 2", m, err)
	}
	fu := "/api/v1/loader/files/" + sha256Hex(agentBin)
	if code, body := do(nil, "GET", fu, nil, auth(priv, id, now, "GET", fu)); code != http.StatusOK || body != string(agentBin) {
		t.Fatalf("loader file: %d %q", code, body)
	}

	// Disable serial 2 (id 2): serial 1 is served; disable 1 too: 404.
	if code, body := do(admin, "POST", "/api/v1/manifests/2/status", []byte(`{"status":"disabled"}`), ""); code != http.StatusOK {
		t.Fatalf("disable: %d %s", code, body)
	}
	code, body = do(nil, "GET", uri, nil, auth(priv, id, now, "GET", uri))
	if m, err := manifest.Parse([]byte(body)); code != http.StatusOK || err != nil || m.Serial != 1 {
		t.Fatalf("after disabling 2: %d %s", code, body)
	}
	if code, body := do(admin, "POST", "/api/v1/manifests/1/status", []byte(`{"status":"disabled"}`), ""); code != http.StatusOK {
		t.Fatalf("disable: %d %s", code, body)
	}
	if code, body := do(nil, "GET", uri, nil, auth(priv, id, now, "GET", uri)); code != http.StatusNotFound {
		t.Fatalf("all disabled: %d %s", code, body)
	}
}

// FuzzParseAgentAuthorization feeds the MIG-Agent header parser.
func FuzzParseAgentAuthorization(f *testing.F) {
	f.Add("MIG-Agent id=abc,time=2026-01-01T00:00:00Z,sig=" + base64.StdEncoding.EncodeToString(make([]byte, 64)))
	f.Add("MIG-Agent id=a,id=b")
	f.Fuzz(func(t *testing.T, h string) {
		id, ts, sig, err := ParseAgentAuthorization(h)
		if err == nil && (id == "" || ts == "" || len(sig) != ed25519.SignatureSize) {
			t.Fatalf("accepted %q", h)
		}
	})
}
