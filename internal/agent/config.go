package agent

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/secfile"
)

// Compiled-in configuration, set with the linker's -X flag as standard base64
// (see the package documentation). Empty means none.
var (
	builtinConfig  string
	builtinKeyring string
	builtinACL     string
)

// Defaults and limits of the configuration.
const (
	DefaultHeartbeat     = 60 * time.Second
	DefaultModuleTimeout = 5 * time.Minute
	DefaultStateDir      = "/var/lib/mig-agent"
	// DefaultMaxValidity is the longest validity window (expireafter -
	// validfrom) an agent accepts by default. An action stays replayable
	// for as long as it is valid wherever the journal cannot speak for it
	// (a state directory wiped or rolled back to a snapshot), so the
	// window is bounded. A day covers an investigation launched for
	// endpoints that come online during the working day (the CLI's
	// default is 5 minutes) while keeping that exposure to one day.
	DefaultMaxValidity = 24 * time.Hour
	// maxMaxValidity bounds the maxvalidity setting: the journal keeps
	// every action until it expires.
	maxMaxValidity = 31 * 24 * time.Hour
	// MaxConfigSize bounds the configuration file and every file it names.
	MaxConfigSize = 4 << 20
	maxDuration   = 24 * time.Hour
	maxTags       = 256
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("bad agent configuration")

// Config is the agent's configuration.
type Config struct {
	// Server is the API base URL, e.g. https://127.0.0.1:12664/api/v1.
	Server string
	// CA is the path of a PEM bundle trusted for the server's TLS
	// certificate, and for the relay's when enrollment names no CA. Empty
	// means the system roots.
	CA string
	// CAData holds that PEM bundle inline (a repacked agent carries it so);
	// at most one of CA and CAData may be set.
	CAData string
	// EnrollmentToken authenticates the agent's enrollment.
	EnrollmentToken string
	// StateDir holds the agent's identity, credentials, journal, inbox and
	// outbox.
	StateDir string
	// Keyring is the path of the investigators' armored public keys;
	// KeyringData holds them inline. Exactly one may be set; with neither,
	// the compiled-in keyring is used.
	Keyring     string
	KeyringData string
	// ACL is the path of the module ACL (JSON); ACLData holds it inline
	// (in the configuration file, as a JSON object or a string). Exactly
	// one may be set; with neither, the compiled-in ACL is used.
	ACL     string
	ACLData string
	// Tags are operator-defined attributes, targeted as tags->>'key'.
	Tags map[string]string
	// Heartbeat is the interval between heartbeats.
	Heartbeat time.Duration
	// ModuleTimeout bounds each operation; an action's expireafter bounds it
	// too.
	ModuleTimeout time.Duration
	// MaxProcs bounds the CPUs the agent and its modules keep busy.
	MaxProcs int
	// ModuleExe is the binary that serves "-m <module>"; by default the
	// running executable.
	ModuleExe string
	// Mode is the agent's mode; only action.ModeDaemon is supported.
	Mode string
	// Name is the agent's name; by default the host name.
	Name string
	// MaxValidity is the longest validity window (expireafter -
	// validfrom) of an action the agent runs; longer ones are refused
	// (action.CodeValidityTooLong).
	MaxValidity time.Duration
}

// configKeys are the keys of the JSON configuration file, in MIG's
// lower-case style.
var configKeys = []string{
	"server", "ca", "cadata", "enrollmenttoken", "statedir", "keyring", "keyringdata",
	"acl", "acldata", "tags", "heartbeat", "moduletimeout", "maxprocs",
	"moduleexe", "mode", "name", "maxvalidity",
}

// DefaultConfig returns the configuration every other source starts from.
func DefaultConfig() Config {
	c := Config{
		StateDir:      DefaultStateDir,
		Heartbeat:     DefaultHeartbeat,
		ModuleTimeout: DefaultModuleTimeout,
		MaxValidity:   DefaultMaxValidity,
		MaxProcs:      max(1, runtime.NumCPU()/2),
		Mode:          action.ModeDaemon,
	}
	if exe, err := os.Executable(); err == nil {
		c.ModuleExe = exe
	}
	if h, err := os.Hostname(); err == nil {
		c.Name = h
	}
	return c
}

// LoadConfig returns the defaults, overridden by the JSON file at path (or,
// when path is empty, by the compiled-in configuration if there is one), then
// by MIG_AGENT_* environment variables. It does not validate: apply flags,
// then call Validate (New does).
func LoadConfig(path string) (Config, error) {
	return loadConfig(path, os.Getenv)
}

func loadConfig(path string, getenv func(string) string) (Config, error) {
	return loadConfigOver(DefaultConfig(), nil, path, getenv)
}

// loadConfigOver is loadConfig starting from base instead of the defaults.
// A non-nil allow is asked about every key the file or the environment sets
// and refuses the keys a repacked agent's payload locks (see Packed).
func loadConfigOver(base Config, allow func(key string) error, path string, getenv func(string) string) (Config, error) {
	c := base
	switch {
	case path != "":
		if err := checkTrustFile(path, "agent configuration"); err != nil {
			return Config{}, err
		}
		data, err := readFileLimited(path, MaxConfigSize)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if err := c.applyJSONAllow(path, data, allow); err != nil {
			return Config{}, err
		}
	case allow != nil:
		// A repacked agent: its payload replaces the compiled-in
		// configuration (ReadPacked refuses a binary with both).
	case builtinConfig != "":
		data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(builtinConfig))
		if err != nil {
			return Config{}, fmt.Errorf("%w: compiled-in configuration is not base64: %v", ErrConfig, err)
		}
		if err := c.applyJSON("compiled-in configuration", data); err != nil {
			return Config{}, err
		}
	}
	if err := c.applyEnv(getenv, allow); err != nil {
		return Config{}, err
	}
	return c, nil
}

