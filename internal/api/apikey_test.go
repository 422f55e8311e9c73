package api

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// keyTester is an API over SQLite with a settable clock and a captured log.
type keyTester struct {
	*tester
	st     store.Store
	dbPath string
	logs   *syncBuffer

	mu  sync.Mutex
	now time.Time
}

func (kt *keyTester) clock() time.Time {
	kt.mu.Lock()
	defer kt.mu.Unlock()
	return kt.now
}

func (kt *keyTester) advance(d time.Duration) {
	kt.mu.Lock()
	defer kt.mu.Unlock()
	kt.now = kt.now.Add(d)
}

func newKeyTester(t *testing.T, opts ...func(*Config)) (*keyTester, map[string]sign.Signer, map[string]action.Investigator) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mig.db")
	st, err := sqlitestore.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kt := &keyTester{tester: &tester{t: t, disp: &countingDispatcher{}}, st: st, dbPath: path, logs: &syncBuffer{}, now: time.Now()}
	signers, invs := map[string]sign.Signer{}, map[string]action.Investigator{}
	for _, u := range []struct {
		name  string
		perms []string
	}{
		{"admin", AllPermissions},
		{"alice", DefaultPermissions},
		{"reader", []string{PermActionRead}},
		{"auditor", []string{PermAgentRead}},
	} {
		priv, pub, _, err := sign.GenerateKey(u.name, u.name+"@example.com")
		if err != nil {
			t.Fatal(err)
		}
		s, err := sign.NewKeySigner(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		inv, err := NewInvestigator(u.name, string(pub), u.perms, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if inv.ID, err = st.CreateInvestigator(t.Context(), inv); err != nil {
			t.Fatal(err)
		}
		signers[u.name], invs[u.name] = s, inv
	}
	kt.admin, kt.reader = signers["admin"], signers["reader"]
	cfg := Config{Store: st, Dispatcher: kt.disp, Now: kt.clock,
		Logger: slog.New(slog.NewTextHandler(kt.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	a := New(cfg)
	kt.srv = httptest.NewServer(a)
	t.Cleanup(kt.srv.Close)
	return kt, signers, invs
}

// withKey sends a request authenticated by an API key (raw header value
// after the scheme).
func (kt *keyTester) withKey(key, method, path string, body []byte) (int, map[string]any, string) {
	kt.t.Helper()
	return kt.sendKey(key, "", method, path, body)
}

// sendKey is withKey with an X-Forwarded-For header (none if empty).
func (kt *keyTester) sendKey(key, xff, method, path string, body []byte) (int, map[string]any, string) {
	kt.t.Helper()
	req, err := http.NewRequest(method, kt.srv.URL+"/api/v1"+path, bytes.NewReader(body))
	if err != nil {
		kt.t.Fatal(err)
	}
	req.Header.Set("Authorization", APIKeyScheme+" "+key)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		kt.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, string(raw)
}

// createKey makes an API key as s and returns it.
func (kt *keyTester) createKey(s sign.Signer, req string) (string, action.APIKey) {
	kt.t.Helper()
	code, body := kt.do(s, "POST", "/apikeys", []byte(req))
	if code != http.StatusCreated {
		kt.t.Fatalf("POST /apikeys %s: status %d (%v), want 201", req, code, body)
	}
	b, _ := json.Marshal(body)
	var resp CreateAPIKeyResponse
	if err := json.Unmarshal(b, &resp); err != nil {
		kt.t.Fatal(err)
	}
	return resp.Key, resp.APIKey
}

func TestAPIKeyRefusals(t *testing.T) {
	kt, s, invs := newKeyTester(t)
	good, _ := kt.createKey(s["alice"], `{"name":"good"}`)
	revoked, rk := kt.createKey(s["alice"], `{"name":"to revoke"}`)
	if code, body := kt.do(s["alice"], "POST", "/apikeys/"+rk.KeyID+"/revoke", nil); code != 200 {
		t.Fatalf("revoke: %d %v", code, body)
	}
	expiring, _ := kt.createKey(s["alice"], `{"name":"short","expireafter":"`+kt.clock().Add(time.Hour).UTC().Format(time.RFC3339Nano)+`"}`)
	auditorKey, _ := kt.createKey(s["auditor"], `{"name":"auditor's"}`)
	id := good[4:20]
	wrongSecret := good[:len(good)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good[len(good)-1])+1)%16])
	unknown := "mig_00000000000000ff_" + strings.Repeat("ab", 32)

	if code, _, raw := kt.withKey(expiring, "GET", "/dashboard", nil); code != 200 {
		t.Fatalf("expiring key before expiry: %d %s", code, raw)
	}
	if code, _ := kt.do(s["admin"], "POST", "/investigators/"+itoa(invs["auditor"].ID)+"/status", []byte(`{"status":"disabled"}`)); code != 200 {
		t.Fatalf("disable auditor: %d", code)
	}
	kt.advance(2 * time.Hour)

	tests := []struct {
		name, key string
		want      int
		wantText  string
	}{
		{"good", good, 200, ""},
		{"revoked", revoked, 401, "revoked"},
		{"expired", expiring, 401, "expired"},
		{"unknown", unknown, 401, "unknown API key 00000000000000ff"},
		{"wrong secret", wrongSecret, 401, "wrong secret for API key " + id},
		{"malformed: short", "mig_abc", 401, "malformed API key"},
		{"malformed: upper-case", strings.ToUpper(good), 401, "malformed API key"},
		{"malformed: no prefix", "xyz" + good[3:], 401, "malformed API key"},
		{"malformed: bad secret", good[:21] + strings.Repeat("z", 64), 401, "secret is not 64"},
		{"empty", "", 401, ""},
		{"too long", strings.Repeat("a", 10000), 401, "over 256 bytes"},
		{"disabled investigator", auditorKey, 401, `investigator "auditor", who is disabled`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, raw := kt.withKey(tc.key, "GET", "/dashboard", nil)
			if code != tc.want {
				t.Fatalf("status %d (%s), want %d", code, raw, tc.want)
			}
			if tc.wantText != "" && !strings.Contains(body["error"].(string), tc.wantText) {
				t.Errorf("error %q does not say %q", body["error"], tc.wantText)
			}
			if code == 401 && body["code"] != "unauthenticated" {
				t.Errorf("code %v, want unauthenticated", body["code"])
			}
			if len(tc.key) == action.APIKeyLen && strings.Contains(raw, tc.key[21:]) {
				t.Errorf("answer %s echoes the secret", raw)
			}
		})
	}
}

