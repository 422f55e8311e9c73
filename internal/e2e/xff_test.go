package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestForwardedForSpoofing attacks the API key failure limit of the real
// mig-server -dev (no api.trustedproxies) from 127.0.0.2 with wrong keys
// carrying forged X-Forwarded-For headers. Rotating the header does not
// escape the limit, and naming another client's address in it does not get
// that client limited: the real mig, from 127.0.0.1, is still told 401 for a
// wrong key, and its valid key still works.
func TestForwardedForSpoofing(t *testing.T) {
	env, srv, dir := devPlatform(t)
	api := apiURLOf(t, srv)
	out, errOut, code := run(t, env, "apikey", "create", "-name", "xff", "-perm", "agent.read")
	if code != 0 {
		t.Fatalf("mig apikey create: exit %d\nstderr:\n%s", code, errOut)
	}
	key := strings.TrimSpace(out)

	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	must(t, err)
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
	}}
	// fail sends one wrong key (of a key ID that does not exist, so only
	// the source is counted) with X-Forwarded-For xff, and returns the
	// status.
	fail := func(xff string) int {
		t.Helper()
		var id [8]byte
		var secret [32]byte
		_, _ = rand.Read(id[:])
		_, _ = rand.Read(secret[:])
		req, _ := http.NewRequest("GET", api+"/agents", nil)
		req.Header.Set("Authorization", "MIG-APIKEY mig_"+hex.EncodeToString(id[:])+"_"+hex.EncodeToString(secret[:]))
		req.Header.Set("X-Forwarded-For", xff)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Over 2×30 failures, sent in well under a minute: whatever the window
	// boundaries, one window holds more than 30 of them.
	const burst = 70

	t.Run("rotating X-Forwarded-For", func(t *testing.T) {
		atk := attack(t, "api-limiter", "rotating X-Forwarded-For escapes the failure limit")
		limited := 0
		for i := range burst {
			if fail(fmt.Sprintf("10.%d.%d.%d", i/65536%256, i/256%256, i%256)) == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			atk.executed("%d wrong keys with rotating X-Forwarded-For were all answered 401: the header picked the source", burst)
		}
		atk.refused()
	})
	t.Run("X-Forwarded-For naming another client", func(t *testing.T) {
		atk := attack(t, "api-limiter", "forged X-Forwarded-For gets another client limited")
		for range burst {
			fail("127.0.0.1")
		}
		// The real mig, from 127.0.0.1: a wrong key is still 401, not 429.
		var sec [32]byte
		_, _ = rand.Read(sec[:])
		badEnv := append(append([]string{}, env...), "MIG_API_KEY=mig_0123456789abcdef_"+hex.EncodeToString(sec[:]))
		_, errOut, code := run(t, badEnv, "agents")
		if strings.Contains(errOut, "429") || strings.Contains(errOut, "rate_limited") {
			atk.executed("mig from 127.0.0.1 was rate limited by the attacker's forged header:\n%s", errOut)
		}
		if code == 0 || !strings.Contains(errOut, "401") {
			t.Errorf("mig agents with a wrong key: exit %d, want 401\n%s", code, errOut)
		}
		// And its valid key works.
		out, errOut, code := run(t, append(append([]string{}, env...), "MIG_API_KEY="+key), "agents", "-render", "json")
		if code != 0 || !strings.Contains(out, `"online"`) {
			atk.executed("mig with a valid key after the attack: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		atk.refused()
	})
}