// applyJSON overrides c with the keys present in data, a JSON object read
// from source. Unknown keys, duplicate keys and values of the wrong type are
// errors naming source and key.
func (c *Config) applyJSON(source string, data []byte) error {
	return c.applyJSONAllow(source, data, nil)
}

// applyJSONAllow is applyJSON that also refuses the keys allow refuses.
func (c *Config) applyJSONAllow(source string, data []byte, allow func(string) error) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrConfig, source, fmt.Sprintf(format, args...))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return bad("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return bad("not a JSON object")
	}
	known := map[string]bool{}
	for _, k := range configKeys {
		known[k] = true
	}
	seen := map[string]bool{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return bad("not JSON: %v", err)
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return bad("key %q: %v", key, err)
		}
		if !known[key] {
			return bad("unknown key %q (known keys: %s)", key, strings.Join(configKeys, ", "))
		}
		if seen[key] {
			return bad("key %q appears twice", key)
		}
		seen[key] = true
		if allow != nil {
			if err := allow(key); err != nil {
				return bad("%v", err)
			}
		}
		if err := c.setJSON(key, raw); err != nil {
			return bad("key %q: %v", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad("not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("data after the JSON object")
	}
	return nil
}

func (c *Config) setJSON(key string, raw json.RawMessage) error {
	str := func(dst *string) error {
		if err := json.Unmarshal(raw, dst); err != nil {
			return fmt.Errorf("want a string, got %s", shorten(raw))
		}
		return nil
	}
	dur := func(dst *time.Duration) error {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return fmt.Errorf("want a duration string such as \"60s\", got %s", shorten(raw))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q: %v", s, err)
		}
		*dst = d
		return nil
	}
	switch key {
	case "server":
		return str(&c.Server)
	case "ca":
		return str(&c.CA)
	case "cadata":
		return str(&c.CAData)
	case "enrollmenttoken":
		return str(&c.EnrollmentToken)
	case "statedir":
		return str(&c.StateDir)
	case "keyring":
		return str(&c.Keyring)
	case "keyringdata":
		return str(&c.KeyringData)
	case "acl":
		return str(&c.ACL)
	case "acldata":
		// The ACL may be inline JSON or a string holding it.
		t := bytes.TrimSpace(raw)
		if len(t) > 0 && t[0] == '{' {
			c.ACLData = string(t)
			return nil
		}
		return str(&c.ACLData)
	case "tags":
		var tags map[string]string
		if err := json.Unmarshal(raw, &tags); err != nil {
			return fmt.Errorf("want an object of strings, got %s", shorten(raw))
		}
		c.Tags = tags
		return nil
	case "heartbeat":
		return dur(&c.Heartbeat)
	case "moduletimeout":
		return dur(&c.ModuleTimeout)
	case "maxvalidity":
		return dur(&c.MaxValidity)
	case "maxprocs":
		var n int
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("want an integer, got %s", shorten(raw))
		}
		c.MaxProcs = n
		return nil
	case "moduleexe":
		return str(&c.ModuleExe)
	case "mode":
		return str(&c.Mode)
	case "name":
		return str(&c.Name)
	}
	return fmt.Errorf("unknown key")
}

// envPrefix starts every environment variable the agent reads.
const envPrefix = "MIG_AGENT_"

