package agent

import (
	"encoding/base64"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// validConfig returns a configuration that passes Validate.
func validConfig(t *testing.T) Config {
	t.Helper()
	c := DefaultConfig()
	c.Server = "https://127.0.0.1:12664/api/v1"
	c.EnrollmentToken = "token"
	c.StateDir = t.TempDir()
	c.KeyringData = "keys"
	c.ACLData = "{}"
	c.ModuleExe = "/bin/true"
	c.Name = "host1"
	return c
}

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "agent.json", `{
		"server": "https://mig.example.com/api/v1",
		"ca": "/etc/mig/ca.pem",
		"enrollmenttoken": "secret",
		"statedir": "/var/lib/x",
		"keyring": "/etc/mig/keys.asc",
		"acldata": {"default": {"minimumweight": 1}},
		"tags": {"operator": "IT"},
		"heartbeat": "30s",
		"moduletimeout": "2m",
		"maxprocs": 3,
		"moduleexe": "/usr/bin/mig-agent",
		"mode": "daemon",
		"name": "web1"
	}`)
	got, err := loadConfig(path, func(string) string { return "" })
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	want := Config{
		Server: "https://mig.example.com/api/v1", CA: "/etc/mig/ca.pem", EnrollmentToken: "secret",
		StateDir: "/var/lib/x", Keyring: "/etc/mig/keys.asc", ACLData: `{"default": {"minimumweight": 1}}`,
		Tags: map[string]string{"operator": "IT"}, Heartbeat: 30 * time.Second, ModuleTimeout: 2 * time.Minute,
		MaxProcs: 3, ModuleExe: "/usr/bin/mig-agent", Mode: "daemon", Name: "web1",
		MaxValidity: DefaultMaxValidity,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loadConfig (-want +got):\n%s", diff)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // substrings of the error
	}{
		{"unknown key", `{"server":"https://x","bogus":1}`, []string{"agent.json", `"bogus"`}},
		{"wrong type", `{"maxprocs":"four"}`, []string{"agent.json", `"maxprocs"`, "integer"}},
		{"bad duration", `{"heartbeat":"soon"}`, []string{`"heartbeat"`, "soon"}},
		{"duration number", `{"moduletimeout":60}`, []string{`"moduletimeout"`}},
		{"duplicate", `{"name":"a","name":"b"}`, []string{`"name"`, "twice"}},
		{"not object", `[1,2]`, []string{"agent.json", "not a JSON object"}},
		{"trailing", `{"name":"a"} {}`, []string{"data after"}},
		{"truncated", `{"name":"a"`, []string{"agent.json"}},
		{"tags not strings", `{"tags":{"a":1}}`, []string{`"tags"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, t.TempDir(), "agent.json", tt.json)
			_, err := loadConfig(path, func(string) string { return "" })
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("loadConfig(%s) = %v, want an error wrapping ErrConfig", tt.json, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("loadConfig(%s) error %q does not mention %q", tt.json, err, w)
				}
			}
		})
	}
}

func TestLoadConfigEnvOverridesFile(t *testing.T) {
	path := writeFile(t, t.TempDir(), "agent.json", `{"name":"file","heartbeat":"30s","maxprocs":2}`)
	env := map[string]string{
		"MIG_AGENT_NAME":      "env",
		"MIG_AGENT_TAGS":      "operator=IT, env = prod",
		"MIG_AGENT_HEARTBEAT": "5s",
	}
	got, err := loadConfig(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got.Name != "env" || got.Heartbeat != 5*time.Second || got.MaxProcs != 2 {
		t.Errorf("got name %q heartbeat %s maxprocs %d, want env 5s 2", got.Name, got.Heartbeat, got.MaxProcs)
	}
	if diff := cmp.Diff(map[string]string{"operator": "IT", "env": "prod"}, got.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}

	env = map[string]string{"MIG_AGENT_MAX_PROCS": "many"}
	_, err = loadConfig(path, func(k string) string { return env[k] })
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "MIG_AGENT_MAX_PROCS") {
		t.Errorf("bad MIG_AGENT_MAX_PROCS: got %v, want an error naming the variable", err)
	}
}

func TestSetFlagsOverride(t *testing.T) {
	fs := flag.NewFlagSet("mig-agent", flag.ContinueOnError)
	apply := SetFlags(fs)
	if err := fs.Parse([]string{"-name", "flagged", "-heartbeat", "7s"}); err != nil {
		t.Fatal(err)
	}
	c := validConfig(t)
	c.MaxProcs = 3
	if err := apply(&c); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if c.Name != "flagged" || c.Heartbeat != 7*time.Second || c.MaxProcs != 3 {
		t.Errorf("got name %q heartbeat %s maxprocs %d, want flagged 7s 3 (unset flags leave values)", c.Name, c.Heartbeat, c.MaxProcs)
	}

	fs = flag.NewFlagSet("mig-agent", flag.ContinueOnError)
	apply = SetFlags(fs)
	if err := fs.Parse([]string{"-moduletimeout", "never"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(&c); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "-moduletimeout") {
		t.Errorf("bad -moduletimeout: got %v, want an error naming the flag", err)
	}
}

func TestBuiltinConfig(t *testing.T) {
	old := builtinConfig
	t.Cleanup(func() { builtinConfig = old })
	builtinConfig = base64.StdEncoding.EncodeToString([]byte(`{"name":"compiled","server":"https://s/api/v1"}`))
	got, err := loadConfig("", func(string) string { return "" })
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got.Name != "compiled" || got.Server != "https://s/api/v1" {
		t.Errorf("got name %q server %q, want the compiled-in values", got.Name, got.Server)
	}
	builtinConfig = "%%%"
	if _, err := loadConfig("", func(string) string { return "" }); !errors.Is(err, ErrConfig) {
		t.Errorf("bad compiled-in configuration: got %v, want ErrConfig", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; empty for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no server", func(c *Config) { c.Server = "" }, "server"},
		{"http server", func(c *Config) { c.Server = "http://x/api/v1" }, "https"},
		{"no token", func(c *Config) { c.EnrollmentToken = "" }, "enrollmenttoken"},
		{"no statedir", func(c *Config) { c.StateDir = "" }, "statedir"},
		{"two keyrings", func(c *Config) { c.Keyring = "/k" }, "keyring"},
		{"no keyring", func(c *Config) { c.KeyringData = "" }, "keyring"},
		{"two acls", func(c *Config) { c.ACL = "/a" }, "acl"},
		{"no acl", func(c *Config) { c.ACLData = "" }, "ACL"},
		{"zero heartbeat", func(c *Config) { c.Heartbeat = 0 }, "heartbeat"},
		{"huge timeout", func(c *Config) { c.ModuleTimeout = 48 * time.Hour }, "moduletimeout"},
		{"maxprocs", func(c *Config) { c.MaxProcs = 0 }, "maxprocs"},
		{"no exe", func(c *Config) { c.ModuleExe = "" }, "moduleexe"},
		{"mode", func(c *Config) { c.Mode = "checkin" }, "mode"},
		{"no name", func(c *Config) { c.Name = " " }, "name"},
		{"empty tag", func(c *Config) { c.Tags = map[string]string{"": "x"} }, "tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig(t)
			tt.change(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an ErrConfig error mentioning %q", err, tt.want)
			}
		})
	}
}

func FuzzConfigJSON(f *testing.F) {
	f.Add([]byte(`{"server":"https://x/api/v1","heartbeat":"1s","tags":{"a":"b"}}`))
	f.Add([]byte(`{"acldata":{"x":[1,2,3]},"maxprocs":2}`))
	f.Add([]byte(`{"name":"a","name":"b"}`))
	f.Add([]byte(`{"maxvalidity":"12h","moduletimeout":"1m"}`))
	f.Add([]byte(`{"maxvalidity":"-5s"}`))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"moduletimeout":"-5m"} x`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := DefaultConfig()
		if err := c.applyJSON("fuzz.json", data); err != nil {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("applyJSON error %v does not wrap ErrConfig and name the file", err)
			}
			return
		}
		_ = c.Validate()
	})
}

// TestTrustFilesOthersMayWrite: the configuration, keyring, ACL and CA
// files say whose signatures the agent obeys; one that other users may
// change is refused, naming it; one they may only read is accepted.
func TestTrustFilesOthersMayWrite(t *testing.T) {
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "agent.json", `{"name":"a"}`)
	if err := os.Chmod(cfgPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(cfgPath, func(string) string { return "" }); err != nil {
		t.Fatalf("a 0644 configuration: %v", err)
	}
	if err := os.Chmod(cfgPath, 0o646); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(cfgPath, func(string) string { return "" })
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), cfgPath) || !strings.Contains(err.Error(), "0646") {
		t.Errorf("a world-writable configuration: %v; want ErrConfig naming the file and its mode", err)
	}
	for _, what := range []string{"keyring", "acl"} {
		p := writeFile(t, dir, what, "x")
		if err := os.Chmod(p, 0o664); err != nil {
			t.Fatal(err)
		}
		c := Config{Keyring: p, ACL: p}
		var err error
		if what == "keyring" {
			_, _, err = c.keyringBytes()
		} else {
			_, _, err = c.aclBytes()
		}
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), p) {
			t.Errorf("a group-writable %s: %v; want ErrConfig naming it", what, err)
		}
	}
}
