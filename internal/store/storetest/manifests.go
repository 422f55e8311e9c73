package storetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/store"
)

// newManifest returns a manifest record of name/linux/amd64 with serial.
func newManifest(name string, serial uint64) store.ManifestRecord {
	return store.ManifestRecord{
		Name: name, OS: "linux", Arch: "amd64", Serial: serial, Status: store.ManifestActive,
		Body:        []byte(`{"name":"` + name + `","signatures":["` + "\u00e9\x00" + `"]}`),
		CreatedAt:   baseTime,
		PublishedBy: "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678",
	}
}

// testManifests creates, lists, signs (replaces the body of), disables and
// selects mig-loader manifests, refuses a taken key, a stale body and bad
// records, and audits each change with it.
func testManifests(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	if _, err := s.CurrentManifest(ctx, "prod", "linux", "amd64"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CurrentManifest(none) = %v, want ErrNotFound", err)
	}
	actx := store.WithAudit(ctx, audit.Record{Kind: "manifest.publish", Actor: "test", Object: "prod"})
	id1, err := s.CreateManifest(actx, newManifest("prod", 10))
	if err != nil {
		t.Fatalf("CreateManifest: %v", err)
	}
	id2, err := s.CreateManifest(ctx, newManifest("prod", 20))
	if err != nil {
		t.Fatalf("CreateManifest(serial 20): %v", err)
	}
	if _, err := s.CreateManifest(ctx, newManifest("test", 30)); err != nil {
		t.Fatalf("CreateManifest(other name): %v", err)
	}
	if _, err := s.CreateManifest(ctx, newManifest("prod", 10)); !errors.Is(err, store.ErrExists) {
		t.Errorf("CreateManifest(taken key) = %v, want ErrExists", err)
	}
	other := newManifest("prod", 10)
	other.Arch = "arm64"
	if _, err := s.CreateManifest(ctx, other); err != nil {
		t.Errorf("CreateManifest(same serial, other arch): %v", err)
	}
	for _, bad := range []func(m *store.ManifestRecord){
		func(m *store.ManifestRecord) { m.Name = "" },
		func(m *store.ManifestRecord) { m.Name = "Prod" },
		func(m *store.ManifestRecord) { m.OS = "linux\x00" },
		func(m *store.ManifestRecord) { m.Serial = 0 },
		func(m *store.ManifestRecord) { m.Serial = 1 << 63 },
		func(m *store.ManifestRecord) { m.Status = "on" },
		func(m *store.ManifestRecord) { m.Body = nil },
		func(m *store.ManifestRecord) { m.Body = make([]byte, store.MaxManifestBody+1) },
	} {
		m := newManifest("bad", 1)
		bad(&m)
		if _, err := s.CreateManifest(ctx, m); err == nil || errors.Is(err, store.ErrExists) {
			t.Errorf("CreateManifest(%+v) = %v, want a validation error", m, err)
		}
	}
	got, err := s.Manifest(ctx, id1)
	want := newManifest("prod", 10)
	if err != nil || got.ID != id1 || got.Name != "prod" || got.OS != "linux" || got.Arch != "amd64" || got.Serial != 10 ||
		got.Status != store.ManifestActive || !bytes.Equal(got.Body, want.Body) || got.PublishedBy != want.PublishedBy ||
		!got.CreatedAt.Truncate(1e3).Equal(baseTime.Truncate(1e3)) {
		t.Errorf("Manifest(%d) = %+v, %v; want %+v", id1, got, err, want)
	}
	if _, err := s.Manifest(ctx, id1+1000); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Manifest(unknown) = %v, want ErrNotFound", err)
	}
	list, err := s.ListManifests(ctx)
	if err != nil || len(list) != 4 || list[0].ID <= list[len(list)-1].ID {
		t.Errorf("ListManifests = %d manifests, %v; want 4, newest first", len(list), err)
	}
	cur, err := s.CurrentManifest(ctx, "prod", "linux", "amd64")
	if err != nil || cur.ID != id2 {
		t.Errorf("CurrentManifest = %d, %v; want %d", cur.ID, err, id2)
	}
	if err := s.SetManifestStatus(store.WithAudit(ctx, audit.Record{Kind: "manifest.status", Actor: "test", Object: "2"}),
		id2, store.ManifestDisabled); err != nil {
		t.Fatalf("SetManifestStatus(disabled): %v", err)
	}
	if cur, err := s.CurrentManifest(ctx, "prod", "linux", "amd64"); err != nil || cur.ID != id1 {
		t.Errorf("CurrentManifest(highest disabled) = %d, %v; want %d", cur.ID, err, id1)
	}
	if err := s.SetManifestStatus(ctx, id2, "gone"); err == nil {
		t.Errorf("SetManifestStatus(bad status) succeeded")
	}
	if err := s.SetManifestStatus(ctx, id1+1000, store.ManifestActive); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("SetManifestStatus(unknown) = %v, want ErrNotFound", err)
	}
	body2 := append([]byte(nil), want.Body...)
	body2 = append(body2, ' ')
	if err := s.UpdateManifestBody(store.WithAudit(ctx, audit.Record{Kind: "manifest.sign", Actor: "test", Object: "1"}),
		id1, want.Body, body2); err != nil {
		t.Fatalf("UpdateManifestBody: %v", err)
	}
	if err := s.UpdateManifestBody(ctx, id1, want.Body, []byte("{}")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateManifestBody(stale old body) = %v, want ErrConflict", err)
	}
	if err := s.UpdateManifestBody(ctx, id1+1000, want.Body, body2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateManifestBody(unknown) = %v, want ErrNotFound", err)
	}
	if got, err := s.Manifest(ctx, id1); err != nil || !bytes.Equal(got.Body, body2) {
		t.Errorf("Manifest after UpdateManifestBody = %q, %v; want %q", got.Body, err, body2)
	}
	entries, err := s.AuditLog(ctx, 0, 0)
	if err != nil {
		t.Fatalf("AuditLog: %v", err)
	}
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	if len(kinds) != 3 || kinds[0] != "manifest.publish" || kinds[1] != "manifest.status" || kinds[2] != "manifest.sign" {
		t.Errorf("audit kinds = %q, want manifest.publish, manifest.status, manifest.sign", kinds)
	}
}