// envKeys maps environment variable suffixes to configuration keys.
var envKeys = map[string]string{
	"SERVER":           "server",
	"CA":               "ca",
	"CA_DATA":          "cadata",
	"ENROLLMENT_TOKEN": "enrollmenttoken",
	"STATE_DIR":        "statedir",
	"KEYRING":          "keyring",
	"KEYRING_DATA":     "keyringdata",
	"ACL":              "acl",
	"ACL_DATA":         "acldata",
	"TAGS":             "tags",
	"HEARTBEAT":        "heartbeat",
	"MODULE_TIMEOUT":   "moduletimeout",
	"MAX_PROCS":        "maxprocs",
	"MODULE_EXE":       "moduleexe",
	"MODE":             "mode",
	"NAME":             "name",
	"MAX_VALIDITY":     "maxvalidity",
}

// applyEnv overrides c with the MIG_AGENT_* variables that are set and not
// empty. MIG_AGENT_TAGS is "key=value,key=value".
func (c *Config) applyEnv(getenv func(string) string, allow func(string) error) error {
	names := make([]string, 0, len(envKeys))
	for n := range envKeys {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := getenv(envPrefix + n)
		if v == "" {
			continue
		}
		if allow != nil {
			if err := allow(envKeys[n]); err != nil {
				return fmt.Errorf("%w: environment variable %s%s: %v", ErrConfig, envPrefix, n, err)
			}
		}
		if err := c.setString(envKeys[n], v); err != nil {
			return fmt.Errorf("%w: environment variable %s%s: %v", ErrConfig, envPrefix, n, err)
		}
	}
	return nil
}

// setString sets a configuration key from its text form, as environment
// variables and flags give it.
func (c *Config) setString(key, v string) error {
	switch key {
	case "tags":
		tags, err := parseTags(v)
		if err != nil {
			return err
		}
		c.Tags = tags
		return nil
	case "heartbeat", "moduletimeout", "maxvalidity":
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("bad duration %q: %v", v, err)
		}
		switch key {
		case "heartbeat":
			c.Heartbeat = d
		case "moduletimeout":
			c.ModuleTimeout = d
		default:
			c.MaxValidity = d
		}
		return nil
	case "maxprocs":
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("bad integer %q", v)
		}
		c.MaxProcs = n
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.setJSON(key, raw)
}

// parseTags parses "key=value,key=value".
func parseTags(s string) (map[string]string, error) {
	tags := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("tag %q is not key=value", kv)
		}
		tags[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return tags, nil
}

// flagKeys are the configuration keys that SetFlags offers, with their usage.
// Secrets (the enrollment token) are not offered: flags show in process lists.
var flagKeys = []struct{ name, key, usage string }{
	{"server", "server", "API base URL, e.g. https://mig.example.com:12664/api/v1"},
	{"ca", "ca", "PEM file trusted for the server's (and relay's) TLS"},
	{"statedir", "statedir", "directory of the agent's identity, credentials, journal, inbox and outbox"},
	{"keyring", "keyring", "file of the investigators' armored public keys"},
	{"acl", "acl", "file of the module ACL (JSON)"},
	{"tags", "tags", "agent tags, key=value,key=value"},
	{"heartbeat", "heartbeat", "interval between heartbeats, e.g. 60s"},
	{"moduletimeout", "moduletimeout", "longest an operation may run, e.g. 5m"},
	{"maxprocs", "maxprocs", "CPUs the agent and its modules may keep busy"},
	{"maxvalidity", "maxvalidity", "longest validity window (expireafter - validfrom) of an action the agent runs, e.g. 24h"},
	{"name", "name", "agent name (default: the host name)"},
}

// SetFlags registers configuration flags on fs and returns a function that,
// once fs is parsed, applies the flags that were set to a Config (flags
// override the file and the environment).
func SetFlags(fs *flag.FlagSet) (apply func(*Config) error) {
	a := setFlags(fs)
	return func(c *Config) error { return a(c, nil) }
}

// setFlags is SetFlags whose apply also refuses the keys allow refuses.
func setFlags(fs *flag.FlagSet) (apply func(c *Config, allow func(string) error) error) {
	vals := map[string]*string{}
	for _, f := range flagKeys {
		vals[f.name] = fs.String(f.name, "", f.usage)
	}
	return func(c *Config, allow func(string) error) error {
		var err error
		fs.Visit(func(f *flag.Flag) {
			v, ok := vals[f.Name]
			if !ok || err != nil {
				return
			}
			for _, fk := range flagKeys {
				if fk.name == f.Name {
					if allow != nil {
						if e := allow(fk.key); e != nil {
							err = fmt.Errorf("%w: flag -%s: %v", ErrConfig, f.Name, e)
							return
						}
					}
					if e := c.setString(fk.key, *v); e != nil {
						err = fmt.Errorf("%w: flag -%s: %v", ErrConfig, f.Name, e)
					}
				}
			}
		})
		return err
	}
}