// withKeyFrom reads the dashboard with key, from xff (none if empty).
func (kt *keyTester) withKeyFrom(xff, key string) (int, map[string]any, string) {
	kt.t.Helper()
	return kt.sendKey(key, xff, "GET", "/dashboard", nil)
}

// TestAPIKeyFailureRateLimit is the regression test of issue 12 defect 4:
// 30 bad keys from one address used to lock out every valid key from it.
func TestAPIKeyFailureRateLimit(t *testing.T) {
	kt, s, _ := newKeyTester(t)
	good, _ := kt.createKey(s["alice"], `{"name":"good"}`)
	bad := "mig_00000000000000ff_" + strings.Repeat("ab", 32)
	for i := range maxAPIKeyFailures {
		if code, _, raw := kt.withKey(bad, "GET", "/dashboard", nil); code != 401 {
			t.Fatalf("failure %d: status %d (%s), want 401", i, code, raw)
		}
	}
	for i := range 3 {
		if code, body, _ := kt.withKey(bad, "GET", "/dashboard", nil); code != http.StatusTooManyRequests || body["code"] != "rate_limited" {
			t.Fatalf("failure %d past the limit: status %d (%v), want 429 rate_limited", i, code, body)
		}
		// The valid key is checked first and works while the flood goes on.
		if code, _, raw := kt.withKey(good, "GET", "/dashboard", nil); code != 200 {
			t.Fatalf("valid key during the flood: status %d (%s), want 200", code, raw)
		}
	}
	if code, body := kt.do(s["alice"], "GET", "/dashboard", nil); code != 200 {
		t.Errorf("token during API key limit: %d %v", code, body)
	}
	kt.advance(apiKeyFailureWindow)
	if code, _, raw := kt.withKey(bad, "GET", "/dashboard", nil); code != 401 {
		t.Errorf("after the window: status %d (%s), want 401", code, raw)
	}
}

