// Package loader is mig-loader: one run fetches the manifest of the host's
// channel from the server, verifies it against the loader's own keyring and
// ACL (never keys from the server), and when it is newer than what is
// installed, downloads its files, checks their size, SHA-256 and version,
// installs them atomically, restarts the agent and waits for the agent's
// local health file; an agent that does not become healthy is rolled back
// to the previous binary and the manifest's serial is remembered as bad.
//
// The server is not trusted: everything it serves is checked against what
// investigators signed. A takeover of the server can withhold updates (the
// manifest's expiry bounds how long it can replay an old one) but cannot
// make the loader install a binary no quorum of investigators signed.
package loader

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/atomicfile"
	"github.com/migplatform/mig/internal/manifest"
	"github.com/migplatform/mig/internal/strictjson"
)

// Roles of the files of a manifest.
const (
	RoleAgent  = "mig-agent"
	RoleLoader = "mig-loader"
)

// Files in the loader's state directory.
const (
	StateFile = "state.json"
	LogFile   = "loader.log"
	LockFile  = "lock"
	// MaxLog bounds loader.log; past it the log is moved to loader.log.1.
	MaxLog = 4 << 20
	// maxManifest bounds the manifest the server serves.
	maxManifest = 4 << 20
)

// Errors of a run, for errors.Is.
var (
	ErrNotEnrolled = errors.New("agent not enrolled yet")
	ErrRefused     = errors.New("manifest refused")
	ErrFile        = errors.New("file refused")
	ErrUnhealthy   = errors.New("new agent not healthy; rolled back")
	ErrLocked      = errors.New("another mig-loader is running")
)

// State is what state.json holds.
type State struct {
	// Serial and Version are the installed manifest's.
	Serial  uint64 `json:"serial"`
	Version string `json:"version,omitempty"`
	// Bad are the serials that were rolled back: never tried again.
	Bad     []uint64  `json:"bad,omitempty"`
	Updated time.Time `json:"updated"`
}