// Validate checks the configuration once all sources are applied. Errors
// name the bad key and value.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	u, err := url.Parse(c.Server)
	switch {
	case c.Server == "":
		return bad("server is not set")
	case err != nil:
		return bad("server %q is not a URL: %v", c.Server, err)
	case u.Scheme != "https" || u.Host == "":
		return bad("server %q is not an https:// URL", c.Server)
	}
	if c.EnrollmentToken == "" {
		return bad("enrollmenttoken is not set")
	}
	if c.StateDir == "" {
		return bad("statedir is not set")
	}
	if c.CA != "" && c.CAData != "" {
		return bad("ca %q and cadata are both set; set one", c.CA)
	}
	if c.Keyring != "" && c.KeyringData != "" {
		return bad("keyring %q and keyringdata are both set; set one", c.Keyring)
	}
	if c.Keyring == "" && c.KeyringData == "" && builtinKeyring == "" {
		return bad("no keyring: set keyring or keyringdata")
	}
	if c.ACL != "" && c.ACLData != "" {
		return bad("acl %q and acldata are both set; set one", c.ACL)
	}
	if c.ACL == "" && c.ACLData == "" && builtinACL == "" {
		return bad("no ACL: set acl or acldata")
	}
	if len(c.Tags) > maxTags {
		return bad("tags has %d entries, more than %d", len(c.Tags), maxTags)
	}
	for k, v := range c.Tags {
		if k == "" || len(k) > action.MaxNameLen || len(v) > action.MaxNameLen {
			return bad("tag %q=%q is empty or longer than %d bytes", k, v, action.MaxNameLen)
		}
	}
	if c.Heartbeat <= 0 || c.Heartbeat > maxDuration {
		return bad("heartbeat %s is not between 0 and %s", c.Heartbeat, maxDuration)
	}
	if c.ModuleTimeout <= 0 || c.ModuleTimeout > maxDuration {
		return bad("moduletimeout %s is not between 0 and %s", c.ModuleTimeout, maxDuration)
	}
	if c.MaxValidity <= 0 || c.MaxValidity > maxMaxValidity {
		return bad("maxvalidity %s is not between 0 and %s", c.MaxValidity, maxMaxValidity)
	}
	if c.MaxProcs < 1 {
		return bad("maxprocs %d is less than 1", c.MaxProcs)
	}
	if c.ModuleExe == "" {
		return bad("moduleexe is not set and the running executable is unknown")
	}
	if c.Mode != action.ModeDaemon {
		return bad("mode %q is not supported (want %q)", c.Mode, action.ModeDaemon)
	}
	if strings.TrimSpace(c.Name) == "" || len(c.Name) > action.MaxNameLen {
		return bad("name %q is empty or longer than %d bytes", c.Name, action.MaxNameLen)
	}
	return nil
}

// keyringBytes returns the armored keyring the configuration names.
func (c Config) keyringBytes() ([]byte, string, error) {
	return configBlob(c.Keyring, c.KeyringData, builtinKeyring, "keyring")
}

// aclBytes returns the ACL JSON the configuration names.
func (c Config) aclBytes() ([]byte, string, error) {
	return configBlob(c.ACL, c.ACLData, builtinACL, "acl")
}

// configBlob reads a file, or returns inline data, or the compiled-in base64
// value, and says where the data came from.
func configBlob(path, inline, builtin, what string) ([]byte, string, error) {
	switch {
	case path != "":
		if err := checkTrustFile(path, what); err != nil {
			return nil, path, err
		}
		b, err := readFileLimited(path, MaxConfigSize)
		if err != nil {
			return nil, path, fmt.Errorf("%w: %s: %v", ErrConfig, what, err)
		}
		return b, path, nil
	case inline != "":
		return []byte(inline), what + "data", nil
	default:
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(builtin))
		if err != nil {
			return nil, "compiled-in " + what, fmt.Errorf("%w: compiled-in %s is not base64: %v", ErrConfig, what, err)
		}
		return b, "compiled-in " + what, nil
	}
}

// checkTrustFile refuses a configuration, keyring or ACL file that users
// other than the agent's (and root) may change, or that sits in a directory
// they may write to (secfile): these files say whose signatures the agent
// obeys, so whoever could edit one could command the agent. Others may read
// them; the configuration's enrollment token is better kept 0600, but it
// only lets its holder enroll an agent of its own, so that is not refused.
func checkTrustFile(path, what string) error {
	if err := secfile.Check(path, secfile.Rule{What: what, Kind: secfile.Public}); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return nil
}

// readFileLimited reads a whole file, refusing one larger than limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// shorten returns raw for an error message, cut to a readable length.
func shorten(raw []byte) string {
	const n = 64
	if len(raw) > n {
		return string(raw[:n]) + "..."
	}
	return string(raw)
}
