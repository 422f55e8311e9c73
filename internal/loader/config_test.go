package loader

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestConfigRefusals(t *testing.T) {
	e := newEnv(t, 1)
	good, _ := json.Marshal(e.cfg)
	var base map[string]any
	json.Unmarshal(good, &base)
	cases := map[string]struct {
		key  string
		val  any
		want string
	}{
		"unknown key":     {"extra", 1, "unknown field"},
		"http server":     {"server", "http://x/api/v1", "not an https:// URL"},
		"bad name":        {"name", "Prod!", "not a channel name"},
		"relative path":   {"agentpath", "mig-agent", "not an absolute path"},
		"bad restart":     {"restart", "reboot", "restart \"reboot\""},
		"no manifest acl": {"acldata", json.RawMessage(`{"default":{"minimumweight":1,"investigators":{}}}`), "no \"manifest\" entry"},
		"bad timeout":     {"healthtimeout", "soon", "healthtimeout"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			m := map[string]any{}
			for k, v := range base {
				m[k] = v
			}
			m[c.key] = c.val
			data, _ := json.Marshal(m)
			_, err := ParseConfig(data, "test.json")
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "test.json") {
				t.Errorf("ParseConfig: %v, want ErrConfig naming test.json and %q", err, c.want)
			}
		})
	}
	if _, err := ParseConfig(good, "good"); err != nil {
		t.Errorf("good config: %v", err)
	}
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"server":"https://a/api/v1","name":"prod","restart":"signal","keyringdata":"x","acldata":{}}`))
	f.Add([]byte(`{"server":"https://a/api/v1","name":"prod","restart":"systemd","healthtimeout":"1s","acldata":{"manifest":{"minimumweight":1,"investigators":{}}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not wrap ErrConfig", err)
			}
			return
		}
		if c.keyring == nil || c.healthTimeout <= 0 || c.acl == nil {
			t.Fatalf("accepted config without keyring, timeout or ACL: %+v", c)
		}
	})
}

// TestConfigFileModes: a configuration or keyring file that other users
// could change is refused, naming the file: it decides what gets installed.
func TestConfigFileModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	e := newEnv(t, 1)
	good, _ := json.Marshal(e.cfg)
	path := filepath.Join(t.TempDir(), "loader.json")
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err != nil {
		t.Fatalf("a 0644 configuration: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), path) {
		t.Fatalf("a world-writable configuration: %v, want ErrConfig naming %s", err, path)
	}
	keyring := filepath.Join(t.TempDir(), "keys.asc")
	var m map[string]any
	json.Unmarshal(good, &m)
	kd, _ := m["keyringdata"].(string)
	if kd == "" {
		t.Skip("the test configuration carries no inline keyring to move to a file")
	}
	if err := os.WriteFile(keyring, []byte(kd), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyring, 0o666); err != nil {
		t.Fatal(err)
	}
	delete(m, "keyringdata")
	m["keyring"] = keyring
	data, _ := json.Marshal(m)
	if _, err := ParseConfig(data, "test.json"); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), keyring) {
		t.Fatalf("a world-writable keyring: %v, want ErrConfig naming %s", err, keyring)
	}
}
