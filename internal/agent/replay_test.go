package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
)

func TestOpenJournalEpoch(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 123, time.UTC)
	t.Run("first start", func(t *testing.T) {
		dir := t.TempDir()
		j, err := openJournal(dir, true, now, discard())
		if err != nil {
			t.Fatal(err)
		}
		if !j.epoch.IsZero() {
			t.Errorf("a new agent's journal has epoch %v, want none", j.epoch)
		}
		if !fileExists(filepath.Join(dir, "journal.json")) {
			t.Errorf("the journal is not on disk after the first start")
		}
		j2, err := openJournal(dir, false, now.Add(time.Hour), discard())
		if err != nil || !j2.epoch.IsZero() {
			t.Errorf("reopened: epoch %v, %v; want none", j2.epoch, err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		dir := t.TempDir()
		j, err := openJournal(dir, false, now, discard())
		if err != nil {
			t.Fatal(err)
		}
		if !j.epoch.Equal(now) {
			t.Errorf("epoch %v, want %v", j.epoch, now)
		}
		// The epoch is on disk at once and survives later starts and
		// saves.
		if _, _, err := j.claim(journalEntry{Action: 1, Command: 2, ExpireAfter: now.Add(time.Hour)}, now); err != nil {
			t.Fatal(err)
		}
		j2, err := openJournal(dir, false, now.Add(time.Hour), discard())
		if err != nil || !j2.epoch.Equal(now) || len(j2.entries) != 1 {
			t.Errorf("reopened: epoch %v, %d entries, %v; want %v and 1", j2.epoch, len(j2.entries), err, now)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "journal.json"), []byte(`{"v":1,"entries":[`), 0o600); err != nil {
			t.Fatal(err)
		}
		// Corrupt is lost even on what looks like a first start.
		j, err := openJournal(dir, true, now, discard())
		if err != nil {
			t.Fatal(err)
		}
		if !j.epoch.Equal(now) {
			t.Errorf("epoch %v, want %v", j.epoch, now)
		}
		if got := corruptFiles(t, dir); len(got) != 1 {
			t.Errorf("corrupt files = %v, want the journal", got)
		}
	})
	t.Run("unwritable", func(t *testing.T) {
		_, err := openJournal(filepath.Join(t.TempDir(), "missing"), false, now, discard())
		if err == nil || !strings.Contains(err.Error(), "journal") {
			t.Errorf("openJournal in a missing directory: %v, want an error about the journal", err)
		}
	})
}