// testManifestFiles stores files under their SHA-256, idempotently,
// refuses data that does not match its hash, and reads them back.
func testManifestFiles(t *testing.T, open Opener) {
	s := openStore(t, open)
	ctx := t.Context()
	data := bytes.Repeat([]byte("mig-agent\x00\xff"), 100000)
	h := sha256.Sum256(data)
	sum := hex.EncodeToString(h[:])
	if _, err := s.ManifestFile(ctx, sum); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ManifestFile(none) = %v, want ErrNotFound", err)
	}
	if _, err := s.ManifestFileInfo(ctx, "zz\x00"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ManifestFileInfo(garbage) = %v, want ErrNotFound", err)
	}
	fi, err := s.PutManifestFile(store.WithAudit(ctx, audit.Record{Kind: "manifest.file", Actor: "test", Object: sum}), sum, data)
	if err != nil || fi.SHA256 != sum || fi.Size != int64(len(data)) {
		t.Fatalf("PutManifestFile = %+v, %v", fi, err)
	}
	if fi2, err := s.PutManifestFile(ctx, sum, data); err != nil || fi2.Size != fi.Size {
		t.Errorf("PutManifestFile(again) = %+v, %v; want it to succeed", fi2, err)
	}
	got, err := s.ManifestFile(ctx, sum)
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("ManifestFile = %d bytes, %v; want the %d stored", len(got), err, len(data))
	}
	for _, bad := range []struct {
		sum  string
		data []byte
	}{
		{sum, append([]byte{1}, data...)},
		{"ABCD", data},
		{hex.EncodeToString(make([]byte, 32)), nil},
		{string(bytes.ToUpper([]byte(sum))), data},
	} {
		if _, err := s.PutManifestFile(ctx, bad.sum, bad.data); err == nil {
			t.Errorf("PutManifestFile(%.16s, %d bytes) succeeded, want an error", bad.sum, len(bad.data))
		}
	}
	if entries, err := s.AuditLog(ctx, 0, 0); err != nil || len(entries) != 1 || entries[0].Kind != "manifest.file" {
		t.Errorf("AuditLog = %+v, %v; want one manifest.file entry", entries, err)
	}
}
