package loader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/secfile"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/strictjson"
)

// Defaults of the configuration.
const (
	DefaultConfigPath    = "/etc/mig/loader.json"
	DefaultAgentStateDir = "/var/lib/mig-agent"
	DefaultStateDir      = "/var/lib/mig-loader"
	DefaultAgentPath     = "/usr/sbin/mig-agent"
	DefaultLoaderPath    = "/usr/sbin/mig-loader"
	DefaultService       = "mig-agent"
	DefaultHealthTimeout = 90 * time.Second
	// MaxConfigSize bounds the configuration file, the keyring and the ACL.
	MaxConfigSize = 1 << 20
)

// Restart methods.
const (
	RestartSystemd = "systemd"
	RestartLaunchd = "launchd"
	RestartWindows = "windows"
	RestartSignal  = "signal"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid loader configuration")

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// Config is the loader's configuration: the file /etc/mig/loader.json or
// the payload appended to the loader binary (internal/packed), with the
// same keys.
type Config struct {
	// Server is the API base URL, e.g. https://mig.example.com/api/v1.
	Server string `json:"server"`
	// CA is a PEM file of the certificates that the server's must chain
	// to (the system's when empty).
	CA string `json:"ca,omitempty"`
	// CAData is the same PEM inline (a repacked loader carries it).
	CAData string `json:"cadata,omitempty"`
	// Name is the manifest channel, e.g. "prod".
	Name string `json:"name"`
	// AgentStateDir is the agent's state directory: its key (the loader
	// authenticates as the agent) and its health.json.
	AgentStateDir string `json:"agentstatedir,omitempty"`
	// StateDir holds the loader's lock, state.json and loader.log.
	StateDir string `json:"statedir,omitempty"`
	// Keyring (a file) or KeyringData (inline) holds the investigators'
	// public keys that may sign manifests. Never taken from the server.
	Keyring     string `json:"keyring,omitempty"`
	KeyringData string `json:"keyringdata,omitempty"`
	// ACL (a file) or ACLData (inline JSON) must have a "manifest" entry:
	// its minimum weight is how many signatures a manifest needs.
	ACL     string          `json:"acl,omitempty"`
	ACLData json.RawMessage `json:"acldata,omitempty"`
	// AgentPath and LoaderPath are the installed binaries.
	AgentPath  string `json:"agentpath,omitempty"`
	LoaderPath string `json:"loaderpath,omitempty"`
	// Restart is how the agent is restarted: systemd, launchd, windows or
	// signal (SIGTERM to the pid in health.json; a supervisor starts it
	// again).
	Restart string `json:"restart"`
	// Service is the systemd unit, launchd label or Windows service name.
	Service string `json:"service,omitempty"`
	// HealthTimeout is how long the new agent has to report healthy.
	HealthTimeout string `json:"healthtimeout,omitempty"`

	healthTimeout time.Duration
	keyring       *sign.Keyring
	acl           acl.ACL
	caPEM         []byte
}

// ParseConfig decodes a configuration strictly (unknown or repeated keys
// are refused), applies the defaults, and validates it. It reads the
// keyring, ACL and CA files it names. src names where data came from, for
// errors.
func ParseConfig(data []byte, src string) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%w: %s: %d bytes, more than %d", ErrConfig, src, len(data), MaxConfigSize)
	}
	var c Config
	if err := strictjson.Decode(data, &c); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, src, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, src, err)
	}
	return &c, nil
}

// LoadConfig reads the configuration file at path.
func LoadConfig(path string) (*Config, error) {
	data, err := readLimited(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return ParseConfig(data, path)
}

// readLimited reads a configuration, keyring, ACL or CA file, refusing one
// that users other than its owner (and root) could change, or that sits in
// a directory they could write to (internal/secfile): these files decide
// which releases the loader installs, so whoever could edit one could make
// it install anything.
func readLimited(path string) ([]byte, error) {
	if err := secfile.Check(path, secfile.Rule{What: "mig-loader file", Kind: secfile.Public}); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxConfigSize)
	}
	return data, nil
}