func TestAPIKeyFailureLimitPerKeyID(t *testing.T) {
	kt, s, _ := newKeyTester(t, func(c *Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	good, k := kt.createKey(s["alice"], `{"name":"good"}`)
	wrong := "mig_" + k.KeyID + "_" + strings.Repeat("cd", 32)
	// Wrong secrets for one key from many addresses: the key ID's count
	// limits them, and the right secret still works.
	for i := range maxAPIKeyFailures {
		if code, _, raw := kt.withKeyFrom(fmt.Sprintf("198.51.100.%d", i), wrong); code != 401 {
			t.Fatalf("failure %d: status %d (%s), want 401", i, code, raw)
		}
	}
	code, body, _ := kt.withKeyFrom("198.51.100.200", wrong)
	if code != http.StatusTooManyRequests || !strings.Contains(body["error"].(string), "for API key "+k.KeyID) {
		t.Fatalf("wrong secret past the key's limit: status %d (%v), want 429 naming the key", code, body)
	}
	if code, _, raw := kt.withKeyFrom("198.51.100.201", good); code != 200 {
		t.Fatalf("right secret: status %d (%s), want 200", code, raw)
	}
}

func TestAPIKeyFailureLimitTrustedProxy(t *testing.T) {
	bad := "mig_00000000000000ff_" + strings.Repeat("ab", 32)
	t.Run("trusted", func(t *testing.T) {
		// The test server's peer is 127.0.0.1: the load balancer.
		kt, _, _ := newKeyTester(t, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}
		})
		// An attacker behind the balancer writes its own X-Forwarded-For;
		// the balancer appends the attacker's address, which is the one
		// counted (two trusted hops skipped).
		for i := range maxAPIKeyFailures {
			if code, _, raw := kt.withKeyFrom("192.0.2.99, 203.0.113.7, 10.1.2.3", bad); code != 401 {
				t.Fatalf("failure %d: status %d (%s), want 401", i, code, raw)
			}
		}
		code, body, _ := kt.withKeyFrom("192.0.2.1, 203.0.113.7, 10.1.2.3", bad)
		if code != http.StatusTooManyRequests || !strings.Contains(body["error"].(string), "from 203.0.113.7") {
			t.Fatalf("attacker past its limit: status %d (%v), want 429 from 203.0.113.7", code, body)
		}
		// Another client behind the same balancer is not limited.
		if code, _, raw := kt.withKeyFrom("203.0.113.8", bad); code != 401 {
			t.Fatalf("other client behind the balancer: status %d (%s), want 401", code, raw)
		}
	})
	t.Run("untrusted", func(t *testing.T) {
		kt, _, _ := newKeyTester(t, func(c *Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		})
		// The peer is not a trusted proxy: each request claims another
		// address, and all count against the peer.
		for i := range maxAPIKeyFailures {
			if code, _, raw := kt.withKeyFrom(fmt.Sprintf("203.0.113.%d", i), bad); code != 401 {
				t.Fatalf("failure %d: status %d (%s), want 401", i, code, raw)
			}
		}
		code, body, _ := kt.withKeyFrom("203.0.113.250", bad)
		if code != http.StatusTooManyRequests || !strings.Contains(body["error"].(string), "from 127.0.0.1") {
			t.Fatalf("untrusted peer past its limit: status %d (%v), want 429 from 127.0.0.1", code, body)
		}
	})
}

