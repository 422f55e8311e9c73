package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	_ "github.com/migplatform/mig/internal/module/all"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// countingDispatcher records the actions the API hands to the scheduler.
type countingDispatcher struct{ got []uint64 }

func (d *countingDispatcher) Dispatch(_ context.Context, a *action.Action) (int, error) {
	d.got = append(d.got, a.ID)
	return 0, nil
}

type tester struct {
	t       *testing.T
	srv     *httptest.Server
	disp    *countingDispatcher
	admin   sign.Signer
	reader  sign.Signer
	reader0 action.Investigator
}

func newTester(t *testing.T) *tester {
	t.Helper()
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tt := &tester{t: t, disp: &countingDispatcher{}}
	add := func(name string, perms []string) (sign.Signer, action.Investigator) {
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
		inv.ID, err = st.CreateInvestigator(t.Context(), inv)
		if err != nil {
			t.Fatal(err)
		}
		return s, inv
	}
	tt.admin, _ = add("admin", AllPermissions)
	tt.reader, tt.reader0 = add("reader", []string{PermActionRead, PermAgentRead})
	a := New(Config{Store: st, Dispatcher: tt.disp, EnrollmentTokens: []string{"enroll-token-0123456789"}})
	tt.srv = httptest.NewServer(a)
	t.Cleanup(tt.srv.Close)
	return tt
}

