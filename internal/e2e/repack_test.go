package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/scheduler"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/store"
)

// TestRepackedAgent repacks the real agent with a configuration for a test
// server, starts the copy with no configuration file, and checks that it
// enrolls and answers a signed action; that a copy whose appended
// configuration was modified refuses to start; and that a flag, an
// environment variable or a file cannot change a key the payload locks.
func TestRepackedAgent(t *testing.T) {
	dir := t.TempDir()
	ts := startTestServer(t, dir)
	alice := newInvestigator(t, "Alice")
	keyring := filepath.Join(dir, "investigators.asc")
	aclFile := filepath.Join(dir, "acl.json")
	must(t, os.WriteFile(keyring, []byte(alice.pub), 0o644))
	must(t, os.WriteFile(aclFile, []byte(fmt.Sprintf(
		`{"default": {"minimumweight": 1, "investigators": {"Alice": {"fingerprint": %q, "weight": 1}}}}`, alice.fp)), 0o644))
	cfg := map[string]any{
		"server":          ts.APIURL(),
		"ca":              ts.caFile,
		"enrollmenttoken": ts.cfg.EnrollmentTokens[0],
		"statedir":        filepath.Join(dir, "state"),
		"keyring":         keyring,
		"acl":             aclFile,
		"heartbeat":       "2s",
		"moduleexe":       bins.agent,
		"name":            "repacked-agent",
	}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "agent.json")
	must(t, os.WriteFile(cfgFile, b, 0o600))
	packedBin := filepath.Join(dir, "mig-agent-acme")
	if out, err := exec.Command(bins.agent, "repack", "-c", cfgFile, "-o", packedBin).CombinedOutput(); err != nil {
		t.Fatalf("mig-agent repack: %v\n%s", err, out)
	}
	if fi, err := os.Stat(packedBin); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("repacked binary: %v, mode %v, want 0700", err, fi.Mode())
	}
	// The files it carried are no longer needed.
	must(t, os.Remove(cfgFile))
	must(t, os.Remove(keyring))
	must(t, os.Remove(aclFile))

	out, err := exec.Command(packedBin, "-show-config").CombinedOutput()
	if err != nil {
		t.Fatalf("-show-config: %v\n%s", err, out)
	}
	if strings.Contains(string(out), ts.cfg.EnrollmentTokens[0]) || !strings.Contains(string(out), "(redacted)") ||
		!strings.Contains(string(out), "repacked-agent") {
		t.Fatalf("-show-config does not show the carried configuration with the token redacted:\n%s", out)
	}

	// Locked keys: the server cannot be changed by a flag, the environment
	// or a file.
	other := filepath.Join(dir, "other.json")
	must(t, os.WriteFile(other, []byte(`{"server": "https://203.0.113.1:12664/api/v1"}`), 0o600))
	for name, c := range map[string]*exec.Cmd{
		"flag": exec.Command(packedBin, "-server", "https://203.0.113.1:12664/api/v1"),
		"file": exec.Command(packedBin, "-c", other),
		"env":  exec.Command(packedBin),
	} {
		if name == "env" {
			c.Env = append(os.Environ(), "MIG_AGENT_SERVER=https://203.0.113.1:12664/api/v1")
		}
		atk := attack(t, "agent-env", "repacked agent's locked server overridden by "+name)
		out, err := runBounded(c, 20*time.Second)
		if err == nil || !strings.Contains(out, `server\" is locked by the configuration appended`) {
			atk.executed("overriding the server by %s: %v, want a refusal naming the locked key:\n%s", name, err, out)
			continue
		}
		atk.refused()
	}

	// A copy with one byte of the payload flipped refuses to start.
	data, err := os.ReadFile(packedBin)
	must(t, err)
	data[len(data)-200] ^= 1
	tampered := filepath.Join(dir, "mig-agent-tampered")
	must(t, os.WriteFile(tampered, data, 0o700))
	atk := attack(t, "agent-env", "repacked agent with its appended configuration modified")
	if out2, err := runBounded(exec.Command(tampered), 20*time.Second); err == nil || !strings.Contains(out2, "does not match its checksum") {
		atk.executed("tampered payload: %v, want a refusal:\n%s", err, out2)
	} else {
		atk.refused()
	}

	// The repacked agent, with no configuration file, enrolls and answers.
	start(t, nil, packedBin)
	var agentID string
	waitFor(t, 30*time.Second, "the repacked agent to enroll and say hello", func() bool {
		agents, err := ts.Store.Agents(t.Context(), store.AgentQuery{})
		if err != nil || len(agents) != 1 || agents[0].Environment.OS == "" {
			return false
		}
		agentID = agents[0].ID
		return agents[0].Name == "repacked-agent"
	})
	id, _ := scheduler.NewID()
	now := time.Now()
	a := &action.Action{ID: id, Name: "repacked", Target: "status='online'",
		ValidFrom: now.Add(-time.Minute), ExpireAfter: now.Add(10 * time.Minute),
		Operations: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":["/etc"],"names":["^hostname$"]}}}`)}}}
	must(t, sign.SignAction(a, alice.signer))
	cmd := inject(t, ts.Server, a, agentID)
	if cmd.Status != action.CmdSuccess {
		t.Fatalf("the repacked agent answered %q (%s %s), want success", cmd.Status, cmd.Code, cmd.Error)
	}
}

// runBounded runs c, killing it after timeout, and returns its output.
func runBounded(c *exec.Cmd, timeout time.Duration) (string, error) {
	var out strings.Builder
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = c.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("still running after %s", timeout)
	}
}