func (c *Config) validate() error {
	if c.AgentStateDir == "" {
		c.AgentStateDir = DefaultAgentStateDir
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.AgentPath == "" {
		c.AgentPath = DefaultAgentPath
	}
	if c.LoaderPath == "" {
		c.LoaderPath = DefaultLoaderPath
	}
	if c.Service == "" {
		c.Service = DefaultService
	}
	c.healthTimeout = DefaultHealthTimeout
	if c.HealthTimeout != "" {
		d, err := time.ParseDuration(c.HealthTimeout)
		if err != nil || d <= 0 {
			return fmt.Errorf("healthtimeout %q is not a positive duration", c.HealthTimeout)
		}
		c.healthTimeout = d
	}
	u, err := url.Parse(c.Server)
	switch {
	case c.Server == "":
		return errors.New("server is missing")
	case err != nil:
		return fmt.Errorf("server %q is not a URL: %v", c.Server, err)
	case u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("server %q is not an https:// URL", c.Server)
	}
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("name %q is not a channel name (%s)", c.Name, nameRE)
	}
	for key, p := range map[string]string{"agentstatedir": c.AgentStateDir, "statedir": c.StateDir,
		"agentpath": c.AgentPath, "loaderpath": c.LoaderPath} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q is not an absolute path", key, p)
		}
	}
	if c.AgentPath == c.LoaderPath {
		return fmt.Errorf("agentpath and loaderpath are both %q", c.AgentPath)
	}
	switch c.Restart {
	case RestartSystemd, RestartLaunchd, RestartWindows, RestartSignal:
	case "":
		return errors.New("restart is missing (systemd, launchd, windows or signal)")
	default:
		return fmt.Errorf("restart %q is not systemd, launchd, windows or signal", c.Restart)
	}
	if !nameRE.MatchString(c.Service) && c.Restart != RestartSignal {
		return fmt.Errorf("service %q is not a service name", c.Service)
	}
	kr, src, err := oneOf("keyring", c.Keyring, []byte(c.KeyringData))
	if err != nil {
		return err
	}
	if c.keyring, err = sign.ReadKeyring(bytes.NewReader(kr)); err != nil {
		return fmt.Errorf("keyring %s: %w", src, err)
	}
	if c.keyring.Len() == 0 {
		return fmt.Errorf("keyring %s holds no key", src)
	}
	ad, src, err := oneOf("acl", c.ACL, c.ACLData)
	if err != nil {
		return err
	}
	if c.acl, err = acl.Parse(ad); err != nil {
		return fmt.Errorf("acl %s: %w", src, err)
	}
	if _, ok := c.acl[manifest.ACLEntry]; !ok {
		return fmt.Errorf("acl %s has no %q entry: no manifest could ever be accepted", src, manifest.ACLEntry)
	}
	if c.CA != "" && c.CAData != "" {
		return errors.New("ca and cadata are both set")
	}
	switch {
	case c.CA != "":
		if c.caPEM, err = readLimited(c.CA); err != nil {
			return fmt.Errorf("ca: %w", err)
		}
	case c.CAData != "":
		c.caPEM = []byte(c.CAData)
	}
	return nil
}

// oneOf returns the data of a file key or its inline twin (exactly one must
// be set) and a description of where it came from.
func oneOf(key, path string, inline []byte) ([]byte, string, error) {
	switch {
	case path != "" && len(inline) > 0:
		return nil, "", fmt.Errorf("%s and %sdata are both set", key, key)
	case path != "":
		data, err := readLimited(path)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", key, err)
		}
		return data, path, nil
	case len(inline) > 0:
		return inline, key + "data", nil
	}
	return nil, "", fmt.Errorf("%s (or %sdata) is missing", key, key)
}
