package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/store"
)

// nonceKeyA and nonceKeyB are signers' key fingerprints.
const (
	nonceKeyA = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"
	nonceKeyB = "B1B2C3D4E5F60718293A4B5C6D7E8F9012345678"
)

// testTokenNonces records token nonces once, refuses a second use through
// this store and through another over the same database, keeps nonces of
// different keys apart, refuses malformed ones, and purges exactly the
// expired ones.
func testTokenNonces(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	exp := baseTime.Truncate(time.Second).Add(time.Minute)
	n1 := store.TokenNonce{KeyID: nonceKeyA, Nonce: strings.Repeat("0a", 16), Expires: exp}
	if err := s.UseTokenNonce(ctx, n1); err != nil {
		t.Fatalf("UseTokenNonce(first use): %v", err)
	}
	again := n1
	again.Expires = exp.Add(time.Hour)
	if err := s.UseTokenNonce(ctx, again); !errors.Is(err, store.ErrReplayed) {
		t.Errorf("UseTokenNonce(second use, other expiry) = %v, want ErrReplayed", err)
	}
	other := openStore(t, open)
	if err := other.UseTokenNonce(ctx, n1); !errors.Is(err, store.ErrReplayed) {
		t.Errorf("UseTokenNonce(second use through another store) = %v, want ErrReplayed", err)
	}
	byB := n1
	byB.KeyID = nonceKeyB
	if err := s.UseTokenNonce(ctx, byB); err != nil {
		t.Errorf("UseTokenNonce(same nonce, other key): %v", err)
	}
	upper := n1
	upper.Nonce = strings.ToUpper(n1.Nonce)
	if err := s.UseTokenNonce(ctx, upper); err != nil {
		t.Errorf("UseTokenNonce(nonce differing in case only): %v, want it to be another nonce", err)
	}
	for _, bad := range []store.TokenNonce{
		{KeyID: "", Nonce: "00", Expires: exp},
		{KeyID: nonceKeyA, Nonce: "", Expires: exp},
		{KeyID: nonceKeyA, Nonce: "00"},
		{KeyID: nonceKeyA, Nonce: "00", Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		{KeyID: strings.Repeat("A", store.MaxNonceKeyIDLen+1), Nonce: "00", Expires: exp},
		{KeyID: nonceKeyA, Nonce: strings.Repeat("0", store.MaxNonceLen+1), Expires: exp},
		{KeyID: nonceKeyA, Nonce: "0 0", Expires: exp},
		{KeyID: nonceKeyA, Nonce: "\xff\xfe", Expires: exp},
		{KeyID: "A\x00", Nonce: "00", Expires: exp},
	} {
		if err := s.UseTokenNonce(ctx, bad); err == nil || errors.Is(err, store.ErrReplayed) {
			t.Errorf("UseTokenNonce(%q, %q, %s) = %v, want an error naming the bad field", bad.KeyID, bad.Nonce, bad.Expires, err)
		}
	}

	// Purge: nonces expired at or before now go, the others stay.
	expiries := map[string]time.Time{
		"past":  exp.Add(-time.Second),
		"now":   exp,
		"later": exp.Add(time.Second),
	}
	for name, e := range expiries {
		if err := s.UseTokenNonce(ctx, store.TokenNonce{KeyID: nonceKeyB, Nonce: name, Expires: e}); err != nil {
			t.Fatalf("UseTokenNonce(%s): %v", name, err)
		}
	}
	// n1, byB and upper expire at exp too: with "past" and "now", five go.
	if n, err := s.PurgeTokenNonces(ctx, exp); err != nil || n != 5 {
		t.Errorf("PurgeTokenNonces(%s) = %d, %v; want 5", exp, n, err)
	}
	if n, err := other.PurgeTokenNonces(ctx, exp); err != nil || n != 0 {
		t.Errorf("PurgeTokenNonces(%s) again = %d, %v; want 0", exp, n, err)
	}
	// A purged nonce is forgotten, an unexpired one is not.
	if err := s.UseTokenNonce(ctx, n1); err != nil {
		t.Errorf("UseTokenNonce(purged nonce): %v, want it forgotten", err)
	}
	if err := s.UseTokenNonce(ctx, store.TokenNonce{KeyID: nonceKeyB, Nonce: "later", Expires: exp}); !errors.Is(err, store.ErrReplayed) {
		t.Errorf("UseTokenNonce(unexpired nonce after a purge) = %v, want ErrReplayed", err)
	}
	if n, err := s.PurgeTokenNonces(ctx, exp.Add(time.Hour)); err != nil || n != 2 {
		t.Errorf("PurgeTokenNonces(an hour later) = %d, %v; want 2 (the table is empty after)", n, err)
	}
}

// testTokenNoncesConcurrent uses each nonce from many goroutines at once,
// through two stores over one database (two servers): exactly one use of
// each succeeds.
func testTokenNoncesConcurrent(t *testing.T, open Opener) {
	stores := []store.Store{openStore(t, open), openStore(t, open)}
	ctx := t.Context()
	const nonces, tries = 20, 8
	exp := time.Now().Add(time.Minute)
	var mu sync.Mutex
	won := map[string]int{}
	var wg sync.WaitGroup
	for i := range nonces {
		nonce := fmt.Sprintf("%032x", i)
		for j := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := stores[j%len(stores)].UseTokenNonce(ctx, store.TokenNonce{KeyID: nonceKeyA, Nonce: nonce, Expires: exp})
				switch {
				case err == nil:
					mu.Lock()
					won[nonce]++
					mu.Unlock()
				case !errors.Is(err, store.ErrReplayed):
					t.Errorf("UseTokenNonce(%s): %v, want nil or ErrReplayed", nonce, err)
				}
			}()
		}
	}
	wg.Wait()
	for i := range nonces {
		nonce := fmt.Sprintf("%032x", i)
		if won[nonce] != 1 {
			t.Errorf("nonce %s: %d of %d concurrent uses succeeded, want exactly 1", nonce, won[nonce], tries)
		}
	}
}