func (tt *tester) do(s sign.Signer, method, path string, body []byte) (int, map[string]any) {
	tt.t.Helper()
	req, err := http.NewRequest(method, tt.srv.URL+"/api/v1"+path, bytes.NewReader(body))
	if err != nil {
		tt.t.Fatal(err)
	}
	if s != nil {
		tok, err := sign.MakeToken(s, time.Now())
		if err != nil {
			tt.t.Fatal(err)
		}
		req.Header.Set("Authorization", "MIG-PGP "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tt.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (tt *tester) action(mutate func(a *action.Action), signers ...sign.Signer) []byte {
	tt.t.Helper()
	now := time.Now()
	a := &action.Action{ID: uint64(now.UnixNano() & (1<<53 - 1)), Name: "t", Target: "status='online'",
		ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(time.Hour),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^passwd$"]}}}`)}}}
	if mutate != nil {
		mutate(a)
	}
	for _, s := range signers {
		if err := sign.SignAction(a, s); err != nil {
			tt.t.Fatal(err)
		}
	}
	b, _ := json.Marshal(a)
	return b
}

func TestAuthenticationAndPermissions(t *testing.T) {
	tt := newTester(t)
	tests := []struct {
		name   string
		signer sign.Signer
		method string
		path   string
		want   int
	}{
		{"health needs nothing", nil, "GET", "/health", 200},
		{"no token", nil, "GET", "/dashboard", 401},
		{"reader reads", tt.reader, "GET", "/dashboard", 200},
		{"reader cannot list investigators", tt.reader, "GET", "/investigators", 403},
		{"admin lists investigators", tt.admin, "GET", "/investigators", 200},
		{"bad target", tt.reader, "GET", "/agents/count?target=" + "name%3D", 400},
		{"unknown action", tt.reader, "GET", "/actions/12345", 404},
		{"bad id", tt.reader, "GET", "/actions/x", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, body := tt.do(tc.signer, tc.method, tc.path, nil)
			if got != tc.want {
				t.Fatalf("%s %s: status %d (%v), want %d", tc.method, tc.path, got, body, tc.want)
			}
		})
	}

	// A disabled investigator's token stops working.
	code, _ := tt.do(tt.admin, "POST", "/investigators/"+itoa(tt.reader0.ID)+"/status", []byte(`{"status":"disabled"}`))
	if code != 200 {
		t.Fatalf("disable: %d", code)
	}
	if code, body := tt.do(tt.reader, "GET", "/dashboard", nil); code != 401 {
		t.Fatalf("disabled investigator: status %d (%v), want 401", code, body)
	}
}

func itoa(n int64) string { return jsonNum(n) }

func jsonNum(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestCreateActionChecks(t *testing.T) {
	tt := newTester(t)
	tests := []struct {
		name     string
		body     []byte
		signer   sign.Signer
		want     int
		wantCode string
		wantText string
	}{
		{"signed", tt.action(nil, tt.admin), tt.admin, 201, "", ""},
		{"reader may not create", tt.action(nil, tt.reader), tt.reader, 403, "forbidden", "action.create"},
		{"unsigned", tt.action(nil), tt.admin, 400, action.CodeBadSignature, ""},
		{"tampered", func() []byte {
			b := tt.action(nil, tt.admin)
			return bytes.Replace(b, []byte(`^passwd$`), []byte(`^shadow$`), 1)
		}(), tt.admin, 400, action.CodeBadSignature, ""},
		{"unknown module", tt.action(func(a *action.Action) { a.Operations[0].Module = "nosuch" }, tt.admin), tt.admin, 400, action.CodeUnknownModule, `"nosuch"`},
		{"bad regex", tt.action(func(a *action.Action) {
			a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["(unclosed"]}}}`)
		}, tt.admin), tt.admin, 400, action.CodeBadParameters, "(unclosed"},
		{"wrong-length hash", tt.action(func(a *action.Action) {
			a.Operations[0].Parameters = json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"sha256":["e3b0c44298fc1c149afbf4c8996fb924"]}}}`)
		}, tt.admin), tt.admin, 400, action.CodeBadParameters, `"e3b0c44298fc1c149afbf4c8996fb924"`},
		{"bad target", tt.action(func(a *action.Action) { a.Target = "1=1" }, tt.admin), tt.admin, 400, "bad_request", "1=1"},
		{"malformed JSON", []byte(`{"name": `), tt.admin, 400, "bad_request", ""},
		{"no id", tt.action(func(a *action.Action) { a.ID = 0 }), tt.admin, 400, "bad_request", "no id"},
		{"too large", bytes.Repeat([]byte(" "), MaxBodySize+10), tt.admin, 413, "too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := tt.do(tc.signer, "POST", "/actions", tc.body)
			if code != tc.want {
				t.Fatalf("status %d (%v), want %d", code, body, tc.want)
			}
			if tc.wantCode != "" && body["code"] != tc.wantCode {
				t.Errorf("code %v, want %s (%v)", body["code"], tc.wantCode, body)
			}
			if tc.wantText != "" && !strings.Contains(body["error"].(string), tc.wantText) {
				t.Errorf("error %q does not name %q", body["error"], tc.wantText)
			}
		})
	}
	if len(tt.disp.got) != 1 {
		t.Errorf("dispatched %d actions, want only the signed one", len(tt.disp.got))
	}
}

func TestNewInvestigatorPermissions(t *testing.T) {
	_, pub, _, err := sign.GenerateKey("Dana", "dana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	inv, err := NewInvestigator("Dana", string(pub), nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inv.Permissions, DefaultPermissions) {
		t.Errorf("no permissions given: got %v, want %v", inv.Permissions, DefaultPermissions)
	}
	inv, err = NewInvestigator("Dana", string(pub), []string{PermActionRead}, time.Now())
	if err != nil || !slices.Equal(inv.Permissions, []string{PermActionRead}) {
		t.Errorf("action.read: got %v, %v", inv.Permissions, err)
	}
	if _, err := NewInvestigator("Dana", string(pub), []string{"action.destroy"}, time.Now()); err == nil || !strings.Contains(err.Error(), `"action.destroy"`) {
		t.Errorf("unknown permission: got %v, want an error naming it", err)
	}
	if _, err := NewInvestigator("Dana", "not a key", nil, time.Now()); err == nil || !strings.Contains(err.Error(), `"Dana"`) {
		t.Errorf("bad key: got %v, want an error naming the investigator", err)
	}
}
