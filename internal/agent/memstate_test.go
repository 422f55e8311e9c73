package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	_ "github.com/migplatform/mig/internal/module/file"
	"github.com/migplatform/mig/internal/relay/natsrelay"
)

// TestMemoryState checks the in-memory inbox, outbox and journal of
// Options.MemoryState: they behave as the disk ones while the process
// lives, and write nothing to the state directory.
func TestMemoryState(t *testing.T) {
	now := time.Now()
	j := newMemoryJournal()
	e := journalEntry{Action: 7, Command: 70, ExpireAfter: now.Add(time.Minute)}
	if _, claimed, err := j.claim(e, now); !claimed || err != nil {
		t.Fatalf("first claim of action 7 = %v, %v; want claimed", claimed, err)
	}
	if old, claimed, err := j.claim(journalEntry{Action: 7, Command: 71, ExpireAfter: e.ExpireAfter}, now); claimed || err != nil || old.Command != 70 {
		t.Errorf("second claim of action 7 = %+v, %v, %v; want the entry of command 70, not claimed", old, claimed, err)
	}
	if err := j.prune(now.Add(2 * journalGrace)); err != nil {
		t.Fatal(err)
	}
	if _, ok := j.lookup(7); ok {
		t.Errorf("action 7 still in the journal after it expired")
	}

	o := newMemoryOutbox()
	for _, id := range []uint64{3, 1, 2} {
		if err := o.put(id, resultBytes(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, o.list()); diff != "" {
		t.Errorf("outbox list (-want +got):\n%s", diff)
	}
	if n, err := o.ack([]uint64{2, 5}); n != 1 || err != nil {
		t.Errorf("ack(2, 5) = %d, %v; want 1 removed", n, err)
	}
	if _, err := o.get(2); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("get(2) after ack = %v, want os.ErrNotExist", err)
	}
	if data, err := o.get(3); err != nil || string(data) != string(resultBytes(t, 3)) {
		t.Errorf("get(3) = %q, %v; want the result put", data, err)
	}

	in := newMemoryInbox()
	var items []inboxItem
	for i := range maxInbox {
		it, ok, err := in.add([]byte(fmt.Sprintf("cmd%d", i)))
		if !ok || err != nil {
			t.Fatalf("add %d = %v, %v", i, ok, err)
		}
		items = append(items, it)
	}
	if _, ok, err := in.add([]byte("one too many")); ok || err != nil {
		t.Errorf("add to a full inbox = %v, %v; want not added, no error", ok, err)
	}
	if err := in.done(items[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := in.add([]byte("again")); !ok || err != nil {
		t.Errorf("add after done = %v, %v; want added", ok, err)
	}
}

// TestMemoryStateAgent runs an agent with Options.MemoryState through a
// command and checks that its state directory holds only its identity and
// credentials.
func TestMemoryStateAgent(t *testing.T) {
	p := newPlatform(t)
	c := inProcessConfig(t, p)
	// The file module, in process: the test process does not serve
	// testmodule.
	a, err := NewWithOptions(c, slog.New(slog.DiscardHandler), natsrelay.Dial,
		Options{MemoryState: true, RunParsed: module.RunParsed})
	if err != nil {
		t.Fatalf("NewWithOptions: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	p.hello(t, a.ID())
	dir := t.TempDir()
	params, err := json.Marshal(map[string]any{"searches": map[string]any{"s": map[string]any{"paths": []string{dir}, "names": []string{"^x$"}}}})
	if err != nil {
		t.Fatal(err)
	}
	act := signed(t, newAction("name LIKE '%'", action.Operation{Module: "file", Parameters: params}), "alice")
	first, again := newID(), newID()
	p.send(t, a.ID(), first, act)
	if r := p.result(t, a.ID()); r.CommandID != first || r.Status != action.CmdSuccess {
		t.Errorf("result for command %d status %q, want %d %q", r.CommandID, r.Status, first, action.CmdSuccess)
	}
	p.send(t, a.ID(), again, act)
	// The first result may be sent again before its ack lands: skip repeats.
	if r := p.resultsFor(t, a.ID(), again)[again]; r.Code != action.CodeReplay {
		t.Errorf("same action again: result for command %d code %q, want %d %q", r.CommandID, r.Code, again, action.CodeReplay)
	}
	ents, err := os.ReadDir(c.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "inbox", "outbox", "journal.json":
			t.Errorf("state directory has %s, want the state in memory", e.Name())
		}
	}
}
