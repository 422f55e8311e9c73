package loader

import (
	"encoding/json"
	"errors"
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