func TestFailLimiterBounded(t *testing.T) {
	var l failLimiter
	now := time.Now()
	for i := range 3 * maxFailureEntries {
		l.fail(fmt.Sprintf("src%d", i), fmt.Sprintf("%016x", i), now)
	}
	if len(l.sources) > maxFailureEntries+1 || len(l.keys) > maxFailureEntries+1 {
		t.Fatalf("tables hold %d sources and %d keys, want at most %d each", len(l.sources), len(l.keys), maxFailureEntries+1)
	}
	if got := l.fail("new", "", now); got != "from new" {
		t.Errorf("a new source past the bound shares the overflow count: got %q, want limited", got)
	}
	l.fail("x", "", now.Add(apiKeyFailureWindow))
	if len(l.sources) != 1 || len(l.keys) != 0 {
		t.Errorf("after the window: %d sources, %d keys, want 1 and 0", len(l.sources), len(l.keys))
	}
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer string
		xff  []string
		want string
	}{
		{"198.51.100.1:5000", []string{"203.0.113.1"}, "198.51.100.1"},                // untrusted peer
		{"10.0.0.1:5000", nil, "10.0.0.1"},                                            // no header
		{"10.0.0.1:5000", []string{"203.0.113.1"}, "203.0.113.1"},                     // one proxy
		{"10.0.0.1:5000", []string{"1.1.1.1, 203.0.113.1, 192.0.2.1"}, "203.0.113.1"}, // two proxies
		{"10.0.0.1:5000", []string{"1.1.1.1", "203.0.113.1"}, "203.0.113.1"},          // two header lines
		{"10.0.0.1:5000", []string{"junk, 10.9.9.9"}, "10.9.9.9"},                     // garbage from a proxy
		{"10.0.0.1:5000", []string{"10.2.2.2"}, "10.2.2.2"},                           // only proxies
		{"10.0.0.1:5000", []string{"[2001:db9::1]:443"}, "2001:db9::1"},
		{"10.0.0.1:5000", []string{"::ffff:203.0.113.5"}, "203.0.113.5"},
		{"[2001:db8::7]:5000", []string{" 203.0.113.9 "}, "203.0.113.9"},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, ok := clientAddr(r, trusted)
		if !ok || got.String() != tc.want {
			t.Errorf("peer %s X-Forwarded-For %q: got %v (%v), want %s", tc.peer, tc.xff, got, ok, tc.want)
		}
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("10.0.0.0/33 parsed")
	}
	if _, err := ParseTrustedProxies([]string{"lb.example.net"}); err == nil || !strings.Contains(err.Error(), "lb.example.net") {
		t.Errorf("a host name: err %v, want one naming it", err)
	}
}

// FuzzClientAddr checks that any X-Forwarded-For gives, without a panic,
// the peer or one of the header's entries.
func FuzzClientAddr(f *testing.F) {
	f.Add("10.0.0.1:1", "203.0.113.1, 10.0.0.2")
	f.Add("[2001:db8::1]:1", "[::1]:80,junk,,")
	f.Add("10.0.0.1:1", "::ffff:1.2.3.4%eth0")
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", xff)
		got, ok := clientAddr(r, trusted)
		if !ok {
			return
		}
		p, _ := parseHop(peer)
		if got == p {
			return
		}
		if !isTrusted(p, trusted) {
			t.Fatalf("untrusted peer %q: got %v from the header", peer, got)
		}
		for _, e := range strings.Split(xff, ",") {
			if a, ok := parseHop(strings.TrimSpace(e)); ok && a == got {
				return
			}
		}
		t.Fatalf("peer %q header %q: got %v, neither", peer, xff, got)
	})
}

