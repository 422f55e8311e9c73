package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// readAuditPage gets one page of the audit log as s.
func (kt *keyTester) readAuditPage(s sign.Signer, query string) (int, AuditPage) {
	kt.t.Helper()
	code, body := kt.do(s, "GET", "/audit"+query, nil)
	var page AuditPage
	b, _ := json.Marshal(body)
	if code == http.StatusOK {
		if err := json.Unmarshal(b, &page); err != nil {
			kt.t.Fatalf("GET /audit%s: %v", query, err)
		}
	}
	return code, page
}

// TestAuditTrail makes every audited change through the API and reads the
// log back: one entry per change, by whom, chained, and nothing for a
// change that failed.
func TestAuditTrail(t *testing.T) {
	kt, s, invs := newKeyTester(t)
	adminFP := s["admin"].Fingerprint()

	// An action signed by alice, sent by the admin.
	body := kt.action(nil, s["alice"])
	if code, out := kt.do(s["admin"], "POST", "/actions", body); code != http.StatusCreated {
		t.Fatalf("POST /actions: %d %v", code, out)
	}
	var act struct{ ID uint64 }
	_ = json.Unmarshal(body, &act)
	// A new investigator, created twice (the second fails), disabled, enabled.
	priv, pub, _, err := sign.GenerateKey("carol", "carol@example.com")
	if err != nil {
		t.Fatal(err)
	}
	_ = priv
	req, _ := json.Marshal(map[string]any{"name": "carol", "publickey": string(pub)})
	code, out := kt.do(s["admin"], "POST", "/investigators", req)
	if code != http.StatusCreated {
		t.Fatalf("POST /investigators: %d %v", code, out)
	}
	carolID := int64(out["id"].(float64))
	carolFP, _ := out["pgpfingerprint"].(string)
	if code, _ := kt.do(s["admin"], "POST", "/investigators", req); code != http.StatusConflict {
		t.Fatalf("POST /investigators again: %d, want 409", code)
	}
	for _, st := range []string{"disabled", "active"} {
		if code, out := kt.do(s["admin"], "POST", fmt.Sprintf("/investigators/%d/status", carolID), []byte(`{"status":"`+st+`"}`)); code != http.StatusOK {
			t.Fatalf("set status %s: %d %v", st, code, out)
		}
	}
	// An API key of alice's, revoked by the admin; alice then launches
	// with a key that may read the log.
	_, k := kt.createKey(s["alice"], `{"name":"nightly"}`)
	if code, out := kt.do(s["admin"], "POST", "/apikeys/"+k.KeyID+"/revoke", nil); code != http.StatusOK {
		t.Fatalf("revoke: %d %v", code, out)
	}
	adminKey, ak := kt.createKey(s["admin"], `{"name":"auditor","permissions":["audit.read","action.create"]}`)
	code, _, raw := kt.withKey(adminKey, "POST", "/actions", kt.action(nil, s["alice"]))
	if code != http.StatusCreated {
		t.Fatalf("POST /actions with an API key: %d %s", code, raw)
	}

	code, page := kt.readAuditPage(s["admin"], "")
	if code != http.StatusOK {
		t.Fatalf("GET /audit as admin: %d", code)
	}
	var v audit.Verifier
	if err := v.Add(page.Entries...); err != nil {
		t.Fatalf("the log the API returns does not verify: %v", err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.Kind+" "+e.Actor)
	}
	admin, alice, key := "investigator:"+adminFP, "investigator:"+s["alice"].Fingerprint(), "apikey:"+ak.KeyID
	want := []string{
		"action.create " + admin, "action.launch " + admin,
		"investigator.create " + admin, "investigator.disable " + admin, "investigator.enable " + admin,
		"apikey.create " + alice, "apikey.revoke " + admin, "apikey.create " + admin,
		"action.create " + key, "action.launch " + key,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(page.Entries) != len(want) {
		t.FailNow()
	}
	create := page.Entries[0]
	if create.Object != fmt.Sprint(act.ID) || create.Details["signers"] != s["alice"].Fingerprint() || len(create.Details["signed"]) != 64 {
		t.Errorf("action.create entry %+v: want the action's ID, alice as signer, the hash of the signed encoding", create)
	}
	if e := page.Entries[2]; e.Object != carolFP || e.Details["name"] != "carol" {
		t.Errorf("investigator.create entry %+v", e)
	}
	if e := page.Entries[3]; e.Object != fmt.Sprint(carolID) || e.Details["fingerprint"] != carolFP {
		t.Errorf("investigator.disable entry %+v", e)
	}
	if e := page.Entries[8]; e.Details["investigator"] != adminFP {
		t.Errorf("an entry made with an API key does not name its investigator: %+v", e)
	}

	// Paging.
	code, p1 := kt.readAuditPage(s["admin"], "?limit=4")
	if code != http.StatusOK || len(p1.Entries) != 4 || p1.Next != 4 {
		t.Fatalf("GET /audit?limit=4: %d, %d entries, next %d", code, len(p1.Entries), p1.Next)
	}
	_, p2 := kt.readAuditPage(s["admin"], "?after=4&limit=100")
	if len(p2.Entries) != len(want)-4 || p2.Entries[0].Seq != 5 || p2.Next != 0 {
		t.Errorf("GET /audit?after=4: %d entries from %d, next %d", len(p2.Entries), p2.Entries[0].Seq, p2.Next)
	}
	if code, _ := kt.do(s["admin"], "GET", "/audit?after=x", nil); code != http.StatusBadRequest {
		t.Errorf("GET /audit?after=x: %d, want 400", code)
	}

	// Permissions: audit.read or investigator.admin.
	for _, who := range []string{"alice", "reader"} {
		if code, _ := kt.readAuditPage(s[who], ""); code != http.StatusForbidden {
			t.Errorf("GET /audit as %s (%v): %d, want 403", who, invs[who].Permissions, code)
		}
	}
	if code, _, raw := kt.withKey(adminKey, "GET", "/audit", nil); code != http.StatusOK {
		t.Errorf("GET /audit with a key holding audit.read: %d %s", code, raw)
	}
	readKey, _ := kt.createKey(s["admin"], `{"name":"reader"}`)
	if code, _, _ := kt.withKey(readKey, "GET", "/audit", nil); code != http.StatusForbidden {
		t.Errorf("GET /audit with a key without audit.read: %d, want 403", code)
	}
}

// TestAuditEnroll: an agent identity's first enrollment is recorded once,
// with its key's hash and source; the same agent enrolling again at its
// next start is not recorded again.
func TestAuditEnroll(t *testing.T) {
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(New(Config{Store: st, Dispatcher: &countingDispatcher{}, EnrollmentTokens: []string{"tok"}}))
	t.Cleanup(srv.Close)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := action.AgentID(pub)
	enroll := func() {
		t.Helper()
		now := time.Now().UTC().Format(time.RFC3339)
		body, _ := json.Marshal(EnrollRequest{PublicKey: base64.StdEncoding.EncodeToString(pub), Time: now,
			Proof: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte("mig-enroll-v1\n"+id+"\n"+now))),
			Agent: action.Agent{Name: "host1"}})
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/enroll", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("enroll: %s", resp.Status)
		}
	}
	enroll()
	enroll()
	entries, err := st.AuditLog(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("%d audit entries after enrolling twice, want 1: %+v", len(entries), entries)
	}
	e := entries[0]
	sum := sha256.Sum256(pub)
	if e.Kind != audit.KindAgentEnroll || e.Actor != audit.ActorAgentPrefix+id || e.Object != id ||
		e.Details["publickey"] != hex.EncodeToString(sum[:]) || e.Details["name"] != "host1" || e.Details["source"] != "127.0.0.1" {
		t.Errorf("enrollment entry %+v", e)
	}
}
