package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// nonceStore is a real store that counts the nonce calls and can fail
// them.
type nonceStore struct {
	store.Store
	mu     sync.Mutex
	uses   int
	purges []int64 // what each purge deleted
	useErr error   // when set, UseTokenNonce fails with it
}

func (s *nonceStore) UseTokenNonce(ctx context.Context, n store.TokenNonce) error {
	s.mu.Lock()
	s.uses++
	err := s.useErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.UseTokenNonce(ctx, n)
}

func (s *nonceStore) PurgeTokenNonces(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.Store.PurgeTokenNonces(ctx, now)
	s.mu.Lock()
	s.purges = append(s.purges, n)
	s.mu.Unlock()
	return n, err
}

// tokenTester is an API over a real SQLite store, with a clock the test
// moves, and one investigator allowed to read agents.
type tokenTester struct {
	t      *testing.T
	st     *nonceStore
	srv    *httptest.Server
	signer sign.Signer
	mu     sync.Mutex
	now    time.Time
}

func newTokenTester(t *testing.T) *tokenTester {
	t.Helper()
	db, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tt := &tokenTester{t: t, st: &nonceStore{Store: db}, now: time.Now()}
	priv, pub, _, err := sign.GenerateKey("reader", "reader@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if tt.signer, err = sign.NewKeySigner(priv, nil); err != nil {
		t.Fatal(err)
	}
	inv, err := NewInvestigator("reader", string(pub), []string{PermAgentRead}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateInvestigator(t.Context(), inv); err != nil {
		t.Fatal(err)
	}
	a := New(Config{Store: tt.st, Now: tt.clock})
	tt.srv = httptest.NewServer(a)
	t.Cleanup(tt.srv.Close)
	return tt
}

func (tt *tokenTester) clock() time.Time {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.now
}

func (tt *tokenTester) advance(d time.Duration) {
	tt.mu.Lock()
	tt.now = tt.now.Add(d)
	tt.mu.Unlock()
}

func (tt *tokenTester) token() string {
	tt.t.Helper()
	tok, err := sign.MakeToken(tt.signer, tt.clock())
	if err != nil {
		tt.t.Fatal(err)
	}
	return tok
}

// get sends GET path with tok and returns the status and error message.
func (tt *tokenTester) get(path, tok string) (int, string) {
	tt.t.Helper()
	req, err := http.NewRequest("GET", tt.srv.URL+"/api/v1"+path, nil)
	if err != nil {
		tt.t.Fatal(err)
	}
	req.Header.Set("Authorization", "MIG-PGP "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tt.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	var body struct{ Error, Code string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		tt.t.Errorf("GET %s: answer is not JSON: %v", path, err)
	}
	return resp.StatusCode, body.Error
}

func TestTokenUsedOnce(t *testing.T) {
	tt := newTokenTester(t)
	tok := tt.token()
	if code, msg := tt.get("/agents/count", tok); code != 200 {
		t.Fatalf("first use: status %d (%s), want 200", code, msg)
	}
	// The same token again, on the same endpoint or another, later in
	// its window: refused, saying why.
	for _, path := range []string{"/agents/count", "/dashboard"} {
		tt.advance(10 * time.Second)
		code, msg := tt.get(path, tok)
		if code != 401 || !strings.Contains(msg, "token replayed") {
			t.Errorf("replay on %s: status %d (%s), want 401 saying the token was replayed", path, code, msg)
		}
	}
	// A new token works.
	if code, msg := tt.get("/agents/count", tt.token()); code != 200 {
		t.Errorf("new token: status %d (%s), want 200", code, msg)
	}
}

func TestTokenConcurrentUse(t *testing.T) {
	tt := newTokenTester(t)
	tok := tt.token()
	const tries = 12
	codes := make([]int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = tt.get("/agents/count", tok)
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 401:
			refused++
		}
	}
	if ok != 1 || refused != tries-1 {
		t.Errorf("%d concurrent uses of one token: %d answered 200 and %d 401 (%v), want 1 and %d", tries, ok, refused, codes, tries-1)
	}
}

func TestTokenRefusals(t *testing.T) {
	tt := newTokenTester(t)
	now := tt.clock()
	old, err := sign.MakeToken(tt.signer, now.Add(-sign.TokenMaxAge-sign.TokenMaxSkew-2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	future, err := sign.MakeToken(tt.signer, now.Add(sign.TokenMaxSkew+2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	nonce := strings.Repeat("7f", 16)
	sec := strconv.FormatInt(now.Unix(), 10)
	v1sig, err := tt.signer.Sign([]byte("mig-token-v1;" + sec + ";" + nonce))
	if err != nil {
		t.Fatal(err)
	}
	v1 := "1;" + sec + ";" + nonce + ";" + base64.StdEncoding.EncodeToString([]byte(v1sig))
	priv, _, _, err := sign.GenerateKey("stranger", "stranger@example.com")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := sign.MakeToken(stranger, now)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, token, want string
	}{
		{"too old", old, "before now"},
		{"from the future", future, "check the clocks"},
		{"version 1", v1, "version 1 is refused"},
		{"version 1 relabelled", "2" + v1[1:], "bad signature"},
		{"unknown key", foreign, "not in the keyring"},
		{"garbage", "2;x;y;z", "not a decimal Unix time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if code, msg := tt.get("/agents/count", tc.token); code != 401 || !strings.Contains(msg, tc.want) {
				t.Errorf("status %d (%s), want 401 saying %q", code, msg, tc.want)
			}
		})
	}
	// None of them reached the store: only verified tokens of active
	// investigators spend a nonce.
	tt.st.mu.Lock()
	defer tt.st.mu.Unlock()
	if tt.st.uses != 0 {
		t.Errorf("refused tokens made %d UseTokenNonce calls, want 0", tt.st.uses)
	}
}

// TestTokenStoreFailureRefuses checks that a server that cannot record a
// nonce refuses the request instead of accepting a token it cannot make
// single-use.
func TestTokenStoreFailureRefuses(t *testing.T) {
	tt := newTokenTester(t)
	tt.st.mu.Lock()
	tt.st.useErr = errors.New("disk full")
	tt.st.mu.Unlock()
	if code, msg := tt.get("/agents/count", tt.token()); code != 500 {
		t.Errorf("status %d (%s), want 500", code, msg)
	}
}

func TestTokenNoncesPurged(t *testing.T) {
	tt := newTokenTester(t)
	purges := func() []int64 {
		tt.st.mu.Lock()
		defer tt.st.mu.Unlock()
		return append([]int64(nil), tt.st.purges...)
	}
	// The first request purges (nothing yet); three tokens are used.
	for range 3 {
		if code, msg := tt.get("/agents/count", tt.token()); code != 200 {
			t.Fatalf("status %d (%s), want 200", code, msg)
		}
	}
	if got := purges(); len(got) != 1 || got[0] != 0 {
		t.Fatalf("purges %v, want one that deleted nothing", got)
	}
	// Past the tokens' expiry and the purge interval, the next request
	// purges the three nonces; the one after does not purge again.
	tt.advance(sign.TokenMaxAge + sign.TokenMaxSkew + NoncePurgeInterval)
	for range 2 {
		if code, msg := tt.get("/agents/count", tt.token()); code != 200 {
			t.Fatalf("status %d (%s), want 200", code, msg)
		}
	}
	if got := purges(); len(got) != 2 || got[1] != 3 {
		t.Errorf("purges %v, want a second one that deleted the 3 expired nonces", got)
	}
}