func TestAPIKeyPermissions(t *testing.T) {
	kt, s, invs := newKeyTester(t)
	// alice holds action.create, action.read, agent.read.
	readOnly, ro := kt.createKey(s["alice"], `{"name":"default"}`)
	if !slices.Equal(ro.Permissions, DefaultAPIKeyPermissions) {
		t.Errorf("default permissions %v, want %v", ro.Permissions, DefaultAPIKeyPermissions)
	}
	creator, _ := kt.createKey(s["alice"], `{"name":"creator","permissions":["action.create","action.read","agent.read"]}`)
	actionsOnly, _ := kt.createKey(s["alice"], `{"name":"actions","permissions":["action.read"]}`)

	// Refused: permissions alice lacks, unknown ones, bad names and times,
	// and an API key making API keys.
	for _, tc := range []struct {
		req      string
		want     int
		wantText string
	}{
		{`{"name":"x","permissions":["investigator.admin"]}`, 403, "investigator.admin"},
		{`{"name":"x","permissions":["action.destroy"]}`, 400, `"action.destroy"`},
		{`{"name":""}`, 400, "name is empty"},
		{`{"name":"` + strings.Repeat("n", 300) + `"}`, 400, "300 bytes"},
		{`{"name":"a\u0007b"}`, 400, "control"},
		{`{"name":"x","expireafter":"2001-01-01T00:00:00Z"}`, 400, "2001-01-01T00:00:00Z"},
		{`{"name":"x","expireafter":"soon"}`, 400, "soon"},
		{`{"name":"x","secret":"mine"}`, 400, "secret"},
	} {
		code, body := kt.do(s["alice"], "POST", "/apikeys", []byte(tc.req))
		if code != tc.want || !strings.Contains(body["error"].(string), tc.wantText) {
			t.Errorf("POST /apikeys %s: %d %v, want %d naming %q", tc.req, code, body["error"], tc.want, tc.wantText)
		}
	}
	if code, body, _ := kt.withKey(creator, "POST", "/apikeys", []byte(`{"name":"child"}`)); code != 403 || !strings.Contains(body["error"].(string), "OpenPGP") {
		t.Errorf("API key creating an API key: %d %v, want 403", code, body)
	}
	if code, body := kt.do(s["reader"], "POST", "/apikeys", []byte(`{"name":"x"}`)); code != 201 {
		t.Errorf("reader with only action.read, default permissions: %d %v, want 201", code, body)
	}
	if code, body := kt.do(nil, "POST", "/apikeys", []byte(`{"name":"x"}`)); code != 401 {
		t.Errorf("no authentication: %d %v, want 401", code, body)
	}

	// The key's permissions bound what it does.
	for _, tc := range []struct {
		key, path string
		want      int
	}{
		{readOnly, "/agents", 200},
		{readOnly, "/actions", 200},
		{actionsOnly, "/actions", 200},
		{actionsOnly, "/agents", 403},
		{readOnly, "/investigators", 403},
	} {
		if code, _, raw := kt.withKey(tc.key, "GET", tc.path, nil); code != tc.want {
			t.Errorf("GET %s with key %s: %d (%s), want %d", tc.path, tc.key[4:20], code, raw, tc.want)
		}
	}

	// Creating an action with a key still needs signatures that verify.
	act := kt.action(nil, s["alice"])
	if code, body, _ := kt.withKey(readOnly, "POST", "/actions", act); code != 403 {
		t.Errorf("read-only key creating an action: %d %v, want 403", code, body)
	}
	if code, body, _ := kt.withKey(creator, "POST", "/actions", kt.action(nil)); code != 400 || body["code"] != action.CodeBadSignature {
		t.Errorf("unsigned action with a key: %d %v, want 400 %s", code, body, action.CodeBadSignature)
	}
	tampered := bytes.Replace(kt.action(nil, s["alice"]), []byte(`^passwd$`), []byte(`^shadow$`), 1)
	if code, body, _ := kt.withKey(creator, "POST", "/actions", tampered); code != 400 || body["code"] != action.CodeBadSignature {
		t.Errorf("tampered action with a key: %d %v, want 400 %s", code, body, action.CodeBadSignature)
	}
	if code, body, _ := kt.withKey(creator, "POST", "/actions", act); code != 201 {
		t.Errorf("signed action with a key: %d %v, want 201", code, body)
	}
	if len(kt.disp.got) != 1 {
		t.Errorf("dispatched %d actions, want 1", len(kt.disp.got))
	}

	// Effective permissions are the intersection with the investigator's
	// current ones: take agent.read away from alice and her key loses it.
	if err := kt.setPermissions(invs["alice"], []string{PermActionRead}); err != nil {
		t.Fatal(err)
	}
	kt.advance(10 * time.Second) // past the investigator cache
	if code, _, raw := kt.withKey(readOnly, "GET", "/agents", nil); code != 403 {
		t.Errorf("key after its investigator lost agent.read: %d (%s), want 403", code, raw)
	}
	if code, _, raw := kt.withKey(readOnly, "GET", "/actions", nil); code != 200 {
		t.Errorf("key after its investigator lost agent.read, reading actions: %d (%s), want 200", code, raw)
	}
}

