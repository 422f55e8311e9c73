package storetest

import (
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// testAPIKeys stores API keys with their hashes, lists them by
// investigator without hashes, revokes them once and records their last
// use only forwards.
func testAPIKeys(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	alice, err := s.CreateInvestigator(ctx, action.Investigator{Name: "Alice", Fingerprint: "AAAA0000AAAA0000AAAA0000AAAA0000AAAA0000",
		PublicKey: "alice's key", Permissions: []string{"action.read"}, CreatedAt: baseTime})
	if err != nil {
		t.Fatalf("CreateInvestigator(alice): %v", err)
	}
	bob, err := s.CreateInvestigator(ctx, action.Investigator{Name: "Bob", Fingerprint: "BBBB0000BBBB0000BBBB0000BBBB0000BBBB0000",
		PublicKey: "bob's key", CreatedAt: baseTime})
	if err != nil {
		t.Fatalf("CreateInvestigator(bob): %v", err)
	}
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	k1 := store.APIKey{APIKey: action.APIKey{KeyID: "0123456789abcdef", InvestigatorID: alice, Name: "nightly report ✓",
		Permissions: []string{"action.read", "agent.read"}, CreatedAt: baseTime, ExpireAfter: baseTime.Add(720 * time.Hour)},
		SecretHash: hash("one")}
	k2 := store.APIKey{APIKey: action.APIKey{KeyID: "fedcba9876543210", InvestigatorID: alice, Name: "",
		CreatedAt: baseTime.Add(time.Second)}, SecretHash: hash("two")}
	k3 := store.APIKey{APIKey: action.APIKey{KeyID: "00000000000000ff", InvestigatorID: bob, Name: "bob's",
		Permissions: []string{"agent.read"}, CreatedAt: baseTime.Add(2 * time.Second)}, SecretHash: hash("three")}
	for _, k := range []store.APIKey{k1, k2, k3} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.KeyID, err)
		}
	}
	dup := k3
	dup.SecretHash = hash("other")
	if err := s.CreateAPIKey(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateAPIKey(duplicate %s) error = %v, want ErrExists", dup.KeyID, err)
	}
	orphan := k3
	orphan.KeyID, orphan.InvestigatorID = "1111111111111111", bob+alice+100
	if err := s.CreateAPIKey(ctx, orphan); err == nil {
		t.Errorf("CreateAPIKey for unknown investigator %d succeeded", orphan.InvestigatorID)
	}
	for _, bad := range []store.APIKey{
		{APIKey: action.APIKey{KeyID: "XYZ", InvestigatorID: alice}, SecretHash: hash("x")},
		{APIKey: action.APIKey{KeyID: "0123456789ABCDEF", InvestigatorID: alice}, SecretHash: hash("x")},
		{APIKey: action.APIKey{KeyID: "2222222222222222", InvestigatorID: alice}, SecretHash: []byte("short")},
		{APIKey: action.APIKey{KeyID: "3333333333333333"}, SecretHash: hash("x")},
	} {
		if err := s.CreateAPIKey(ctx, bad); err == nil {
			t.Errorf("CreateAPIKey(%q, investigator %d, %d-byte hash) succeeded", bad.KeyID, bad.InvestigatorID, len(bad.SecretHash))
		}
	}

	got, err := s.APIKey(ctx, k1.KeyID)
	if err != nil {
		t.Fatalf("APIKey(%s): %v", k1.KeyID, err)
	}
	if d := diff(k1, got); d != "" {
		t.Errorf("APIKey(%s) (-want +got):\n%s", k1.KeyID, d)
	}
	for _, id := range []string{"aaaaaaaaaaaaaaaa", "", "nul\x00byte", "\xff"} {
		if _, err := s.APIKey(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("APIKey(%q) error = %v, want ErrNotFound", id, err)
		}
		if err := s.RevokeAPIKey(ctx, id, baseTime); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RevokeAPIKey(%q) error = %v, want ErrNotFound", id, err)
		}
		if err := s.TouchAPIKey(ctx, id, baseTime); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TouchAPIKey(%q) error = %v, want ErrNotFound", id, err)
		}
	}

	list := func(inv int64) []action.APIKey {
		t.Helper()
		keys, err := s.APIKeys(ctx, inv)
		if err != nil {
			t.Fatalf("APIKeys(%d): %v", inv, err)
		}
		return keys
	}
	if d := diff([]action.APIKey{k1.APIKey, k2.APIKey}, list(alice)); d != "" {
		t.Errorf("APIKeys(alice) (-want +got):\n%s", d)
	}
	if d := diff([]action.APIKey{k1.APIKey, k2.APIKey, k3.APIKey}, list(0)); d != "" {
		t.Errorf("APIKeys(0) (-want +got):\n%s", d)
	}
	if keys := list(bob + alice + 100); len(keys) != 0 {
		t.Errorf("APIKeys(unknown investigator) = %v, want none", keys)
	}

	revoked := baseTime.Add(time.Hour)
	if err := s.RevokeAPIKey(ctx, k2.KeyID, revoked); err != nil {
		t.Fatalf("RevokeAPIKey(%s): %v", k2.KeyID, err)
	}
	if err := s.RevokeAPIKey(ctx, k2.KeyID, revoked.Add(time.Hour)); err != nil {
		t.Errorf("RevokeAPIKey(%s) again: %v", k2.KeyID, err)
	}
	used := baseTime.Add(2 * time.Hour)
	if err := s.TouchAPIKey(ctx, k1.KeyID, used); err != nil {
		t.Fatalf("TouchAPIKey(%s): %v", k1.KeyID, err)
	}
	if err := s.TouchAPIKey(ctx, k1.KeyID, used.Add(-time.Minute)); err != nil {
		t.Errorf("TouchAPIKey(%s) with an earlier time: %v", k1.KeyID, err)
	}
	if got, err := s.APIKey(ctx, k2.KeyID); err != nil || !got.RevokedAt.Equal(revoked) {
		t.Errorf("APIKey(%s) after two revocations: revoked at %v, %v; want %v (the first)", k2.KeyID, got.RevokedAt, err, revoked)
	}
	if got, err := s.APIKey(ctx, k1.KeyID); err != nil || !got.LastUsedAt.Equal(used) || !got.RevokedAt.IsZero() {
		t.Errorf("APIKey(%s): last used %v, revoked %v, %v; want last used %v, not revoked", k1.KeyID, got.LastUsedAt, got.RevokedAt, err, used)
	}
	keys := list(alice)
	if i := slices.IndexFunc(keys, func(k action.APIKey) bool { return k.KeyID == k2.KeyID }); i < 0 || !keys[i].RevokedAt.Equal(revoked) {
		t.Errorf("APIKeys(alice) = %+v: want %s revoked at %v", keys, k2.KeyID, revoked)
	}
}
