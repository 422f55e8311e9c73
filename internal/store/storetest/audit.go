package storetest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// readAudit reads the whole audit log in pages of page entries and
// verifies it.
func readAudit(t *testing.T, s store.Store, page int) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	var v audit.Verifier
	var after uint64
	for {
		es, err := s.AuditLog(t.Context(), after, page)
		if err != nil {
			t.Fatalf("AuditLog(after %d): %v", after, err)
		}
		if len(es) > store.AuditPageSize(page) {
			t.Fatalf("AuditLog(after %d, limit %d) returned %d entries", after, page, len(es))
		}
		if len(es) == 0 {
			break
		}
		if err := v.Add(es...); err != nil {
			t.Fatalf("the stored audit log does not verify: %v", err)
		}
		out = append(out, es...)
		after = es[len(es)-1].Seq
	}
	if err := v.Done(); err != nil {
		t.Fatal(err)
	}
	return out
}

// testAudit appends entries, reads them back as they were hashed, and
// checks that the changes that take an audit record (store.WithAudit)
// append it with the change, and not without it.
func testAudit(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	if es, err := s.AuditLog(ctx, 0, 10); err != nil || len(es) != 0 {
		t.Fatalf("AuditLog of an empty store = %v, %v; want none", es, err)
	}
	at := baseTime
	made, err := s.AppendAudit(ctx,
		audit.Record{Time: at, Actor: audit.ActorServer, Kind: audit.KindInvestigatorCreate, Object: "AAAA",
			Details: map[string]string{"name": "Alice ✓", "quote": `"<&>"`}},
		audit.Record{Actor: audit.ActorAPIKeyPrefix + "0123456789abcdef", Kind: audit.KindActionLaunch, Object: "7"},
	)
	if err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	if len(made) != 2 || made[0].Seq != 1 || made[1].Seq != 2 || made[0].Time != at.Truncate(time.Microsecond) {
		t.Fatalf("AppendAudit made %+v, want entries 1 and 2, the first at its record's time", made)
	}
	got := readAudit(t, s, 1)
	if d := diff(made, got); d != "" {
		t.Errorf("AuditLog differs from what AppendAudit made (-made +read):\n%s", d)
	}

	// Changes with a record append it in their transaction.
	rec := func(kind, obj string) audit.Record {
		return audit.Record{Actor: audit.ActorInvestigatorPrefix + "AAAA", Kind: kind, Object: obj}
	}
	inv := action.Investigator{Name: "Audited", Fingerprint: "CCCC0000CCCC0000CCCC0000CCCC0000CCCC0000",
		PublicKey: "key", Status: action.InvestigatorActive, CreatedAt: baseTime}
	id, err := s.CreateInvestigator(store.WithAudit(ctx, rec(audit.KindInvestigatorCreate, inv.Fingerprint)), inv)
	if err != nil {
		t.Fatalf("CreateInvestigator: %v", err)
	}
	if _, err := s.CreateInvestigator(store.WithAudit(ctx, rec(audit.KindInvestigatorCreate, "dup")), inv); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateInvestigator(again) = %v, want ErrExists", err)
	}
	if err := s.SetInvestigatorStatus(store.WithAudit(ctx, rec(audit.KindInvestigatorDisable, fmt.Sprint(id))), id, action.InvestigatorDisabled); err != nil {
		t.Fatalf("SetInvestigatorStatus: %v", err)
	}
	if err := s.SetInvestigatorStatus(store.WithAudit(ctx, rec(audit.KindInvestigatorDisable, "nobody")), id+1000, action.InvestigatorDisabled); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetInvestigatorStatus(unknown) = %v, want ErrNotFound", err)
	}
	sum := sha256.Sum256([]byte("secret"))
	k := store.APIKey{APIKey: action.APIKey{KeyID: "aaaaaaaaaaaaaaaa", InvestigatorID: id, Name: "audited", CreatedAt: baseTime},
		SecretHash: sum[:]}
	if err := s.CreateAPIKey(store.WithAudit(ctx, rec(audit.KindAPIKeyCreate, k.KeyID)), k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if err := s.CreateAPIKey(store.WithAudit(ctx, rec(audit.KindAPIKeyCreate, "dup")), k); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateAPIKey(again) = %v, want ErrExists", err)
	}
	if err := s.RevokeAPIKey(store.WithAudit(ctx, rec(audit.KindAPIKeyRevoke, k.KeyID)), k.KeyID, baseTime); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	if err := s.RevokeAPIKey(store.WithAudit(ctx, rec(audit.KindAPIKeyRevoke, "nokey")), "bbbbbbbbbbbbbbbb", baseTime); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("RevokeAPIKey(unknown) = %v, want ErrNotFound", err)
	}
	a := newAction(4242, baseTime, baseTime.Add(time.Hour))
	twoRecs := store.WithAudit(store.WithAudit(ctx, rec(audit.KindActionCreate, "4242")), rec(audit.KindActionLaunch, "4242"))
	if err := s.CreateAction(twoRecs, a); err != nil {
		t.Fatalf("CreateAction: %v", err)
	}
	if err := s.CreateAction(store.WithAudit(ctx, rec(audit.KindActionCreate, "dup")), a); !errors.Is(err, store.ErrExists) {
		t.Fatalf("CreateAction(again) = %v, want ErrExists", err)
	}
	// Without a record, nothing is appended; other methods ignore one.
	if err := s.TouchAPIKey(store.WithAudit(ctx, rec("touch", k.KeyID)), k.KeyID, baseTime.Add(time.Hour)); err != nil {
		t.Fatalf("TouchAPIKey: %v", err)
	}
	if err := s.SetInvestigatorStatus(ctx, id, action.InvestigatorActive); err != nil {
		t.Fatalf("SetInvestigatorStatus: %v", err)
	}

	got = readAudit(t, s, 0)
	var objs []string
	for _, e := range got[2:] {
		objs = append(objs, e.Kind+" "+e.Object)
	}
	want := []string{"investigator.create " + inv.Fingerprint, "investigator.disable " + fmt.Sprint(id),
		"apikey.create " + k.KeyID, "apikey.revoke " + k.KeyID, "action.create 4242", "action.launch 4242"}
	if d := diff(want, objs); d != "" {
		t.Errorf("audited changes (-want +got):\n%s", d)
	}
	if got, err := s.AuditLog(ctx, 3, 2); err != nil || len(got) != 2 || got[0].Seq != 4 {
		t.Errorf("AuditLog(after 3, limit 2) = %d entries from %v, %v", len(got), got, err)
	}
}

