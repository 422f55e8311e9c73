package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestManifestsTakeover publishes a manifest and serves it to a loader,
// refusing bad signatures, missing files, missing permissions and every
// loader request that is not the enrolled agent's, signed now.
func TestManifestsTakeover(t *testing.T) {
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
	second := add("second", AllPermissions)
	reader := add("reader", []string{PermManifestRead})
	outsiderPriv, _, _, _ := sign.GenerateKey("outsider", "o@example.com")
	outsider, _ := sign.NewKeySigner(outsiderPriv, nil)
	srv := httptest.NewServer(New(Config{Store: st}))
	t.Cleanup(srv.Close)
	tt := &tester{t: t, srv: srv}

	bin := bytes.Repeat([]byte("agent-B"), 5000)
	if code, out := tt.do(reader, "POST", "/manifests/files", bin); code != http.StatusForbidden {
		t.Errorf("upload without manifest.publish = %d %v, want 403", code, out)
	}
	now := time.Now().UTC().Truncate(time.Second)
	m := &manifest.Manifest{Name: "prod", Serial: 7, OS: "linux", Arch: "amd64", Created: now, Expires: now.Add(time.Hour),
		Files: []manifest.File{{Role: "mig-agent", Version: "B", SHA256: sha256Hex(bin), Size: int64(len(bin))}}}
	signed := func(signers ...sign.Signer) []byte {
		c := *m
		c.Signatures = nil
		for _, s := range signers {
			if err := manifest.Sign(&c, s); err != nil {
				t.Fatal(err)
			}
		}
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if code, out := tt.do(admin, "POST", "/manifests", signed(admin)); code != http.StatusBadRequest {
		t.Errorf("publish before the file is uploaded = %d %v, want 400", code, out)
	}
	if code, out := tt.do(admin, "POST", "/manifests/files", bin); code != http.StatusOK || out["sha256"] != sha256Hex(bin) {
		t.Fatalf("upload = %d %v", code, out)
	}
	if code, out := tt.do(admin, "POST", "/manifests", signed(outsider)); code != http.StatusBadRequest {
		t.Errorf("publish signed by an unknown key = %d %v, want 400", code, out)
	}
	tampered := bytes.Replace(signed(admin), []byte(`"serial": 7`), []byte(`"serial": 8`), 1)
	if code, out := tt.do(admin, "POST", "/manifests", tampered); code != http.StatusBadRequest {
		t.Errorf("publish with a signature over other content = %d %v, want 400", code, out)
	}
	if code, out := tt.do(admin, "POST", "/manifests", []byte(`{"name":"prod","extra":1}`)); code != http.StatusBadRequest {
		t.Errorf("publish garbage = %d %v, want 400", code, out)
	}
	if code, out := tt.do(reader, "POST", "/manifests", signed(admin)); code != http.StatusForbidden {
		t.Errorf("publish without manifest.publish = %d %v, want 403", code, out)
	}
	code, out := tt.do(admin, "POST", "/manifests", signed(admin))
	if code != http.StatusCreated {
		t.Fatalf("publish = %d %v", code, out)
	}
	id := int64(out["id"].(float64))
	if code, out := tt.do(admin, "POST", "/manifests", signed(admin)); code != http.StatusConflict {
		t.Errorf("publish the same serial again = %d %v, want 409", code, out)
	}
	// A second investigator signs it.
	c := *m
	c.Signatures = nil
	if err := manifest.Sign(&c, second); err != nil {
		t.Fatal(err)
	}
	sigBody := []byte(`{"signature":` + jsonString(c.Signatures[0]) + `}`)
	if code, out := tt.do(second, "POST", "/manifests/"+itoa(id)+"/signatures", sigBody); code != http.StatusOK || out["signatures"] != float64(2) {
		t.Errorf("sign = %d %v, want 200 with 2 signatures", code, out)
	}
	if code, out := tt.do(second, "POST", "/manifests/"+itoa(id)+"/signatures", sigBody); code != http.StatusBadRequest {
		t.Errorf("sign twice = %d %v, want 400", code, out)
	}
	if code, out := tt.do(reader, "GET", "/manifests", nil); code != http.StatusOK || len(out["manifests"].([]any)) != 1 {
		t.Errorf("list = %d %v", code, out)
	}

	// The loader, with the enrolled agent's key.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	agentID := action.AgentID(pub)
	if err := st.SaveAgentCredential(t.Context(), store.AgentCredential{AgentID: agentID, PublicKey: pub, PasswordHash: []byte("x"), EnrolledAt: now}); err != nil {
		t.Fatal(err)
	}
	otherPub, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	if err := st.SaveAgentCredential(t.Context(), store.AgentCredential{AgentID: action.AgentID(otherPub), PublicKey: otherPub, PasswordHash: []byte("x"), EnrolledAt: now}); err != nil {
		t.Fatal(err)
	}
	loader := func(uri, id string, key ed25519.PrivateKey, at time.Time, mutate func(sig []byte)) (int, []byte) {
		ts := at.UTC().Format(time.RFC3339)
		sig := ed25519.Sign(key, LoaderSignedMessage(id, ts, "GET", uri))
		if mutate != nil {
			mutate(sig)
		}
		req, _ := http.NewRequest("GET", srv.URL+uri, nil)
		req.Header.Set("Authorization", "MIG-Agent id="+id+",time="+ts+",sig="+base64.StdEncoding.EncodeToString(sig))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	uri := "/api/v1/loader/manifest?name=prod&os=linux&arch=amd64"
	code, body := loader(uri, agentID, priv, time.Now(), nil)
	got, err := manifest.Parse(body)
	if code != http.StatusOK || err != nil || len(got.Signatures) != 2 {
		t.Fatalf("loader manifest = %d %q %v", code, body, err)
	}
	if code, body := loader("/api/v1/loader/files/"+sha256Hex(bin), agentID, priv, time.Now(), nil); code != http.StatusOK || !bytes.Equal(body, bin) {
		t.Errorf("loader file = %d, %d bytes", code, len(body))
	}
	unknownPub, unknownPriv, _ := ed25519.GenerateKey(rand.Reader)
	for name, tc := range map[string]struct {
		id  string
		key ed25519.PrivateKey
		at  time.Time
		mut func([]byte)
	}{
		"wrong signature": {agentID, priv, time.Now(), func(s []byte) { s[0] ^= 1 }},
		"another agent's": {agentID, otherPriv, time.Now(), nil},
		"claims other id": {action.AgentID(otherPub), priv, time.Now(), nil},
		"stale time":      {agentID, priv, time.Now().Add(-10 * time.Minute), nil},
		"future time":     {agentID, priv, time.Now().Add(10 * time.Minute), nil},
		"unknown agent":   {action.AgentID(unknownPub), unknownPriv, time.Now(), nil},
	} {
		if code, body := loader(uri, tc.id, tc.key, tc.at, tc.mut); code != http.StatusUnauthorized {
			t.Errorf("loader request, %s = %d %s, want 401", name, code, body)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+uri, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("loader request without Authorization = %v %v, want 401", resp.StatusCode, err)
	}
	// Disabled: the loader gets 404.
	if code, out := tt.do(admin, "POST", "/manifests/"+itoa(id)+"/status", []byte(`{"status":"disabled"}`)); code != http.StatusOK {
		t.Errorf("disable = %d %v", code, out)
	}
	if code, body := loader(uri, agentID, priv, time.Now(), nil); code != http.StatusNotFound {
		t.Errorf("loader manifest after disable = %d %s, want 404", code, body)
	}
}

func jsonString(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
