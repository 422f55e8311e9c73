//go:build unix

package agent

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
)

// TestAgentStateFileModes runs a real agent and checks that everything it
// wrote in its state directory is 0600 in 0700 directories; then that it
// refuses to start when its key or credentials are open to other users,
// naming the file and the fix.
func TestAgentStateFileModes(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	p.mu.Lock()
	p.noAck[a.id] = true // the result stays in the outbox
	p.mu.Unlock()
	id := newID()
	p.send(t, a.id, id, signed(t, newAction("name LIKE '%'", testOp("ok")), "alice"))
	if r := p.resultsFor(t, a.id, id)[id]; r.Status != action.CmdSuccess {
		t.Fatalf("status %q code %q (%s), want success", r.Status, r.Code, r.Error)
	}
	a.stop()
	seen := map[string]bool{}
	err := filepath.WalkDir(a.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a.dir, path)
		seen[rel] = true
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is mode %04o, want %04o", rel, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"agent.key", "relay.json", "journal.json", "outbox", filepath.Join("outbox", fileName(id)), "inbox"} {
		if !seen[f] {
			t.Errorf("%s is not in the state directory (have %v)", f, seen)
		}
	}

	for _, f := range []struct{ name, what string }{{"agent.key", "agent key"}, {"relay.json", "relay credentials"}} {
		for _, mode := range []fs.FileMode{0o640, 0o604, 0o620} {
			path := filepath.Join(a.dir, f.name)
			must(t, os.Chmod(path, mode))
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			out, err := exec.CommandContext(ctx, a.exe, "-c", a.cfgPath).CombinedOutput()
			cancel()
			if err == nil {
				t.Fatalf("the agent started with %s mode %04o", f.name, mode)
			}
			if s := string(out); !strings.Contains(s, f.what+" "+path) || !strings.Contains(s, "chmod 600 "+path) {
				t.Errorf("with %s mode %04o the agent said %q, want the file and the fix", f.name, mode, s)
			}
			must(t, os.Chmod(path, 0o600))
		}
	}
	// An open state directory is closed, with a warning, and the agent
	// runs.
	must(t, os.Chmod(a.dir, 0o755))
	a.start()
	fi, err := os.Stat(a.dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v (%v), want 0700 after a start", fi.Mode().Perm(), err)
	}
}

func TestCheckStatePerms(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	dir := filepath.Join(t.TempDir(), "state")
	must(t, checkStatePerms(dir, log))
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("new statedir is mode %04o, want 0700", fi.Mode().Perm())
	}
	must(t, os.Mkdir(filepath.Join(dir, "corrupt"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "corrupt"), 0o755))
	must(t, checkStatePerms(dir, log))
	if fi, _ := os.Stat(filepath.Join(dir, "corrupt")); fi.Mode().Perm() != 0o700 {
		t.Errorf("corrupt/ is mode %04o after the check, want 0700", fi.Mode().Perm())
	}
	if !strings.Contains(buf.String(), "mode=0755") {
		t.Errorf("no warning naming the old mode: %s", buf.String())
	}
	must(t, os.WriteFile(filepath.Join(dir, "agent.key"), []byte("k"), 0o600))
	must(t, os.Chmod(filepath.Join(dir, "agent.key"), 0o644))
	if err := checkStatePerms(dir, log); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("agent.key 0644: %v, want a refusal naming the mode", err)
	}
	must(t, os.Remove(filepath.Join(dir, "agent.key")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(dir, "relay.json")))
	if err := checkStatePerms(dir, log); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("relay.json a symlink: %v, want a refusal", err)
	}
	must(t, os.Remove(filepath.Join(dir, "relay.json")))
	if os.Geteuid() == 0 {
		must(t, os.WriteFile(filepath.Join(dir, "agent.key"), []byte("k"), 0o600))
		must(t, os.Chown(filepath.Join(dir, "agent.key"), 65534, 65534))
		if err := checkStatePerms(dir, log); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("agent.key owned by another user: %v, want a refusal", err)
		}
		must(t, os.Remove(filepath.Join(dir, "agent.key")))
		must(t, os.Chown(dir, 65534, 65534))
		if err := checkStatePerms(dir, log); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
			t.Errorf("statedir owned by another user: %v, want a refusal", err)
		}
	}
}

// TestJournalOpenToOthersIsLost checks that a journal others could write is
// not trusted: it is moved aside and a new epoch begins.
func TestJournalOpenToOthersIsLost(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	j, err := openJournal(dir, true, now, discard())
	must(t, err)
	if _, _, err := j.claim(journalEntry{Action: 1, Command: 2, ExpireAfter: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	must(t, os.Chmod(filepath.Join(dir, "journal.json"), 0o666))
	later := now.Add(time.Minute)
	j2, err := openJournal(dir, false, later, discard())
	must(t, err)
	if !j2.epoch.Equal(later) || len(j2.entries) != 0 {
		t.Errorf("journal open to others: epoch %v, %d entries; want a new journal at %v", j2.epoch, len(j2.entries), later)
	}
	if got := corruptFiles(t, dir); len(got) != 1 {
		t.Errorf("corrupt files = %v, want the journal", got)
	}
}