// Health is what the agent's health.json holds (internal/agent.Health).
type Health struct {
	Version   string    `json:"version"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Connected bool      `json:"connected"`
	Updated   time.Time `json:"updated"`
}

// Loader runs checks with one configuration.
type Loader struct {
	cfg  *Config
	log  *slog.Logger
	http *http.Client
	// DryRun reports what a run would do, and changes nothing.
	DryRun bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// restart, when set, replaces the configured restart method (tests).
	restart func(ctx context.Context) error
	// poll is how often the health file is read.
	poll time.Duration
}

// New returns a loader for cfg that logs to log.
func New(cfg *Config, log *slog.Logger) (*Loader, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.caPEM) {
			return nil, fmt.Errorf("%w: ca holds no PEM certificate", ErrConfig)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment,
		ResponseHeaderTimeout: time.Minute, TLSHandshakeTimeout: 30 * time.Second}
	return &Loader{cfg: cfg, log: log.With("component", "loader"), http: &http.Client{Transport: tr},
		poll: 500 * time.Millisecond}, nil
}

func (l *Loader) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

// Run does one check. A nil error means that nothing had to be done or that
// the update was installed and the agent is healthy. On any error the agent
// that ran before keeps running.
func (l *Loader) Run(ctx context.Context) error {
	if err := os.MkdirAll(l.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	unlock, err := lock(filepath.Join(l.cfg.StateDir, LockFile))
	if err != nil {
		return err
	}
	defer unlock()
	key, err := loadAgentKey(l.cfg.AgentStateDir)
	if errors.Is(err, ErrNotEnrolled) {
		l.log.Info("agent not enrolled yet; nothing to do", "agentstatedir", l.cfg.AgentStateDir)
		return nil
	}
	if err != nil {
		return err
	}
	st, err := l.loadState()
	if err != nil {
		return err
	}
	l.log.Info("checking for an update", "server", l.cfg.Server, "name", l.cfg.Name, "os", runtime.GOOS,
		"arch", runtime.GOARCH, "installed_serial", st.Serial)
	q := url.Values{"name": {l.cfg.Name}, "os": {runtime.GOOS}, "arch": {runtime.GOARCH}}
	body, err := l.get(ctx, key, "/loader/manifest?"+q.Encode(), maxManifest, nil)
	if errors.Is(err, errNotFound) {
		l.log.Info("no manifest for this host", "name", l.cfg.Name)
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch manifest: %w", err)
	}
	m, err := l.check(body, st)
	if err != nil || m == nil {
		return err
	}
	if l.DryRun {
		for _, f := range m.Files {
			l.log.Info("dry run: would install", "role", f.Role, "version", f.Version, "sha256", f.SHA256,
				"size", f.Size, "path", l.path(f.Role), "serial", m.Serial)
		}
		return nil
	}
	return l.install(ctx, key, m, st)
}

// check parses and verifies a manifest against the state. It returns nil,
// nil when there is nothing to do.
func (l *Loader) check(body []byte, st *State) (*manifest.Manifest, error) {
	m, err := manifest.Parse(body)
	if err != nil {
		l.log.Error("refusing the manifest: it does not parse", "err", err)
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lg := l.log.With("manifest", m.Name, "serial", m.Serial)
	if m.Name != l.cfg.Name || m.OS != runtime.GOOS || m.Arch != runtime.GOARCH {
		lg.Error("refusing the manifest: it is for another channel or platform", "name", m.Name, "os", m.OS,
			"arch", m.Arch, "want_name", l.cfg.Name, "want_os", runtime.GOOS, "want_arch", runtime.GOARCH)
		return nil, fmt.Errorf("%w: manifest is for %s %s/%s, this host is %s %s/%s", ErrRefused,
			m.Name, m.OS, m.Arch, l.cfg.Name, runtime.GOOS, runtime.GOARCH)
	}
	signers, err := manifest.Verify(m, l.cfg.keyring, l.cfg.acl, l.now())
	if err != nil {
		lg.Error("refusing the manifest: its signatures do not verify against the loader's keyring and ACL", "err", err)
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	lg.Info("manifest verified", "signers", signers, "expires", m.Expires)
	switch {
	case slices.Contains(st.Bad, m.Serial):
		lg.Error("refusing the manifest: this serial was rolled back before")
		return nil, fmt.Errorf("%w: serial %d was rolled back before", ErrRefused, m.Serial)
	case m.Serial < st.Serial:
		lg.Error("refusing the manifest: older than the installed one (rollback)", "installed_serial", st.Serial)
		return nil, fmt.Errorf("%w: serial %d is older than the installed %d", ErrRefused, m.Serial, st.Serial)
	case m.Serial == st.Serial:
		lg.Info("manifest already installed; nothing to do")
		return nil, nil
	}
	if _, ok := m.File(RoleAgent); !ok {
		if _, ok := m.File(RoleLoader); !ok {
			lg.Error("refusing the manifest: no file for mig-agent or mig-loader")
			return nil, fmt.Errorf("%w: manifest has no %s or %s file", ErrRefused, RoleAgent, RoleLoader)
		}
	}
	return m, nil
}

func (l *Loader) path(role string) string {
	if role == RoleLoader {
		return l.cfg.LoaderPath
	}
	return l.cfg.AgentPath
}

// staged is a downloaded and checked file beside its target.
type staged struct {
	f    manifest.File
	tmp  string
	path string
}

// install downloads, checks and installs the manifest's files.
func (l *Loader) install(ctx context.Context, key ed25519.PrivateKey, m *manifest.Manifest, st *State) error {
	lg := l.log.With("manifest", m.Name, "serial", m.Serial)
	var files []staged
	defer func() {
		for _, s := range files {
			if s.tmp != "" {
				os.Remove(s.tmp)
			}
		}
	}()
	for _, f := range m.Files {
		if f.Role != RoleAgent && f.Role != RoleLoader {
			lg.Error("refusing the manifest: unknown file role", "role", f.Role)
			return fmt.Errorf("%w: unknown role %q", ErrRefused, f.Role)
		}
		path := l.path(f.Role)
		if same, _ := fileHas(path, f); same {
			lg.Info("file already installed", "role", f.Role, "path", path, "sha256", f.SHA256)
			continue
		}
		tmp, err := l.download(ctx, key, f, path)
		if err != nil {
			lg.Error("refusing the file", "role", f.Role, "sha256", f.SHA256, "err", err)
			return err
		}
		files = append(files, staged{f: f, tmp: tmp, path: path})
		lg.Info("file downloaded and checked", "role", f.Role, "version", f.Version, "sha256", f.SHA256, "size", f.Size)
	}
	agentVersion := ""
	if f, ok := m.File(RoleAgent); ok {
		agentVersion = f.Version
	}
	var agent *staged
	for i := range files {
		s := &files[i]
		if s.f.Role == RoleAgent {
			agent = s
			continue
		}
		// The loader replaces itself; the new binary runs next time.
		if err := replace(s.tmp, s.path); err != nil {
			lg.Error("cannot install the new mig-loader", "path", s.path, "err", err)
			return fmt.Errorf("install %s: %w", s.path, err)
		}
		s.tmp = ""
		lg.Info("installed the new mig-loader; it runs next time", "path", s.path, "version", s.f.Version)
	}
	if agent != nil {
		// What to wait for after a rollback: the running agent's version.
		prevVersion := st.Version
		if h, err := l.readHealth(); err == nil && h.Version != "" {
			prevVersion = h.Version
		}
		restartedAt := l.now()
		if err := replace(agent.tmp, agent.path); err != nil {
			lg.Error("cannot install the new mig-agent; the old one keeps running", "path", agent.path, "err", err)
			return fmt.Errorf("install %s: %w", agent.path, err)
		}
		agent.tmp = ""
		lg.Info("installed the new mig-agent; restarting it", "path", agent.path, "version", agent.f.Version,
			"previous", agent.path+".prev", "restart", l.cfg.Restart)
		err := l.doRestart(ctx)
		if err == nil {
			err = l.waitHealthy(ctx, agent.f.Version, restartedAt)
		}
		if err != nil {
			lg.Error("new mig-agent is not healthy; rolling back to the previous binary", "version", agent.f.Version, "err", err)
			return l.rollback(ctx, m, st, prevVersion, err)
		}
		lg.Info("new mig-agent is healthy", "version", agent.f.Version)
	}
	st.Serial, st.Version, st.Updated = m.Serial, agentVersion, l.now().UTC()
	if err := l.saveState(st); err != nil {
		return err
	}
	lg.Info("update installed", "version", agentVersion)
	return nil
}

// rollback puts the previous agent back, restarts it and remembers the
// serial as bad.
func (l *Loader) rollback(ctx context.Context, m *manifest.Manifest, st *State, prevVersion string, cause error) error {
	lg := l.log.With("manifest", m.Name, "serial", m.Serial)
	prev := l.cfg.AgentPath + ".prev"
	st.Bad = append(st.Bad, m.Serial)
	if len(st.Bad) > 100 {
		st.Bad = st.Bad[len(st.Bad)-100:]
	}
	st.Updated = l.now().UTC()
	if err := l.saveState(st); err != nil {
		lg.Error("cannot remember the bad serial", "err", err)
	}
	if err := os.Rename(prev, l.cfg.AgentPath); err != nil {
		lg.Error("cannot restore the previous mig-agent", "previous", prev, "err", err)
		return fmt.Errorf("%w: %w; and restore %s: %w", ErrUnhealthy, cause, prev, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(l.cfg.AgentPath)); err != nil {
		lg.Warn("cannot sync the install directory", "err", err)
	}
	at := l.now()
	if err := l.doRestart(ctx); err != nil {
		lg.Error("cannot restart the previous mig-agent", "err", err)
		return fmt.Errorf("%w: %w; and restart: %w", ErrUnhealthy, cause, err)
	}
	if err := l.waitHealthy(ctx, prevVersion, at); err != nil {
		lg.Error("previous mig-agent restored but not healthy yet", "err", err)
	} else {
		lg.Info("previous mig-agent restored and healthy", "version", prevVersion)
	}
	return fmt.Errorf("%w: %w", ErrUnhealthy, cause)
}

// download fetches f into a temporary file beside path, bounded by its size,
// and checks its SHA-256 and its -version output. It returns the temporary
// file's name.
func (l *Loader) download(ctx context.Context, key ed25519.PrivateKey, f manifest.File, path string) (string, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new*")
	if err != nil {
		return "", fmt.Errorf("%w: temporary file beside %s: %w", ErrFile, path, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	_, err = l.get(ctx, key, "/loader/files/"+f.SHA256, f.Size, io.MultiWriter(tmp, h))
	if err != nil {
		return "", fmt.Errorf("%w: download %s: %w", ErrFile, f.SHA256, err)
	}
	n, _ := tmp.Seek(0, io.SeekCurrent)
	if n != f.Size {
		return "", fmt.Errorf("%w: download %s: %d bytes, the manifest says %d (truncated)", ErrFile, f.SHA256, n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return "", fmt.Errorf("%w: download has SHA-256 %s, the manifest says %s", ErrFile, got, f.SHA256)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return "", fmt.Errorf("%w: %w", ErrFile, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("%w: sync %s: %w", ErrFile, tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrFile, err)
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(vctx, tmp.Name(), "-version")
	cmd.Env = []string{}
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s -version: %w", ErrFile, f.Role, err)
	}
	if got := strings.TrimSpace(string(out)); got != f.Version {
		return "", fmt.Errorf("%w: %s -version prints %q, the manifest says %q", ErrFile, f.Role, shorten(got), f.Version)
	}
	ok = true
	return tmp.Name(), nil
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// fileHas reports whether path holds exactly f.
func fileHas(path string, f manifest.File) (bool, error) {
	file, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer file.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(file, f.Size+1))
	if err != nil {
		return false, err
	}
	return n == f.Size && hex.EncodeToString(h.Sum(nil)) == f.SHA256, nil
}

// replace keeps path as path.prev (a hard link, so that path never stops
// existing) and renames tmp over path.
func replace(tmp, path string) error {
	prev := path + ".prev"
	if _, err := os.Stat(path); err == nil {
		os.Remove(prev)
		if err := os.Link(path, prev); err != nil {
			return fmt.Errorf("keep %s: %w", prev, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

var errNotFound = errors.New("not found")

// get sends an authenticated GET for path (under the API base) and returns
// the body (when w is nil) or copies it to w, refusing more than limit bytes.
func (l *Loader) get(ctx context.Context, key ed25519.PrivateKey, path string, limit int64, w io.Writer) ([]byte, error) {
	u := strings.TrimSuffix(l.cfg.Server, "/") + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", AuthHeader(key, l.now(), http.MethodGet, req.URL.RequestURI()))
	resp, err := l.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && strings.HasPrefix(path, "/loader/manifest") {
		return nil, errNotFound
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("server answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("server sends %d bytes, more than %d", resp.ContentLength, limit)
	}
	r := io.LimitReader(resp.Body, limit+1)
	if w == nil {
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("read body: %w", err)
		}
		if int64(len(data)) > limit {
			return nil, fmt.Errorf("server sends more than %d bytes", limit)
		}
		return data, nil
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return nil, fmt.Errorf("read body after %d bytes: %w", n, err)
	}
	if n > limit {
		return nil, fmt.Errorf("server sends more than the %d bytes the manifest says", limit)
	}
	return nil, nil
}

// AuthHeader is the Authorization header of a loader request (DESIGN-14
// section 3): the agent's ID, the time, and its Ed25519 signature over
// "mig-loader-v1\n" + id + "\n" + time + "\n" + method + "\n" + requestURI.
func AuthHeader(key ed25519.PrivateKey, now time.Time, method, requestURI string) string {
	id := action.AgentID(key.Public().(ed25519.PublicKey))
	t := now.UTC().Format(time.RFC3339)
	sig := ed25519.Sign(key, []byte("mig-loader-v1\n"+id+"\n"+t+"\n"+method+"\n"+requestURI))
	return "MIG-Agent id=" + id + ",time=" + t + ",sig=" + base64.StdEncoding.EncodeToString(sig)
}

// loadAgentKey reads the agent's PKCS#8 PEM Ed25519 key.
func loadAgentKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, "agent.key")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotEnrolled
	}
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("agent key %s is not a PEM PRIVATE KEY", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("agent key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("agent key %s is a %T, not Ed25519", path, k)
	}
	return ek, nil
}

func (l *Loader) loadState() (*State, error) {
	path := filepath.Join(l.cfg.StateDir, StateFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var st State
	if err := strictjson.Decode(data, &st); err != nil {
		return nil, fmt.Errorf("state %s is corrupt: %w", path, err)
	}
	return &st, nil
}

func (l *Loader) saveState(st *State) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(l.cfg.StateDir, StateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// readHealth reads the agent's health file.
func (l *Loader) readHealth() (Health, error) {
	var h Health
	data, err := os.ReadFile(filepath.Join(l.cfg.AgentStateDir, "health.json"))
	if err != nil {
		return h, err
	}
	err = json.Unmarshal(data, &h)
	return h, err
}

// waitHealthy waits until the agent's health file reports version, a live
// pid and a relay connection, written after since.
func (l *Loader) waitHealthy(ctx context.Context, version string, since time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.healthTimeout)
	defer cancel()
	t := time.NewTicker(l.poll)
	defer t.Stop()
	last := "no health file"
	for {
		h, err := l.readHealth()
		switch {
		case err != nil:
			last = err.Error()
		case h.Version != version:
			last = fmt.Sprintf("health.json says version %q, want %q", h.Version, version)
		case !h.Updated.After(since):
			last = "health.json not updated since the restart"
		case !h.Connected:
			last = "agent not connected to the relay"
		case !alive(h.PID):
			last = fmt.Sprintf("agent pid %d is not running", h.PID)
		default:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not healthy within %s: %s", l.cfg.healthTimeout, last)
		case <-t.C:
		}
	}
}

func (l *Loader) doRestart(ctx context.Context) error {
	if l.restart != nil {
		return l.restart(ctx)
	}
	switch l.cfg.Restart {
	case RestartSystemd:
		return run(ctx, "systemctl", "restart", l.cfg.Service)
	case RestartLaunchd:
		return run(ctx, "launchctl", "kickstart", "-k", "system/"+l.cfg.Service)
	case RestartWindows:
		return restartWindowsService(ctx, l.cfg.Service)
	case RestartSignal:
		h, err := l.readHealth()
		if err != nil {
			return fmt.Errorf("signal restart: no agent pid: %w", err)
		}
		return terminate(h.PID)
	}
	return fmt.Errorf("unknown restart method %q", l.cfg.Restart)
}

func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, shorten(strings.TrimSpace(string(out))))
	}
	return nil
}
