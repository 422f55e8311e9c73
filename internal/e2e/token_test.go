package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/sign"
)

// capturedRequest is what an eavesdropper between mig and the server saw.
type capturedRequest struct {
	method, path, auth string
}

// TestTokenReplayRefused runs the real mig-server -dev and mig, with a TLS
// proxy between them that records every request, as an attacker who
// terminates TLS in front of the server would: every request of one mig
// run (the target count, the launch and each poll that follows it) carries
// a token of its own, a captured token sent again to the server is refused
// 401 "token replayed", and of concurrent requests with one new token,
// exactly one succeeds.
func TestTokenReplayRefused(t *testing.T) {
	env, srv, dir := devPlatform(t)
	b, err := os.ReadFile(filepath.Join(dir, "client.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		API    struct{ URL, CA string }
		Signer struct{ Keyfile string }
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(cfg.API.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatalf("no certificate in %s", cfg.API.CA)
	}
	direct := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	apiURL, err := url.Parse(cfg.API.URL)
	if err != nil {
		t.Fatal(err)
	}

	// The recording proxy, and a mig configuration that goes through it.
	var mu sync.Mutex
	var captured []capturedRequest
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			mu.Lock()
			captured = append(captured, capturedRequest{r.In.Method, r.In.URL.Path, r.In.Header.Get("Authorization")})
			mu.Unlock()
			r.SetURL(&url.URL{Scheme: apiURL.Scheme, Host: apiURL.Host})
		},
		Transport: direct.Transport,
	})
	t.Cleanup(proxy.Close)
	proxyCA := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(proxyCA, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxy.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	migrc, _ := json.Marshal(map[string]any{
		"api":    map[string]string{"url": proxy.URL + apiURL.Path, "ca": proxyCA},
		"signer": map[string]string{"keyfile": cfg.Signer.Keyfile},
	})
	proxied := filepath.Join(t.TempDir(), "migrc")
	if err := os.WriteFile(proxied, migrc, 0o600); err != nil {
		t.Fatal(err)
	}
	viaProxy := append(append([]string{}, env...), "MIG_CONFIG="+proxied)

	out, errOut, code := run(t, viaProxy, "file", "-path", "/etc", "-name", "^passwd$")
	if code != 0 || !strings.Contains(out, "/etc/passwd [lastmodified:") {
		t.Fatalf("mig file through the proxy: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	mu.Lock()
	seen := append([]capturedRequest(nil), captured...)
	mu.Unlock()
	nonces := map[string]capturedRequest{}
	var launch, poll *capturedRequest
	for i, c := range seen {
		tok, ok := strings.CutPrefix(c.auth, "MIG-PGP ")
		f := strings.Split(tok, ";")
		if !ok || len(f) != 4 || f[0] != sign.TokenVersion {
			t.Fatalf("%s %s carried Authorization %q, want a version %s MIG-PGP token", c.method, c.path, c.auth, sign.TokenVersion)
		}
		if prev, dup := nonces[f[2]]; dup {
			t.Errorf("%s %s and %s %s carried the same token nonce %s", prev.method, prev.path, c.method, c.path, f[2])
		}
		nonces[f[2]] = c
		switch {
		case c.method == "POST" && strings.HasSuffix(c.path, "/actions"):
			launch = &seen[i]
		case c.method == "GET" && strings.Contains(c.path, "/actions/"):
			poll = &seen[i]
		}
	}
	if launch == nil || poll == nil {
		t.Fatalf("captured %v: want the launch and at least one poll of its results", seen)
	}

	// Replays of captured tokens, sent straight to the server: refused.
	replay := func(auth, path string) (int, map[string]string) {
		t.Helper()
		req, err := http.NewRequest("GET", apiURL.Scheme+"://"+apiURL.Host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", auth)
		resp, err := direct.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	for _, c := range []capturedRequest{*launch, *poll} {
		atk := attack(t, "investigator-token", "a token captured from "+c.method+" "+c.path+" replayed")
		switch code, body := replay(c.auth, apiURL.Path+"/dashboard"); {
		case code == 200:
			atk.executed("the replayed token was accepted")
		case code != 401 || body["code"] != "unauthenticated" || !strings.Contains(body["error"], "token replayed"):
			t.Errorf("replay of the token of %s %s: status %d %v, want 401 unauthenticated \"token replayed\"", c.method, c.path, code, body)
		default:
			atk.refused()
		}
	}

	// One new token, used by several requests at once: exactly one passes.
	key, err := os.ReadFile(cfg.Signer.Keyfile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewKeySigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A version 1 token (reusable for five minutes), really signed.
	atk := attack(t, "investigator-token", "a version 1 token (downgrade)")
	sec, nonce := strconv.FormatInt(time.Now().Unix(), 10), strings.Repeat("c3", 16)
	v1sig, err := signer.Sign([]byte("mig-token-v1;" + sec + ";" + nonce))
	if err != nil {
		t.Fatal(err)
	}
	v1 := "1;" + sec + ";" + nonce + ";" + base64.StdEncoding.EncodeToString([]byte(v1sig))
	switch code, body := replay("MIG-PGP "+v1, apiURL.Path+"/dashboard"); {
	case code == 200:
		atk.executed("the version 1 token was accepted")
	case code != 401 || !strings.Contains(body["error"], "version 1 is refused"):
		t.Errorf("version 1 token: status %d %v, want 401 saying version 1 is refused", code, body)
	default:
		atk.refused()
	}

	atk = attack(t, "investigator-token", "one token used by concurrent requests")
	tok, err := sign.MakeToken(signer, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	const tries = 8
	codes := make([]int, tries)
	msgs := make([]string, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var body map[string]string
			codes[i], body = replay("MIG-PGP "+tok, apiURL.Path+"/agents/count")
			msgs[i] = body["error"]
		}()
	}
	wg.Wait()
	passed := 0
	for i, c := range codes {
		switch {
		case c == 200:
			passed++
		case c != 401 || !strings.Contains(msgs[i], "token replayed"):
			t.Errorf("concurrent use %d: status %d (%s), want 200 or 401 \"token replayed\"", i, c, msgs[i])
		}
	}
	switch {
	case passed > 1:
		atk.executed("%d of %d concurrent uses of one token succeeded (%v)", passed, tries, codes)
	case passed == 0:
		t.Errorf("none of %d concurrent uses of a new token succeeded (%v), want exactly 1", tries, codes)
	default:
		atk.refused()
	}
	if !strings.Contains(srv.output(), "token replayed") {
		t.Errorf("the server logged no \"token replayed\" warning")
	}
}
