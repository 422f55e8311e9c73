package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// readHealth reads the agent's health file, or returns false.
func readHealth(t *testing.T, dir string) (Health, os.FileMode, bool) {
	t.Helper()
	path := filepath.Join(dir, HealthFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return Health{}, 0, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Health{}, 0, false
	}
	var h Health
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("health file %q does not decode: %v", data, err)
	}
	return h, fi.Mode().Perm(), true
}

func TestAgentHealthFile(t *testing.T) {
	p := newPlatform(t)
	a := p.newAgent(t, agentOpts{})
	var h Health
	var mode os.FileMode
	waitUntil(t, "a health file saying connected", func() bool {
		var ok bool
		h, mode, ok = readHealth(t, a.dir)
		return ok && h.Connected
	})
	if h.PID != a.cmd.Process.Pid || h.Version == "" || h.Started.IsZero() || h.Updated.Before(h.Started) {
		t.Errorf("health = %+v, want pid %d, a version, started before updated", h, a.cmd.Process.Pid)
	}
	if mode != 0o600 {
		t.Errorf("health file mode %v, want 0600", mode)
	}
	// Every heartbeat (1s here) rewrites it.
	first := h.Updated
	waitUntil(t, "a newer health file", func() bool {
		h, _, _ = readHealth(t, a.dir)
		return h.Updated.After(first)
	})
	// Without the relay the next heartbeat fails: connected turns false.
	addr := p.relayAddr()
	p.stopRelay()
	waitUntil(t, "a health file saying disconnected", func() bool {
		h, _, _ = readHealth(t, a.dir)
		return !h.Connected
	})
	p.startRelay(addr)
	waitUntil(t, "a health file saying connected again", func() bool {
		h, _, _ = readHealth(t, a.dir)
		return h.Connected && time.Since(h.Updated) < 5*time.Second
	})
}
