package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/version"
)

// HealthFile is the name, in the agent's state directory, of the file the
// agent rewrites at start, on every relay connect and disconnect and after
// every heartbeat. mig-loader reads it, and only it, to decide whether an
// agent it just installed is healthy: the signal is local and never comes
// from the server.
const HealthFile = "health.json"

// Health is what health.json holds.
type Health struct {
	// Version is what "mig-agent -version" prints.
	Version string `json:"version"`
	// PID is the agent's process ID.
	PID int `json:"pid"`
	// Started is when the agent started.
	Started time.Time `json:"started"`
	// Connected reports whether the last contact with the relay (a
	// connect or a heartbeat) succeeded.
	Connected bool `json:"connected"`
	// Updated is when the file was written.
	Updated time.Time `json:"updated"`
}

// writeHealth records the agent's health in the state directory. An agent
// whose state is kept in memory (a fleet simulator's) writes none. A
// failure is logged and otherwise ignored: the agent keeps working, and a
// loader waiting for it sees a stale file and rolls back.
func (a *Agent) writeHealth(connected bool) {
	if a.noHealth {
		return
	}
	a.healthMu.Lock()
	defer a.healthMu.Unlock()
	h := Health{
		Version:   version.Version,
		PID:       os.Getpid(),
		Started:   a.started.UTC().Truncate(time.Second),
		Connected: connected,
		Updated:   time.Now().UTC(),
	}
	data, err := json.Marshal(h)
	if err != nil {
		a.log.Error("cannot encode the health file", "err", err)
		return
	}
	if err := atomicfile.Write(filepath.Join(a.cfg.StateDir, HealthFile), append(data, '\n'), 0o600); err != nil {
		a.log.Warn("cannot write the health file", "err", err)
	}
}
