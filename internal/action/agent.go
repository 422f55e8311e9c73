package action

import "time"

// Agent statuses, by the age of the last heartbeat.
const (
	AgentOnline  = "online"  // heartbeat within the online window
	AgentIdle    = "idle"    // heartbeat older than the online window
	AgentOffline = "offline" // heartbeat older than the idle window
)

// Agent modes.
const (
	ModeDaemon   = "daemon"
	ModeCheckIn  = "checkin"
	ModeFleetSim = "fleet" // simulated by the fleet simulator
)

// Agent describes an endpoint as it reports itself in heartbeats and as the
// server stores it. Targets are evaluated against these attributes.
type Agent struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	QueueLoc      string            `json:"queueloc"`
	Mode          string            `json:"mode"`
	Version       string            `json:"version"`
	PID           int               `json:"pid"`
	StartTime     time.Time         `json:"starttime,omitzero"`
	HeartbeatTime time.Time         `json:"heartbeattime,omitzero"`
	Status        string            `json:"status,omitempty"`
	Environment   Environment       `json:"environment"`
	Tags          map[string]string `json:"tags,omitempty"`
}

// Environment is what an agent knows about its host.
type Environment struct {
	Init      string   `json:"init,omitempty"`
	Ident     string   `json:"ident,omitempty"` // distribution and version, e.g. "Debian 12"
	OS        string   `json:"os"`
	Arch      string   `json:"arch"`
	IsProxied bool     `json:"isproxied"`
	Proxy     string   `json:"proxy,omitempty"`
	Addresses []string `json:"addresses,omitempty"`
	PublicIP  string   `json:"publicip,omitempty"`
	Modules   []string `json:"modules,omitempty"`
}

// EnvValue returns the environment attribute named key, as the target
// language's environment->>'key' sees it, and whether it exists.
func (e *Environment) EnvValue(key string) (string, bool) {
	switch key {
	case "init":
		return e.Init, true
	case "ident":
		return e.Ident, true
	case "os":
		return e.OS, true
	case "arch":
		return e.Arch, true
	case "isproxied":
		if e.IsProxied {
			return "true", true
		}
		return "false", true
	case "proxy":
		return e.Proxy, true
	case "publicip":
		return e.PublicIP, true
	}
	return "", false
}
