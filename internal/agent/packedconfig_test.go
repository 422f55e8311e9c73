package agent

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/packed"
)

const testPayload = `{"server":"https://mig.example/api/v1","enrollmenttoken":"secret-token","keyringdata":"keys","acldata":{"default":{"minimumweight":1}},"cadata":"PEM","heartbeat":"30s","overridable":["maxvalidity"]}`

func TestParsePacked(t *testing.T) {
	p, err := ParsePacked("/bin/agent", []byte(testPayload))
	if err != nil {
		t.Fatalf("ParsePacked: %v", err)
	}
	if p.Config.Server != "https://mig.example/api/v1" || p.Config.EnrollmentToken != "secret-token" || p.Config.CAData != "PEM" || p.Config.Heartbeat.String() != "30s" {
		t.Errorf("Config = %+v", p.Config)
	}
	if !strings.Contains(p.Config.ACLData, "minimumweight") {
		t.Errorf("ACLData = %q", p.Config.ACLData)
	}
	if err := p.allow("maxvalidity"); err != nil {
		t.Errorf("maxvalidity listed as overridable: %v", err)
	}
	for _, k := range DefaultOverridable {
		if err := p.allow(k); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	for _, k := range []string{"server", "ca", "cadata", "keyring", "keyringdata", "acl", "acldata", "enrollmenttoken"} {
		if err := p.allow(k); err == nil || !strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), "/bin/agent") {
			t.Errorf("allow(%s) = %v, want an error naming the key and the file", k, err)
		}
	}
	if r := string(p.Redacted()); strings.Contains(r, "secret-token") || !strings.Contains(r, "(redacted)") {
		t.Errorf("Redacted = %s", r)
	}
}

func TestParsePackedErrors(t *testing.T) {
	for _, tt := range []struct{ json, want string }{
		{`[]`, "not a JSON object"},
		{`{"server":"a","server":"b"}`, "twice"},
		{`{"bogus":1}`, "bogus"},
		{`{"keyring":"/etc/k"}`, "inline"},
		{`{"ca":"/etc/ca.pem"}`, "cadata"},
		{`{"overridable":"server"}`, "overridable"},
		{`{"overridable":["nope"]}`, "nope"},
		{`{"heartbeat":5}`, "heartbeat"},
		{`{} x`, "after"},
	} {
		_, err := ParsePacked("/bin/agent", []byte(tt.json))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePacked(%s) = %v, want ErrConfig mentioning %q", tt.json, err, tt.want)
		}
	}
}

