package agent

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// corruptFiles lists what was moved aside in dir.
func corruptFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "corrupt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestJournal(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	j, err := openJournal(dir, true, time.Now(), discard())
	if err != nil {
		t.Fatal(err)
	}
	e1 := journalEntry{Action: 1, Command: 10, ExpireAfter: now.Add(time.Hour).UTC()}
	if _, ok, err := j.claim(e1, now); !ok || err != nil {
		t.Fatalf("first claim of action 1 = %v, %v; want claimed", ok, err)
	}
	got, ok, err := j.claim(journalEntry{Action: 1, Command: 11, ExpireAfter: now.Add(time.Hour)}, now)
	if ok || err != nil || got.Command != 10 {
		t.Fatalf("second claim of action 1 = %+v, %v, %v; want the entry of command 10, not claimed", got, ok, err)
	}
	old := journalEntry{Action: 2, Command: 20, ExpireAfter: now.Add(-2 * journalGrace).UTC()}
	if _, ok, err := j.claim(old, now); !ok || err != nil {
		t.Fatalf("claim of action 2 = %v, %v", ok, err)
	}

	// Reopened, the journal has both; pruned, the long-expired one goes.
	j2, err := openJournal(dir, true, time.Now(), discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{1, 2} {
		if _, ok := j2.lookup(id); !ok {
			t.Errorf("reopened journal has no action %d", id)
		}
	}
	if err := j2.prune(now); err != nil {
		t.Fatal(err)
	}
	if _, ok := j2.lookup(2); ok {
		t.Errorf("pruned journal still has expired action 2")
	}
	j3, _ := openJournal(dir, true, time.Now(), discard())
	if diff := cmp.Diff(map[uint64]journalEntry{1: e1}, j3.entries, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
		t.Errorf("journal on disk after prune (-want +got):\n%s", diff)
	}
	if fi, err := os.Stat(j.path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("journal file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestJournalCorruptMovedAside(t *testing.T) {
	for _, data := range []string{"{not json", `{"v":2,"entries":[]}`, `{"v":1,"entries":[{"action":1}]}`} {
		dir := t.TempDir()
		writeFile(t, dir, "journal.json", data)
		j, err := openJournal(dir, true, time.Now(), discard())
		if err != nil {
			t.Fatalf("openJournal(%q) = %v, want it to go on", data, err)
		}
		if len(j.entries) != 0 {
			t.Errorf("openJournal(%q) has %d entries, want none", data, len(j.entries))
		}
		if got := corruptFiles(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], "journal.json.") {
			t.Errorf("corrupt files after openJournal(%q) = %v, want the journal", data, got)
		}
	}
}

func resultBytes(t *testing.T, id uint64) []byte {
	t.Helper()
	b, err := action.Marshal(action.ResultMessage{V: action.ProtocolVersion, AgentID: "a", CommandID: id, Status: action.CmdSuccess})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOutbox(t *testing.T) {
	dir := t.TempDir()
	o, err := openOutbox(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint64{3, 1, 2} {
		if err := o.put(id, resultBytes(t, id)); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage next to the results: a corrupt result, a result under the
	// wrong name, a stray name and a leftover temporary file.
	writeFile(t, o.dir, "7.json", "garbage")
	os.WriteFile(filepath.Join(o.dir, "8.json"), resultBytes(t, 9), 0o600)
	writeFile(t, o.dir, "notes.txt", "x")
	writeFile(t, o.dir, ".4.json.tmp123", "partial")

	o2, err := openOutbox(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint64{1, 2, 3}, o2.list()); diff != "" {
		t.Errorf("reopened outbox (-want +got):\n%s", diff)
	}
	if got := len(corruptFiles(t, dir)); got != 3 {
		t.Errorf("%d files moved aside, want 3", got)
	}
	if _, err := os.Stat(filepath.Join(o.dir, ".4.json.tmp123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left in the outbox: %v", err)
	}
	n, err := o2.ack([]uint64{2, 5})
	if n != 1 || err != nil {
		t.Errorf("ack(2, 5) = %d, %v; want 1 removed", n, err)
	}
	if o2.has(2) {
		t.Errorf("outbox still has acknowledged result 2")
	}
	if _, err := os.Stat(filepath.Join(o.dir, "2.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("acknowledged result file still there: %v", err)
	}
	if data, err := o2.get(3); err != nil || string(data) != string(resultBytes(t, 3)) {
		t.Errorf("get(3) = %q, %v", data, err)
	}
}

func TestInbox(t *testing.T) {
	dir := t.TempDir()
	in, items, err := openInbox(dir, discard())
	if err != nil || len(items) != 0 {
		t.Fatalf("openInbox = %v, %v", items, err)
	}
	var added []inboxItem
	for i := range 3 {
		it, ok, err := in.add([]byte(fmt.Sprintf("cmd%d", i)))
		if !ok || err != nil {
			t.Fatalf("add = %v, %v", ok, err)
		}
		added = append(added, it)
	}
	if err := in.done(added[1]); err != nil {
		t.Fatal(err)
	}
	in2, items, err := openInbox(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, string(it.data))
	}
	if diff := cmp.Diff([]string{"cmd0", "cmd2"}, got); diff != "" {
		t.Errorf("reopened inbox, oldest first (-want +got):\n%s", diff)
	}
	// New files sort after the old ones.
	it, _, err := in2.add([]byte("cmd3"))
	if err != nil {
		t.Fatal(err)
	}
	if seq, _ := idFromName(filepath.Base(it.path)); seq <= 0 {
		t.Errorf("new inbox file %s has no sequence", it.path)
	}
	_, items, _ = openInbox(dir, discard())
	if last := string(items[len(items)-1].data); last != "cmd3" {
		t.Errorf("newest inbox item = %q, want cmd3", last)
	}
}

func TestInboxFull(t *testing.T) {
	in, _, err := openInbox(t.TempDir(), discard())
	if err != nil {
		t.Fatal(err)
	}
	for range maxInbox {
		if _, ok, err := in.add([]byte("x")); !ok || err != nil {
			t.Fatalf("add = %v, %v", ok, err)
		}
	}
	if _, ok, err := in.add([]byte("x")); ok || err != nil {
		t.Errorf("add to a full inbox = %v, %v; want refused without error", ok, err)
	}
}

func TestIdentity(t *testing.T) {
	dir := t.TempDir()
	k1, err := loadIdentity(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	k2, err := loadIdentity(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Equal(k2) {
		t.Errorf("second start made a new key")
	}
	fi, err := os.Stat(filepath.Join(dir, "agent.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent.key mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	id := action.AgentID(k1.Public().(ed25519.PublicKey))
	if err := relay.CheckAgentID(id); err != nil {
		t.Errorf("AgentID = %q: %v", id, err)
	}

	writeFile(t, dir, "agent.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	k3, err := loadIdentity(dir, discard())
	if err != nil {
		t.Fatalf("loadIdentity with a corrupt key = %v, want a new key", err)
	}
	if k3.Equal(k1) {
		t.Errorf("corrupt key file gave the old key")
	}
	if got := corruptFiles(t, dir); len(got) != 1 {
		t.Errorf("corrupt files = %v, want the old key", got)
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	id := "0123456789abcdef0123456789abcdef"
	want := relay.Credentials{URL: "nats://127.0.0.1:4222", User: id, Password: "p"}
	if _, ok := loadCredentials(dir, id, discard()); ok {
		t.Fatal("credentials before any were saved")
	}
	if err := saveCredentials(dir, id, want); err != nil {
		t.Fatal(err)
	}
	got, ok := loadCredentials(dir, id, discard())
	if !ok || got != want {
		t.Errorf("loadCredentials = %+v, %v; want %+v", got, ok, want)
	}
	if _, ok := loadCredentials(dir, "ffffffffffffffffffffffffffffffff", discard()); ok {
		t.Errorf("credentials of another agent were accepted")
	}
	if len(corruptFiles(t, dir)) != 1 {
		t.Errorf("credentials of another agent were not moved aside")
	}
}

func TestOSIdent(t *testing.T) {
	tests := []struct{ in, want string }{
		{"NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "Debian GNU/Linux 12 (bookworm)"},
		{"NAME=Fedora\nVERSION_ID=40\n", "Fedora 40"},
		{"# comment\nNAME='Alpine Linux'\n", "Alpine Linux"},
		{"garbage\n=\n", ""},
	}
	for _, tt := range tests {
		if got := osIdent([]byte(tt.in)); got != tt.want {
			t.Errorf("osIdent(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFitResult(t *testing.T) {
	big := make([]string, 0, 3000)
	for i := range 3000 {
		big = append(big, fmt.Sprintf("%d-%s", i, strings.Repeat("x", 4096)))
	}
	elems, _ := json.Marshal(big)
	tests := []struct {
		name      string
		results   []action.Result
		wantCode  string
		wantNote  bool
		wantStats bool
	}{
		{"small", []action.Result{{Success: true, Elements: json.RawMessage(`[1,2]`), Statistics: json.RawMessage(`{"n":2}`)}}, "", false, true},
		{"elements too large", []action.Result{
			{Success: true, Elements: elems, Statistics: json.RawMessage(`{"files":3000}`)},
			{Success: true, Elements: json.RawMessage(`[1]`), Statistics: json.RawMessage(`{"n":1}`)},
		}, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, key, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			m := &action.ResultMessage{V: action.ProtocolVersion, AgentID: action.AgentID(key.Public().(ed25519.PublicKey)),
				CommandID: 1, Status: action.CmdSuccess, Results: tt.results}
			data, err := sealResult(m, key, strings.Repeat("\x01", action.MaxNameLen), action.ActionHash([]byte("x")))
			if err != nil {
				t.Fatalf("sealResult: %v", err)
			}
			if len(data) > action.MaxMessageSize {
				t.Fatalf("sealResult gave %d bytes, over %d", len(data), action.MaxMessageSize)
			}
			got, err := action.DecodeResult(data)
			if err != nil {
				t.Fatalf("sealResult output does not decode: %v", err)
			}
			// The signature covers what was sent, after fitting.
			if err := action.VerifyResult(got.Fields(), got.Signature); err != nil {
				t.Errorf("the fitted result does not verify: %v", err)
			}
			if got.Code != tt.wantCode {
				t.Errorf("code = %q, want %q", got.Code, tt.wantCode)
			}
			r := got.Results[0]
			hasNote := len(r.Errors) > 0 && strings.Contains(r.Errors[0], action.CodeTooLarge)
			if hasNote != tt.wantNote {
				t.Errorf("truncation note = %v (errors %q), want %v", hasNote, r.Errors, tt.wantNote)
			}
			if (len(r.Statistics) > 0) != tt.wantStats {
				t.Errorf("statistics = %s, want kept: %v", r.Statistics, tt.wantStats)
			}
			if tt.wantNote {
				var kept []string
				if err := json.Unmarshal(r.Elements, &kept); err != nil || len(kept) == 0 || kept[0] != big[0] {
					t.Errorf("truncated elements do not start with the first element (%d kept, %v)", len(kept), err)
				}
				if string(got.Results[1].Elements) != "[1]" {
					t.Errorf("small result's elements = %s, want untouched", got.Results[1].Elements)
				}
			}
		})
	}
}

func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"v":1,"entries":[{"action":1,"command":2,"expireafter":"2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"v":1,"entries":[]}`))
	f.Add([]byte(`{"v":1,"entries":[{"action":1}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"v":1,"epoch":"2026-12-07T12:00:00.123456789Z","entries":[{"action":1,"command":2,"expireafter":"2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"v":1,"epoch":"not a time","entries":[]}`))
	f.Add([]byte(`{"v":1,"epoch":"0001-01-01T00:00:00Z","entries":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, epoch, err := parseJournal(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseJournal error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for id, e := range m {
			if e.Action != id || e.Command == 0 || e.ExpireAfter.IsZero() {
				t.Fatalf("parseJournal accepted entry %+v under %d", e, id)
			}
		}
		// What the agent writes back reads the same: the epoch in
		// particular is never lost on a save.
		out, err := encodeJournal(epoch, m)
		if err != nil {
			return // a time json cannot encode (year over 9999)
		}
		m2, epoch2, err := parseJournal(out)
		if err != nil {
			t.Fatalf("parseJournal of its own encoding %s: %v", out, err)
		}
		if !epoch2.Equal(epoch) || len(m2) != len(m) {
			t.Fatalf("round trip: epoch %v entries %d, want %v and %d", epoch2, len(m2), epoch, len(m))
		}
	})
}

func FuzzCredentials(f *testing.F) {
	id := "0123456789abcdef0123456789abcdef"
	f.Add([]byte(`{"agentid":"` + id + `","relay":{"url":"nats://x:1","user":"u","password":"p","ca":""}}`))
	f.Add([]byte(`{"agentid":"other","relay":{"url":"nats://x:1"}}`))
	f.Add([]byte(`{"agentid":"` + id + `","relay":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCredentials(data, id)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseCredentials error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if c.URL == "" {
			t.Fatalf("parseCredentials accepted credentials without a URL")
		}
	})
}

func FuzzResultFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"success"}`))
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":0,"status":"success"}`))
	f.Add([]byte(`{"v":1,"agentid":"a","commandid":1,"status":"sent"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseResultFile(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseResultFile error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if m.CommandID == 0 || !action.IsTerminal(m.Status) {
			t.Fatalf("parseResultFile accepted %+v", m)
		}
	})
}

func FuzzOSIdent(f *testing.F) {
	f.Add([]byte("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"))
	f.Add([]byte("NAME=Fedora\nVERSION_ID=40\n"))
	f.Add([]byte("NAME=\"unterminated\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if got := osIdent(data); len(got) > 256 {
			t.Fatalf("osIdent returned %d bytes, over 256", len(got))
		}
	})
}

func TestInboxOverfullAtStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "inbox"), 0o700); err != nil {
		t.Fatal(err)
	}
	for i := range maxInbox + 2 {
		writeFile(t, filepath.Join(dir, "inbox"), fileName(uint64(i+1)), "cmd")
	}
	_, items, err := openInbox(dir, discard())
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != maxInbox {
		t.Errorf("openInbox kept %d commands, want the oldest %d", len(items), maxInbox)
	}
	if got := len(corruptFiles(t, dir)); got != 2 {
		t.Errorf("%d commands moved aside, want 2", got)
	}
}
