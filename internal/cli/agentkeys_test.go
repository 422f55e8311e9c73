package cli

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/agentkeys"
)

// TestResultsVerify checks mig results against a fake API that shows
// signed, unsigned and server-ended commands, then results changed in
// every way a server could change them.
func TestResultsVerify(t *testing.T) {
	pinPath := filepath.Join(t.TempDir(), "home", ".mig", "agentkeys")
	t.Setenv(agentkeys.PathEnv, pinPath)
	keys := make([]ed25519.PrivateKey, 3)
	for i := range keys {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
	}
	answer := func(i int, a *action.Action) action.Command {
		name := fmt.Sprintf("host%d", i)
		if i == 3 {
			return action.Command{Action: action.Action{ID: a.ID}, AgentID: "c0ffee", AgentName: name, Status: action.CmdExpired}
		}
		c := action.Command{ID: uint64(i + 1), Action: action.Action{ID: a.ID}, AgentID: action.AgentID(keys[i].Public().(ed25519.PublicKey)),
			AgentName: name, Status: action.CmdSuccess, Results: []action.Result{{FoundAnything: true, Success: true,
				Elements: json.RawMessage(`{"s1":[{"file":"/etc/passwd","fileinfo":{"size":1234}}]}`)}}}
		if i == 2 {
			return c // an agent older than result signing
		}
		checked, err := a.Check()
		if err != nil {
			t.Error(err)
		}
		if c.Signature, err = action.SignResult(keys[i], c.ResultFields(),
			action.ResultSignature{Name: name, ActionHash: action.ActionHash(checked.Encoding())}); err != nil {
			t.Error(err)
		}
		return c
	}
	f, srv := newFakeAPI(t, 4, answer)
	cfg := writeConfig(t, srv, 0)
	// Launching verifies and pins on first use; unsigned results are only
	// counted.
	code, _, stderr := run(t, "file", "-c", cfg, "-t", "all", "-path", "/etc", "-name", "^passwd$")
	for _, want := range []string{"pinned the key of agent host0 (", "pinned the key of agent host1 (",
		"signatures: 2 verified (2 pinned now), 0 unpinned, 1 unsigned, 1 ended by the server, 0 FORGED, 0 KEY CHANGED\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("mig file: stderr %q, want %q", stderr, want)
		}
	}
	if code != 0 || strings.Contains(stderr, "unsigned: the result") {
		t.Fatalf("mig file: exit %d, stderr %q; want 0 and no warning for the unsigned result", code, stderr)
	}
	var id uint64
	for id = range f.actions {
	}
	ids := strconv.FormatUint(id, 10)

	code, stdout, stderr := run(t, "results", ids, "-c", cfg)
	for _, want := range []string{
		"unsigned: the result of agent host2",
		"signatures: 2 verified (0 pinned now), 0 unpinned, 1 unsigned, 1 ended by the server, 0 FORGED, 0 KEY CHANGED\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("mig results: stderr %q, want %q", stderr, want)
		}
	}
	if code != 0 || strings.Count(stdout, "/etc/passwd") != 3 {
		t.Errorf("mig results: exit %d, stdout %q; want 0 and three results", code, stdout)
	}
	code, stdout, stderr = run(t, "results", ids, "-c", cfg, "-requiresigned")
	if code != ExitFailure || strings.Contains(stdout, "host2") || !strings.Contains(stderr, "-requiresigned: 1 results are not signed") {
		t.Errorf("mig results -requiresigned: exit %d\nstdout %q\nstderr %q\nwant exit 1 without host2", code, stdout, stderr)
	}

	// What a server could change.
	edit := func(change func(cmds []action.Command, a *action.Action)) (int, string) {
		t.Helper()
		f.mu.Lock()
		saved := append([]action.Command(nil), f.cmds[id]...)
		for i := range saved {
			saved[i].Results = append([]action.Result(nil), saved[i].Results...)
		}
		savedAction := *f.actions[id]
		change(f.cmds[id], f.actions[id])
		f.mu.Unlock()
		code, _, stderr := run(t, "results", ids, "-c", cfg)
		f.mu.Lock()
		f.cmds[id], *f.actions[id] = saved, savedAction
		f.mu.Unlock()
		return code, stderr
	}
	for _, tt := range []struct {
		name   string
		change func(cmds []action.Command, a *action.Action)
		want   string
	}{
		{"found", func(c []action.Command, _ *action.Action) { c[0].Results[0].FoundAnything = false }, "does not match the result"},
		{"status", func(c []action.Command, _ *action.Action) {
			c[1].Status, c[1].Code = action.CmdFailed, action.CodeModuleFailed
		},
			"does not match the result"},
		{"agent swapped", func(c []action.Command, _ *action.Action) {
			c[0].Signature, c[1].Signature = c[1].Signature, c[0].Signature
		},
			"signed by the key of agent"},
		{"name", func(c []action.Command, _ *action.Action) { c[0].AgentName = "db1" }, `signed by the agent named "host0", and shown as "db1"`},
		{"other action", func(_ []action.Command, a *action.Action) { a.Name = "another action" }, "the agent ran another action"},
		{"other action id", func(c []action.Command, _ *action.Action) { c[0].Action.ID++ }, "but it is of action"},
	} {
		code, stderr := edit(tt.change)
		if code != ExitFailure || !strings.Contains(stderr, "FORGED") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s: mig results: exit %d, stderr %q; want exit 1, FORGED and %q", tt.name, code, stderr, tt.want)
		}
	}

	// A distributed pin file that pins host0 to another key.
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	var dist agentkeys.Set
	if err := dist.Pin("host0", other); err != nil {
		t.Fatal(err)
	}
	if err := dist.Pin("host7", other); err != nil {
		t.Fatal(err)
	}
	distFile := filepath.Join(t.TempDir(), "keys")
	if err := dist.Save(distFile); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(pinPath)
	if code, _, stderr := run(t, "agentkeys", "import", distFile); code != ExitFailure ||
		!strings.Contains(stderr, `KEY CHANGED: `+distFile+` pins agent "host0"`) || !strings.Contains(stderr, "nothing imported") {
		t.Errorf("mig agentkeys import with a conflict: exit %d, stderr %q", code, stderr)
	}
	if after, _ := os.ReadFile(pinPath); string(after) != string(before) {
		t.Errorf("a refused import changed the pins")
	}
	if code, _, stderr := run(t, "agentkeys", "import", "-replace", distFile); code != 0 || !strings.Contains(stderr, "pinned 1 new and 1 replaced") {
		t.Errorf("mig agentkeys import -replace: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = run(t, "results", ids, "-c", cfg)
	if code != ExitFailure || !strings.Contains(stderr, "KEY CHANGED: agent host0") || !strings.Contains(stderr, "1 KEY CHANGED") {
		t.Errorf("mig results with host0 pinned to another key: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = run(t, "agentkeys", "export")
	if code != 0 || !strings.Contains(stdout, "host7 "+action.AgentID(other)) || !strings.Contains(stdout, "host1 ") {
		t.Errorf("mig agentkeys export: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, stderr := run(t, "agentkeys", "forget", "host0", "nobody"); code != 0 || !strings.Contains(stderr, `no key was pinned for "nobody"`) {
		t.Errorf("mig agentkeys forget: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "agentkeys", "forget", "nobody"); code != ExitFailure {
		t.Errorf("mig agentkeys forget of nothing pinned: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := run(t, "results", ids, "-c", cfg, "-pinfile", filepath.Join(t.TempDir(), "missing")); code != ExitUsage || !strings.Contains(stderr, "-pinfile") {
		t.Errorf("mig results -pinfile missing: exit %d, stderr %q", code, stderr)
	}
}