func TestLoadPackedConfigLocks(t *testing.T) {
	p, err := ParsePacked("/bin/agent", []byte(testPayload))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ok := writeFile(t, dir, "ok.json", `{"heartbeat":"10s","statedir":"/tmp/s","maxvalidity":"1h"}`)
	c, err := loadConfigOver(p.Config, p.allow, ok, func(string) string { return "" })
	if err != nil {
		t.Fatalf("allowed file: %v", err)
	}
	if c.Heartbeat.String() != "10s" || c.StateDir != "/tmp/s" || c.Server != p.Config.Server {
		t.Errorf("config = %+v", c)
	}
	locked := writeFile(t, dir, "locked.json", `{"server":"https://evil/api/v1"}`)
	if _, err := loadConfigOver(p.Config, p.allow, locked, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), `"server" is locked`) {
		t.Errorf("file naming server: %v", err)
	}
	env := func(k string) string {
		if k == "MIG_AGENT_SERVER" {
			return "https://evil/api/v1"
		}
		return ""
	}
	if _, err := loadConfigOver(p.Config, p.allow, "", env); err == nil || !strings.Contains(err.Error(), "MIG_AGENT_SERVER") || !strings.Contains(err.Error(), "locked") {
		t.Errorf("MIG_AGENT_SERVER: %v", err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	apply := SetFlagsPacked(fs)
	if err := fs.Parse([]string{"-name", "n1", "-keyring", "/tmp/k"}); err != nil {
		t.Fatal(err)
	}
	c = p.Config
	if err := apply(&c, p); err == nil || !strings.Contains(err.Error(), "-keyring") || !strings.Contains(err.Error(), "locked") {
		t.Errorf("-keyring flag: %v", err)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	apply = SetFlagsPacked(fs)
	if err := fs.Parse([]string{"-name", "n1", "-statedir", "/tmp/x"}); err != nil {
		t.Fatal(err)
	}
	c = p.Config
	if err := apply(&c, p); err != nil || c.Name != "n1" || c.StateDir != "/tmp/x" {
		t.Errorf("allowed flags: %v %+v", err, c)
	}
}

func TestReadPacked(t *testing.T) {
	dir := t.TempDir()
	exe := []byte("\x7fELF not really an executable")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, exe, 0o700); err != nil {
		t.Fatal(err)
	}
	if p, err := ReadPacked(plain); p != nil || err != nil {
		t.Errorf("no payload: %v %v", p, err)
	}
	out, err := packed.Append(exe, []byte(testPayload))
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, out, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPacked(good)
	if err != nil || p == nil || p.Config.EnrollmentToken != "secret-token" {
		t.Fatalf("ReadPacked: %v %v", p, err)
	}
	bad := filepath.Join(dir, "bad")
	out[len(exe)+3] ^= 1
	if err := os.WriteFile(bad, out, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPacked(bad); !errors.Is(err, ErrConfig) || !errors.Is(err, packed.ErrChecksum) || !strings.Contains(err.Error(), bad) {
		t.Errorf("tampered: %v", err)
	}
	old := builtinConfig
	t.Cleanup(func() { builtinConfig = old })
	builtinConfig = "e30="
	if _, err := ReadPacked(good); err == nil || !strings.Contains(err.Error(), "both a compiled-in") {
		t.Errorf("compiled-in and appended: %v", err)
	}
}

func TestMaterializeCA(t *testing.T) {
	c := validConfig(t)
	c.StateDir = filepath.Join(t.TempDir(), "state")
	c.CAData = "-----BEGIN CERTIFICATE-----\n"
	if err := c.MaterializeCA(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(c.CA)
	if err != nil || string(b) != "-----BEGIN CERTIFICATE-----\n" || c.CAData != "" {
		t.Errorf("CA %s = %q, %v; CAData %q", c.CA, b, err, c.CAData)
	}
	if fi, _ := os.Stat(c.CA); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	c.CAData = "x"
	if err := c.MaterializeCA(); err == nil {
		t.Error("ca and cadata both set: no error")
	}
}

func TestPackConfig(t *testing.T) {
	dir := t.TempDir()
	kr := writeFile(t, dir, "k.asc", "not a keyring")
	cfg := writeFile(t, dir, "agent.json", `{"server":"https://s/api/v1","keyring":"`+kr+`"}`)
	if _, err := PackConfig(cfg); err == nil || !strings.Contains(err.Error(), "keyring") {
		t.Errorf("bad keyring: %v", err)
	}
	aclPath := writeFile(t, dir, "acl.json", `{"default":{"minimumweight":1,"investigators":{}}}`)
	cfg = writeFile(t, dir, "agent2.json", `{"server":"https://s/api/v1","acl":"`+aclPath+`","overridable":["server"],"tags":{"a":"b"}}`)
	payload, err := PackConfig(cfg)
	if err != nil {
		t.Fatalf("PackConfig: %v", err)
	}
	p, err := ParsePacked("x", payload)
	if err != nil {
		t.Fatalf("ParsePacked(%s): %v", payload, err)
	}
	if p.Config.ACL != "" || !strings.Contains(p.Config.ACLData, "minimumweight") || p.allow("server") != nil || p.Config.Tags["a"] != "b" {
		t.Errorf("packed %s -> %+v", payload, p)
	}
	cfg = writeFile(t, dir, "agent3.json", `{"ca":"`+aclPath+`"}`)
	if _, err := PackConfig(cfg); err == nil || !strings.Contains(err.Error(), "PEM") {
		t.Errorf("bad ca: %v", err)
	}
}

func FuzzParsePacked(f *testing.F) {
	f.Add([]byte(testPayload))
	f.Add([]byte(`{"overridable":["server","server"]}`))
	f.Add([]byte(`{"acldata":"{}","tags":{"a":"b"}}`))
	f.Add([]byte(`{"keyring":"x"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParsePacked("fuzz", data)
		if err != nil {
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "fuzz") {
				t.Fatalf("error %v does not wrap ErrConfig and name the source", err)
			}
			return
		}
		if p.Config.Keyring != "" || p.Config.ACL != "" || p.Config.CA != "" {
			t.Fatalf("payload set a file key: %+v", p.Config)
		}
		for _, k := range []string{"server", "enrollmenttoken", "keyringdata", "acldata", "cadata"} {
			if p.allow(k) == nil && !strings.Contains(string(data), k) {
				t.Fatalf("%s overridable without being listed", k)
			}
		}
	})
}
