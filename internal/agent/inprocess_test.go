package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/relay/natsrelay"
)

// inProcessConfig returns a configuration for an agent run with New and Run
// in the test process, talking to p.
func inProcessConfig(t *testing.T, p *platform) Config {
	t.Helper()
	c := DefaultConfig()
	c.Server = p.enroll.URL + "/api/v1"
	c.CA = p.caFile
	c.EnrollmentToken = p.token
	c.StateDir = t.TempDir()
	c.KeyringData = keyringData(t)
	c.ACLData = aclData(t, 1)
	c.Heartbeat = time.Second
	c.ModuleTimeout = 5 * time.Second
	c.MaxProcs = 1
	c.ModuleExe = buildAgent(t)
	c.Name = "inprocess"
	return c
}

func TestNewErrors(t *testing.T) {
	p := newPlatform(t)
	tests := []struct {
		name   string
		change func(*Config)
		dial   bool
	}{
		{"invalid config", func(c *Config) { c.Server = "" }, true},
		{"bad keyring", func(c *Config) { c.KeyringData = "not a key" }, true},
		{"bad acl", func(c *Config) { c.ACLData = `{"default":{"minimumweight":0}}` }, true},
		{"missing keyring file", func(c *Config) { c.KeyringData, c.Keyring = "", "/nonexistent/keys.asc" }, true},
		{"bad ca", func(c *Config) { c.CA = p.caFile + ".missing" }, true},
		{"no dialer", func(*Config) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := inProcessConfig(t, p)
			tt.change(&c)
			dial := natsrelay.Dial
			if !tt.dial {
				dial = nil
			}
			a, err := New(c, slog.New(slog.DiscardHandler), dial)
			if !errors.Is(err, ErrConfig) {
				t.Errorf("New = %v, %v; want an error wrapping ErrConfig", a, err)
			}
		})
	}
}

func TestAgentInProcess(t *testing.T) {
	p := newPlatform(t)
	// The server is down at first: the agent keeps trying, with backoff.
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()

	a, err := New(inProcessConfig(t, p), slog.New(slog.NewTextHandler(t.Output(), nil)), natsrelay.Dial)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	a.enrollMin, a.enrollMax = 20*time.Millisecond, 100*time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = a.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	waitUntil(t, "several enrollment attempts", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.attempts >= 3
	})
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
	hb := p.hello(t, a.ID())
	if hb.Agent.ID != a.ID() || hb.Agent.Name != "inprocess" {
		t.Errorf("hello from %q named %q, want %s named inprocess", hb.Agent.ID, hb.Agent.Name, a.ID())
	}

	if err := a.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}

	id := newID()
	p.send(t, a.ID(), id, newAction("name LIKE '%'", testOp("ok")))
	if r := p.result(t, a.ID()); r.CommandID != id || r.Code != action.CodeBadSignature {
		t.Errorf("unsigned command: result command %d code %q, want %d %q", r.CommandID, r.Code, id, action.CodeBadSignature)
	}

	cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if runErr != nil {
		t.Errorf("Run = %v, want nil after its context ended", runErr)
	}
}