// testAuditConcurrent appends from two stores over one database (two
// servers) and several goroutines each, through AppendAudit and through
// audited changes: the log stays one unbroken chain holding every entry.
func testAuditConcurrent(t *testing.T, open Opener) {
	s1 := openStore(t, open)
	s2 := openStore(t, open)
	ctx := t.Context()
	inv, err := s1.CreateInvestigator(ctx, action.Investigator{Name: "Conc", Fingerprint: "DDDD0000DDDD0000DDDD0000DDDD0000DDDD0000",
		PublicKey: "key", CreatedAt: baseTime})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		s := []store.Store{s1, s2}[w%2]
		wg.Go(func() {
			for i := range each {
				r := audit.Record{Actor: audit.ActorServer, Kind: audit.KindActionLaunch, Object: fmt.Sprintf("%d-%d", w, i)}
				if i%3 == 0 {
					sum := sha256.Sum256([]byte{byte(w), byte(i)})
					k := store.APIKey{APIKey: action.APIKey{KeyID: fmt.Sprintf("%08x%08x", w, i), InvestigatorID: inv, Name: "c"},
						SecretHash: sum[:]}
					r.Kind = audit.KindAPIKeyCreate
					if err := s.CreateAPIKey(store.WithAudit(ctx, r), k); err != nil {
						errs <- err
					}
					continue
				}
				if _, err := s.AppendAudit(ctx, r); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent append: %v", err)
	}
	got := readAudit(t, s2, 7)
	if len(got) != workers*each {
		t.Fatalf("the log holds %d entries, want %d", len(got), workers*each)
	}
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.Object] = true
	}
	if len(seen) != workers*each {
		t.Errorf("%d distinct entries, want %d", len(seen), workers*each)
	}
}
