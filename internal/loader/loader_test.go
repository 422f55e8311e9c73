package loader

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/sign"
)

var (
	keysOnce sync.Once
	signers  []sign.Signer
	pubs     []string
)

func testSigners(t *testing.T) ([]sign.Signer, []string) {
	t.Helper()
	keysOnce.Do(func() {
		for _, n := range []string{"Alice", "Bob"} {
			priv, pub, _, err := sign.GenerateKey(n, strings.ToLower(n)+"@example.com")
			if err != nil {
				panic(err)
			}
			s, err := sign.NewKeySigner(priv, nil)
			if err != nil {
				panic(err)
			}
			signers, pubs = append(signers, s), append(pubs, string(pub))
		}
	})
	return signers, pubs
}

// fake is an httptest server that serves one manifest and files, and
// checks the loader's Authorization header.
type fake struct {
	srv      *httptest.Server
	mu       sync.Mutex
	manifest []byte
	files    map[string][]byte
	truncate bool
	authErrs []string
}

func newFake(t *testing.T) *fake {
	f := &fake{files: map[string][]byte{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !strings.HasPrefix(r.Header.Get("Authorization"), "MIG-Agent id=") {
			f.authErrs = append(f.authErrs, r.URL.String())
			http.Error(w, "no agent authorization", http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/api/v1/loader/manifest":
			if f.manifest == nil {
				http.NotFound(w, r)
				return
			}
			w.Write(f.manifest)
		case strings.HasPrefix(r.URL.Path, "/api/v1/loader/files/"):
			data, ok := f.files[strings.TrimPrefix(r.URL.Path, "/api/v1/loader/files/")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			if f.truncate {
				data = data[:len(data)/2]
			}
			w.Write(data)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// env is one host: an agent binary, state directories, and a loader.
type env struct {
	t          *testing.T
	fake       *fake
	dir        string
	agentState string
	cfg        *Config
	log        bytes.Buffer
	// healthy is the version the "restarted" agent reports.
	restarts int
	report   func(installed string) string
}

func script(version string, crash bool) []byte {
	s := "#!/bin/sh\nif [ \"$1\" = -version ]; then echo " + version + "; exit 0; fi\n"
	if crash {
		s += "exit 1\n"
	}
	return []byte(s + "sleep 1000\n")
}

func newEnv(t *testing.T, min int) *env {
	t.Helper()
	_, pubs := testSigners(t)
	e := &env{t: t, fake: newFake(t), dir: t.TempDir()}
	e.agentState = filepath.Join(e.dir, "agent")
	os.MkdirAll(e.agentState, 0o700)
	_, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(e.agentState, "agent.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	agentPath := filepath.Join(e.dir, "bin", "mig-agent")
	os.MkdirAll(filepath.Dir(agentPath), 0o755)
	os.WriteFile(agentPath, script("A", false), 0o755)
	e.writeHealth("A")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.fake.srv.Certificate().Raw})
	ss, _ := testSigners(t)
	aclJSON := fmt.Sprintf(`{"manifest":{"minimumweight":%d,"investigators":{"alice":{"fingerprint":%q,"weight":1},"bob":{"fingerprint":%q,"weight":1}}}}`,
		min, ss[0].Fingerprint(), ss[1].Fingerprint())
	cfg := map[string]any{
		"server": e.fake.srv.URL + "/api/v1", "cadata": string(ca), "name": "prod",
		"agentstatedir": e.agentState, "statedir": filepath.Join(e.dir, "loader"),
		"keyringdata": pubs[0] + "\n" + pubs[1], "acldata": json.RawMessage(aclJSON),
		"agentpath": agentPath, "loaderpath": filepath.Join(e.dir, "bin", "mig-loader"),
		"restart": "signal", "healthtimeout": "2s",
	}
	data, _ := json.Marshal(cfg)
	c, err := ParseConfig(data, "test")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = c
	e.report = func(installed string) string { return installed }
	return e
}

func (e *env) writeHealth(version string) {
	h := Health{Version: version, PID: os.Getpid(), Started: time.Now().UTC(), Connected: true, Updated: time.Now().UTC().Add(time.Millisecond)}
	data, _ := json.Marshal(h)
	if err := os.WriteFile(filepath.Join(e.agentState, "health.json"), data, 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// publish serves a manifest for data as version, signed by n signers.
func (e *env) publish(serial uint64, version string, data []byte, n int, edit func(*manifest.Manifest)) {
	e.t.Helper()
	sum := sha256.Sum256(data)
	now := time.Now().UTC().Truncate(time.Second)
	m := &manifest.Manifest{Name: "prod", Serial: serial, OS: runtime.GOOS, Arch: runtime.GOARCH,
		Created: now, Expires: now.Add(time.Hour),
		Files: []manifest.File{{Role: RoleAgent, Version: version, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}}}
	if edit != nil {
		edit(m)
	}
	ss, _ := testSigners(e.t)
	for _, s := range ss[:n] {
		if err := manifest.Sign(m, s); err != nil {
			e.t.Fatal(err)
		}
	}
	body, err := m.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.fake.mu.Lock()
	e.fake.manifest = body
	e.fake.files[hex.EncodeToString(sum[:])] = data
	e.fake.mu.Unlock()
}

func (e *env) run() error {
	e.t.Helper()
	l, err := New(e.cfg, slog.New(slog.NewJSONHandler(&e.log, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	l.poll = 20 * time.Millisecond
	l.restart = func(context.Context) error {
		e.restarts++
		out, err := os.ReadFile(e.cfg.AgentPath)
		if err != nil {
			return err
		}
		v := ""
		if i := bytes.Index(out, []byte("echo ")); i >= 0 {
			v = strings.TrimRight(strings.Fields(string(out[i+5:]))[0], ";")
		}
		if !bytes.Contains(out, []byte("exit 1\n")) {
			e.writeHealth(e.report(v))
		}
		return nil
	}
	return l.Run(context.Background())
}

func (e *env) installed() string {
	data, _ := os.ReadFile(e.cfg.AgentPath)
	return string(data)
}

func (e *env) state() State {
	var st State
	data, _ := os.ReadFile(filepath.Join(e.cfg.StateDir, StateFile))
	json.Unmarshal(data, &st)
	return st
}

func TestInstallAndRefusals(t *testing.T) {
	e := newEnv(t, 2)
	if err := e.run(); err != nil {
		t.Fatalf("run with no manifest: %v", err)
	}
	e.publish(10, "B", script("B", false), 2, nil)
	if err := e.run(); err != nil {
		t.Fatalf("run: %v\n%s", err, e.log.String())
	}
	if e.installed() != string(script("B", false)) || e.state().Serial != 10 || e.state().Version != "B" {
		t.Fatalf("after update: state %+v, binary %q", e.state(), e.installed())
	}
	if prev, _ := os.ReadFile(e.cfg.AgentPath + ".prev"); string(prev) != string(script("A", false)) {
		t.Errorf(".prev = %q, want A", prev)
	}
	// Same serial: nothing to do.
	if err := e.run(); err != nil || e.restarts != 1 {
		t.Errorf("second run: %v, %d restarts, want nil and 1", err, e.restarts)
	}
	cases := []struct {
		name    string
		serial  uint64
		sigs    int
		edit    func(*manifest.Manifest)
		trunc   bool
		want    error
		logText string
	}{
		{"one signature where two are required", 11, 1, nil, false, manifest.ErrWeight, "signatures do not verify"},
		{"older than installed", 9, 2, nil, false, ErrRefused, "older than the installed"},
		{"other os", 12, 2, func(m *manifest.Manifest) { m.OS = otherOf(m.OS, "linux", "windows") }, false, ErrRefused, "another channel or platform"},
		{"other arch", 12, 2, func(m *manifest.Manifest) { m.Arch = otherOf(m.Arch, "amd64", "arm64") }, false, ErrRefused, "another channel or platform"},
		{"expired", 12, 2, func(m *manifest.Manifest) {
			m.Created = m.Created.Add(-3 * time.Hour)
			m.Expires = m.Created.Add(time.Hour)
		}, false, manifest.ErrExpired, "signatures do not verify"},
		{"hash does not match", 12, 2, func(m *manifest.Manifest) { m.Files[0].SHA256 = strings.Repeat("ab", 32) }, false, ErrFile, "refusing the file"},
		{"version does not match", 12, 2, func(m *manifest.Manifest) { m.Files[0].Version = "D" }, false, ErrFile, "-version prints"},
		{"truncated download", 12, 2, nil, true, ErrFile, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.log.Reset()
			e.fake.truncate = c.trunc
			defer func() { e.fake.truncate = false }()
			data := script("C", false)
			e.publish(c.serial, "C", data, c.sigs, c.edit)
			if c.name == "hash does not match" {
				sum := sha256.Sum256(data)
				e.fake.files[strings.Repeat("ab", 32)] = data
				_ = sum
			}
			err := e.run()
			if !errors.Is(err, c.want) {
				t.Errorf("run: %v, want %v", err, c.want)
			}
			if !strings.Contains(e.log.String(), c.logText) {
				t.Errorf("log does not say %q:\n%s", c.logText, e.log.String())
			}
			if e.installed() != string(script("B", false)) || e.state().Serial != 10 {
				t.Errorf("installed changed: state %+v", e.state())
			}
			left, _ := filepath.Glob(filepath.Join(filepath.Dir(e.cfg.AgentPath), ".*"))
			if len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
	// Unknown fields in the manifest.
	e.publish(12, "C", script("C", false), 2, nil)
	e.fake.manifest = bytes.Replace(e.fake.manifest, []byte(`"name"`), []byte(`"extra": 1, "name"`), 1)
	if err := e.run(); !errors.Is(err, ErrRefused) || !strings.Contains(e.log.String(), "does not parse") {
		t.Errorf("unknown field: %v\n%s", err, e.log.String())
	}
}

func TestRollback(t *testing.T) {
	e := newEnv(t, 1)
	e.publish(5, "B", script("B", true), 1, nil) // B crashes at start
	err := e.run()
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("run: %v, want ErrUnhealthy\n%s", err, e.log.String())
	}
	if e.installed() != string(script("A", false)) {
		t.Errorf("after rollback the binary is %q, want A", e.installed())
	}
	if st := e.state(); st.Serial != 0 || len(st.Bad) != 1 || st.Bad[0] != 5 {
		t.Errorf("state %+v, want serial 0 and bad [5]", st)
	}
	if !strings.Contains(e.log.String(), "rolling back") || !strings.Contains(e.log.String(), "previous mig-agent restored and healthy") {
		t.Errorf("log:\n%s", e.log.String())
	}
	// The bad serial is not tried again.
	if err := e.run(); !errors.Is(err, ErrRefused) || !strings.Contains(e.log.String(), "rolled back before") {
		t.Errorf("second run: %v", err)
	}
}

func TestDryRunAndNotEnrolled(t *testing.T) {
	e := newEnv(t, 1)
	e.publish(5, "B", script("B", false), 1, nil)
	l, _ := New(e.cfg, slog.New(slog.NewJSONHandler(&e.log, nil)))
	l.DryRun = true
	if err := l.Run(context.Background()); err != nil || e.installed() != string(script("A", false)) {
		t.Errorf("dry run: %v, installed %q", err, e.installed())
	}
	if !strings.Contains(e.log.String(), "dry run: would install") {
		t.Errorf("log:\n%s", e.log.String())
	}
	os.Remove(filepath.Join(e.agentState, "agent.key"))
	if err := e.run(); err != nil || !strings.Contains(e.log.String(), "agent not enrolled yet") {
		t.Errorf("not enrolled: %v", err)
	}
}

// otherOf returns a if it is not v, else b.
func otherOf(v, a, b string) string {
	if v == a {
		return b
	}
	return a
}
