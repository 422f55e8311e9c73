package api

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// BenchmarkAuthenticate measures one authenticated request (GET
// /apikeys on an investigator with one key) in process, with an API key and
// with a new OpenPGP token for each request, as the client does (a token is
// accepted once); making the token is not timed, verifying it and
// recording its nonce are.
func BenchmarkAuthenticate(b *testing.B) {
	st, err := sqlitestore.Open(b.Context(), filepath.Join(b.TempDir(), "mig.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	priv, pub, _, err := sign.GenerateKey("bench", "bench@example.com")
	if err != nil {
		b.Fatal(err)
	}
	signer, err := sign.NewKeySigner(priv, nil)
	if err != nil {
		b.Fatal(err)
	}
	inv, err := NewInvestigator("bench", string(pub), nil, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if inv.ID, err = st.CreateInvestigator(b.Context(), inv); err != nil {
		b.Fatal(err)
	}
	key, keyID, hash := NewAPIKey()
	k := store.APIKey{SecretHash: hash}
	k.KeyID, k.InvestigatorID, k.Name, k.Permissions = keyID, inv.ID, "bench", DefaultAPIKeyPermissions
	if err := st.CreateAPIKey(b.Context(), k); err != nil {
		b.Fatal(err)
	}
	token := func(b *testing.B) string {
		b.StopTimer()
		defer b.StartTimer()
		tok, err := sign.MakeToken(signer, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		return "MIG-PGP " + tok
	}
	h := New(Config{Store: st, Dispatcher: &countingDispatcher{}})
	for _, bc := range []struct {
		name string
		auth func(b *testing.B) string
	}{
		{"apikey", func(*testing.B) string { return APIKeyScheme + " " + key }},
		{"pgp-token", token},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "/api/v1/apikeys", nil)
				req.Header.Set("Authorization", bc.auth(b))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