// setPermissions replaces an investigator's permissions in the database
// (the store has no method for it; an operator would use SQL too).
func (kt *keyTester) setPermissions(inv action.Investigator, perms []string) error {
	db, err := sql.Open("sqlite", kt.dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	pj, _ := json.Marshal(perms)
	_, err = db.ExecContext(kt.t.Context(), `UPDATE investigators SET permissions = ? WHERE id = ?`, string(pj), inv.ID)
	return err
}

func TestAPIKeyListAndRevoke(t *testing.T) {
	kt, s, _ := newKeyTester(t)
	aliceKey, ak := kt.createKey(s["alice"], `{"name":"alice's report"}`)
	kt.advance(time.Second) // listed oldest first
	readerKey, rk := kt.createKey(s["reader"], `{"name":"reader's"}`)

	list := func(code int, body map[string]any) []action.APIKey {
		t.Helper()
		if code != 200 {
			t.Fatalf("list: %d %v", code, body)
		}
		b, _ := json.Marshal(body["apikeys"])
		var keys []action.APIKey
		if err := json.Unmarshal(b, &keys); err != nil {
			t.Fatal(err)
		}
		return keys
	}
	ids := func(keys []action.APIKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	if got := ids(list(kt.do(s["alice"], "GET", "/apikeys", nil))); !slices.Equal(got, []string{ak.KeyID}) {
		t.Errorf("alice lists %v, want only her key %s", got, ak.KeyID)
	}
	code, body, raw := kt.withKey(aliceKey, "GET", "/apikeys", nil)
	if got := ids(list(code, body)); !slices.Equal(got, []string{ak.KeyID}) {
		t.Errorf("alice's key lists %v, want %s", got, ak.KeyID)
	}
	for _, secret := range []string{aliceKey[21:], readerKey[21:]} {
		if strings.Contains(raw, secret) {
			t.Errorf("list answer %s holds a secret", raw)
		}
	}
	if strings.Contains(raw, "hash") {
		t.Errorf("list answer %s holds a hash", raw)
	}
	if code, body := kt.do(s["alice"], "GET", "/apikeys?all=true", nil); code != 403 {
		t.Errorf("alice lists all: %d %v, want 403", code, body)
	}
	if code, body := kt.do(s["alice"], "GET", "/apikeys?all=maybe", nil); code != 400 || !strings.Contains(body["error"].(string), "maybe") {
		t.Errorf("all=maybe: %d %v, want 400 naming it", code, body)
	}
	if got := ids(list(kt.do(s["admin"], "GET", "/apikeys?all=true", nil))); !slices.Equal(got, []string{ak.KeyID, rk.KeyID}) {
		t.Errorf("admin lists all: %v, want %s and %s", got, ak.KeyID, rk.KeyID)
	}
	// The key's use is recorded.
	keys := list(kt.do(s["alice"], "GET", "/apikeys", nil))
	if keys[0].LastUsedAt.IsZero() {
		t.Errorf("alice's key used but last used time is zero")
	}

	// Revoking: someone else's key is not found, bad IDs are named, the
	// admin revokes anyone's, a key revokes itself.
	if code, body := kt.do(s["alice"], "POST", "/apikeys/"+rk.KeyID+"/revoke", nil); code != 404 {
		t.Errorf("alice revokes reader's key: %d %v, want 404", code, body)
	}
	if code, body := kt.do(s["alice"], "POST", "/apikeys/XYZ/revoke", nil); code != 400 || !strings.Contains(body["error"].(string), `"XYZ"`) {
		t.Errorf("bad key id: %d %v, want 400 naming it", code, body)
	}
	if code, body := kt.do(s["alice"], "POST", "/apikeys/00000000000000ff/revoke", nil); code != 404 {
		t.Errorf("unknown key id: %d %v, want 404", code, body)
	}
	if code, body := kt.do(s["admin"], "POST", "/apikeys/"+rk.KeyID+"/revoke", nil); code != 200 {
		t.Errorf("admin revokes reader's key: %d %v", code, body)
	}
	if code, body, _ := kt.withKey(aliceKey, "POST", "/apikeys/"+ak.KeyID+"/revoke", nil); code != 200 {
		t.Errorf("key revokes itself: %d %v", code, body)
	}
	for _, k := range []string{aliceKey, readerKey} {
		if code, body, _ := kt.withKey(k, "GET", "/dashboard", nil); code != 401 || !strings.Contains(body["error"].(string), "revoked") {
			t.Errorf("revoked key %s: %d %v, want 401 revoked", k[4:20], code, body)
		}
	}

	// No secret in the server's logs.
	logs := kt.logs.String()
	for _, k := range []string{aliceKey, readerKey} {
		if strings.Contains(logs, k[21:]) {
			t.Errorf("server logs hold the secret of key %s:\n%s", k[4:20], logs)
		}
	}
	if !strings.Contains(logs, ak.KeyID) {
		t.Errorf("server logs do not name key %s:\n%s", ak.KeyID, logs)
	}
}

func TestParseAPIKey(t *testing.T) {
	key, id, hash := NewAPIKey()
	gotID, secret, err := action.ParseAPIKey(key)
	if err != nil || gotID != id || len(secret) != action.APIKeySecretLen || len(hash) != 32 {
		t.Fatalf("ParseAPIKey(NewAPIKey()) = %q, %d-char secret, %v; want %q", gotID, len(secret), err, id)
	}
	if key2, id2, _ := NewAPIKey(); key2 == key || id2 == id {
		t.Errorf("two keys are the same")
	}
}