func TestStateDirFresh(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		make string
		want bool
	}{
		{"", true},
		{"agent.key", true}, // a provisioned identity
		{"outbox/", false},
	} {
		if strings.HasSuffix(tc.make, "/") {
			must(t, os.Mkdir(filepath.Join(dir, tc.make), 0o700))
		} else if tc.make != "" {
			must(t, os.WriteFile(filepath.Join(dir, tc.make), nil, 0o600))
		}
		if got, err := stateDirFresh(dir); err != nil || got != tc.want {
			t.Errorf("with %q: fresh %v, %v; want %v", tc.make, got, err, tc.want)
		}
	}
	if got, err := stateDirFresh(filepath.Join(dir, "none")); err != nil || !got {
		t.Errorf("missing statedir: fresh %v, %v; want true", got, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestAgentRefusesReplayAfterJournalLoss runs an action on a real agent
// process, loses the journal (deleted, then corrupted), restarts the agent
// and sends the same signed action again: it is refused as a possible replay
// and does not run, while an action signed after the restart runs.
func TestAgentRefusesReplayAfterJournalLoss(t *testing.T) {
	for _, loss := range []struct {
		name string
		lose func(path string) error
	}{
		{"deleted", os.Remove},
		{"corrupted", func(path string) error { return os.WriteFile(path, []byte("\x00garbage"), 0o600) }},
	} {
		t.Run(loss.name, func(t *testing.T) {
			p := newPlatform(t)
			a := p.newAgent(t, agentOpts{})
			all := "name LIKE '%'"
			act := signed(t, newAction(all, testOp("ok")), "alice")
			first := newID()
			p.send(t, a.id, first, act)
			if r := p.resultsFor(t, a.id, first)[first]; r.Status != action.CmdSuccess {
				t.Fatalf("first run: command %d status %q code %q (%s), want success", r.CommandID, r.Status, r.Code, r.Error)
			}
			p.ack(a.id, first)
			a.stop()
			if err := loss.lose(filepath.Join(a.dir, "journal.json")); err != nil {
				t.Fatal(err)
			}
			a.start()
			again := newID()
			p.send(t, a.id, again, act)
			r := p.resultsFor(t, a.id, again)[again]
			p.ack(a.id, again)
			if r.CommandID != again || r.Status != action.CmdFailed || r.Code != action.CodeReplay || len(r.Results) != 0 {
				t.Fatalf("replay after the journal was %s: command %d status %q code %q (%s), %d results; want failed %q",
					loss.name, r.CommandID, r.Status, r.Code, r.Error, len(r.Results), action.CodeReplay)
			}
			if !strings.Contains(r.Error, "before this agent's journal began") || !strings.Contains(r.Error, "possible replay") {
				t.Errorf("refusal %q does not say why", r.Error)
			}
			log, _ := os.ReadFile(a.logPath)
			if n := strings.Count(string(log), `"msg":"running a command"`); n != 1 {
				t.Errorf("the agent ran %d commands, want 1 (the first)", n)
			}
			fresh := newAction(all, testOp("ok"))
			fresh.ValidFrom = time.Now().UTC()
			fresh = signed(t, fresh, "alice")
			id := newID()
			p.send(t, a.id, id, fresh)
			if r := p.resultsFor(t, a.id, id)[id]; r.Status != action.CmdSuccess {
				t.Errorf("action signed after the restart: command %d status %q code %q (%s), want success", r.CommandID, r.Status, r.Code, r.Error)
			}
		})
	}
}

func TestAgentRefusesLongValidity(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	long := newAction("name LIKE '%'", testOp("ok"))
	long.ExpireAfter = long.ValidFrom.Add(DefaultMaxValidity + time.Second)
	id := newID()
	p.send(t, a.id, id, signed(t, long, "alice"))
	r := p.resultsFor(t, a.id, id)[id]
	if r.Status != action.CmdFailed || r.Code != action.CodeValidityTooLong {
		t.Fatalf("command %d status %q code %q (%s), want failed %q", r.CommandID, r.Status, r.Code, r.Error, action.CodeValidityTooLong)
	}
	if !strings.Contains(r.Error, "maxvalidity of 24h0m0s") {
		t.Errorf("refusal %q does not name the limit", r.Error)
	}
}

func TestConfigMaxValidity(t *testing.T) {
	c := validConfig(t)
	for _, bad := range []string{"0s", "-1h", "745h"} {
		c2 := c
		if err := c2.setString("maxvalidity", bad); err != nil {
			t.Fatal(err)
		}
		if err := c2.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "maxvalidity") {
			t.Errorf("maxvalidity %s: %v, want an error naming maxvalidity", bad, err)
		}
	}
	env, err := loadConfig("", func(k string) string {
		if k == "MIG_AGENT_MAX_VALIDITY" {
			return "2h"
		}
		return ""
	})
	if err != nil || env.MaxValidity != 2*time.Hour {
		t.Errorf("MIG_AGENT_MAX_VALIDITY=2h: %v, %v", env.MaxValidity, err)
	}
	if DefaultConfig().MaxValidity != DefaultMaxValidity {
		t.Errorf("default maxvalidity %v, want %v", DefaultConfig().MaxValidity, DefaultMaxValidity)
	}
	c2 := c
	must(t, c2.setString("maxvalidity", "1h"))
	if err := c2.Validate(); err != nil || c2.MaxValidity != time.Hour {
		t.Errorf("maxvalidity 1h: %v, %v", c2.MaxValidity, err)
	}
}
