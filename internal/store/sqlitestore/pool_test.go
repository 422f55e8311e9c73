package sqlitestore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// TestReadsDoNotWaitForWrites holds the writer in an open transaction and
// checks that reads still answer, and that a write queued behind it
// completes once the transaction ends, without SQLITE_BUSY.
func TestReadsDoNotWaitForWrites(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "mig.db"), nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.UpsertAgents(ctx, []action.Agent{{ID: "a1"}}); err != nil {
		t.Fatalf("UpsertAgents: %v", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE agents SET name = 'in a transaction'`); err != nil {
		t.Fatalf("update: %v", err)
	}

	readCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := s.Agents(readCtx, store.AgentQuery{})
	if err != nil {
		t.Fatalf("Agents while a write transaction is open: %v", err)
	}
	if len(got) != 1 || got[0].Name != "" {
		t.Errorf("Agents while a write transaction is open = %+v, want a1 as last committed", got)
	}

	done := make(chan error, 1)
	go func() { done <- s.UpsertAgents(ctx, []action.Agent{{ID: "a2"}}) }()
	select {
	case err := <-done:
		t.Fatalf("UpsertAgents finished while the writer was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("UpsertAgents queued behind a transaction: %v", err)
	}
}

// TestWriteWaitsForAnotherProcess holds the database's write lock from
// another connection, as a second process would, and checks that a store
// write waits for it instead of failing with SQLITE_BUSY.
func TestWriteWaitsForAnotherProcess(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "mig.db")
	s, err := Open(ctx, path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	other, err := sql.Open("sqlite", path+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatalf("begin in the other connection: %v", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, name, queueloc, mode, version, pid, status,
		heartbeattime, starttime, environment, tags) VALUES ('x', '', '', '', '', 0, 'online', '', '', '{}', '{}')`); err != nil {
		t.Fatalf("insert in the other connection: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.UpsertAgents(ctx, []action.Agent{{ID: "a1"}}) }()
	time.Sleep(300 * time.Millisecond)
	if err := tx.Commit(); err != nil {
		t.Fatalf("commit in the other connection: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("UpsertAgents while another connection held the write lock: %v", err)
	}
	if n, err := s.CountAgents(ctx, nil); err != nil || n != 2 {
		t.Errorf("CountAgents = %d, %v; want 2", n, err)
	}
}
