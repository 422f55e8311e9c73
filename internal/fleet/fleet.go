// Package fleet simulates a fleet of MIG agents in one process, so that one
// machine can show, test and measure the platform with thousands of
// endpoints.
//
// Every simulated agent is a real internal/agent.Agent: it has its own
// Ed25519 identity and state directory, enrolls with the server's enrollment
// token, holds its own relay connection with its own credentials, says hello
// and sends heartbeats, and checks every command exactly as a real agent does
// (signatures against the keyring, ACL weights, validity window, replay
// journal, target). What differs:
//
//   - modules run in the agent's process (module.RunLocal), not in a child
//     process, so a module that crashes or hangs affects the whole fleet;
//   - the file module sees a small fixture tree of the agent's own (see
//     WriteFixtures) as its root file system: the paths of an action are
//     looked up under that tree, as in a chroot, and the results name them
//     as the agent sees them (/etc/passwd, not the tree's real path); other
//     modules see the host;
//   - each agent reports varied attributes (see Attributes) instead of the
//     host's, and mode action.ModeFleetSim, so that targets select subsets;
//   - the keyring, the ACL and the HTTPS connection pool used to enroll are
//     parsed or made once and shared.
//
// A simulated agent holds one open file (its relay connection) while it runs;
// a process can hold about as many agents as its open-file limit allows
// (RaiseFileLimit), and several simulator processes, each with its own state
// directory and name prefix, can join one server.
package fleet

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/agent"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/relay/dialer"
	"github.com/migplatform/mig/internal/sign"
)

// Defaults of a Config.
const (
	DefaultHeartbeat        = 60 * time.Second
	DefaultModuleTimeout    = time.Minute
	DefaultStartConcurrency = 64
	// MaxAgents bounds N in one process.
	MaxAgents = 100000
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("bad fleet configuration")

// Config describes a simulated fleet.
type Config struct {
	// Server is the API base URL, e.g. https://127.0.0.1:12664/api/v1.
	Server string
	// CA is a PEM file trusted for the server's and the relay's TLS.
	CA string
	// EnrollmentToken authenticates the agents' enrollment.
	EnrollmentToken string
	// Keyring (a file) or KeyringData holds the investigators' armored
	// public keys; exactly one is set.
	Keyring, KeyringData string
	// ACL (a file) or ACLData holds the module ACL JSON; exactly one is
	// set.
	ACL, ACLData string
	// N is the number of agents.
	N int
	// Dir holds every agent's state directory and fixture tree; see
	// DefaultDir. The same Dir gives the same agents (identities) again.
	Dir string
	// Prefix starts every agent's name, so that several simulators joining
	// one server have distinct names; default derived from Dir.
	Prefix string
	// Heartbeat is each agent's heartbeat interval (DefaultHeartbeat).
	Heartbeat time.Duration
	// ModuleTimeout bounds each operation (DefaultModuleTimeout).
	ModuleTimeout time.Duration
	// StartConcurrency is how many agents enroll and connect at once
	// (DefaultStartConcurrency).
	StartConcurrency int
	// DiskState keeps each agent's inbox, outbox and replay journal in its
	// state directory with fsyncs, as a real agent does. By default they
	// are in memory (agent.Options.MemoryState): a fleet in one process
	// would otherwise spend most of its CPU on state-file system calls that
	// a real fleet spreads over its machines, and commands and results do
	// not survive a restart of the simulator.
	DiskState bool
	// AgentLogLevel is the lowest level of the agents' own logs that is
	// kept (the zero value, info, logs a few lines per agent and command;
	// the simulator's -loglevel sets warn by default).
	AgentLogLevel slog.Level
}

// DefaultDir returns where a fleet keeps its state when Config.Dir is empty:
// mig-fleet under /dev/shm when it exists (a tmpfs: the agents' fsyncs are
// free there, as they would be spread over 10,000 machines' disks, not one),
// else under the temporary directory.
func DefaultDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm/mig-fleet"
	}
	return filepath.Join(os.TempDir(), "mig-fleet")
}

// fill applies defaults.
func (c *Config) fill() {
	if c.Dir == "" {
		c.Dir = DefaultDir()
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ModuleTimeout == 0 {
		c.ModuleTimeout = DefaultModuleTimeout
	}
	if c.StartConcurrency == 0 {
		c.StartConcurrency = DefaultStartConcurrency
	}
	if c.Prefix == "" {
		abs, err := filepath.Abs(c.Dir)
		if err != nil {
			abs = c.Dir
		}
		// Decimal digits, so that no name matches a role by accident
		// (name LIKE '%db%').
		sum := sha256.Sum256([]byte(abs))
		c.Prefix = fmt.Sprintf("sim%04d", binary.BigEndian.Uint16(sum[:2])%10000)
	}
}

// Validate checks the configuration after defaults are applied; errors name
// the bad setting.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Server == "":
		return bad("server is not set")
	case c.EnrollmentToken == "":
		return bad("enrollment token is not set")
	case (c.Keyring == "") == (c.KeyringData == ""):
		return bad("set exactly one of keyring (file %q) and keyring data", c.Keyring)
	case (c.ACL == "") == (c.ACLData == ""):
		return bad("set exactly one of acl (file %q) and acl data", c.ACL)
	case c.N < 1 || c.N > MaxAgents:
		return bad("n %d is not between 1 and %d", c.N, MaxAgents)
	case c.Heartbeat <= 0 || c.Heartbeat > 24*time.Hour:
		return bad("heartbeat %s is not between 0 and 24h", c.Heartbeat)
	case c.ModuleTimeout <= 0 || c.ModuleTimeout > 24*time.Hour:
		return bad("moduletimeout %s is not between 0 and 24h", c.ModuleTimeout)
	case c.StartConcurrency < 1:
		return bad("start concurrency %d is less than 1", c.StartConcurrency)
	case !validPrefix(c.Prefix):
		return bad("prefix %q: want 1 to 32 letters, digits or '-'", c.Prefix)
	}
	return nil
}

func validPrefix(p string) bool {
	if p == "" || len(p) > 32 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Stats are a fleet's counters since it started.
type Stats struct {
	Agents    int   // agents in the fleet
	Started   int   // agents created and running
	Connected int   // agents whose relay connection has come up (reconnecting by itself or not)
	Commands  int64 // commands received from the relay
	Results   int64 // results published (sent again included)
}

// Fleet is a running simulated fleet. Make one with New, then call Run.
type Fleet struct {
	cfg     Config
	log     *slog.Logger
	keyring *sign.Keyring
	acl     acl.ACL
	http    *http.Client

	started   atomic.Int64
	connected atomic.Int64
	commands  atomic.Int64
	results   atomic.Int64
	ready     chan struct{}
	readyOnce sync.Once

	mu  sync.Mutex
	ids []string // agent IDs by index, "" until created
}

// New checks cfg, parses the keyring and the ACL once, and prepares the
// shared HTTPS client. Nothing is written until Run.
func New(cfg Config, logger *slog.Logger) (*Fleet, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg, log: logger.With("component", "fleet"), ready: make(chan struct{}),
		ids: make([]string, cfg.N)}
	kr, err := blob(cfg.Keyring, cfg.KeyringData)
	if err != nil {
		return nil, fmt.Errorf("%w: keyring: %w", ErrConfig, err)
	}
	if f.keyring, err = sign.ReadKeyring(bytes.NewReader(kr)); err != nil {
		return nil, fmt.Errorf("%w: keyring %s: %w", ErrConfig, cfg.Keyring, err)
	}
	aclData, err := blob(cfg.ACL, cfg.ACLData)
	if err != nil {
		return nil, fmt.Errorf("%w: acl: %w", ErrConfig, err)
	}
	if f.acl, err = acl.Parse(aclData); err != nil {
		return nil, fmt.Errorf("%w: acl %s: %w", ErrConfig, cfg.ACL, err)
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("%w: ca: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca %s holds no PEM certificate", ErrConfig, cfg.CA)
		}
		tlsConf.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = cfg.StartConcurrency
	tr.IdleConnTimeout = 30 * time.Second
	f.http = &http.Client{Transport: tr, Timeout: 30 * time.Second}
	return f, nil
}

// blob returns a file's content or inline data.
func blob(path, inline string) ([]byte, error) {
	if path == "" {
		return []byte(inline), nil
	}
	return os.ReadFile(path)
}

// Config returns the fleet's configuration with defaults applied.
func (f *Fleet) Config() Config { return f.cfg }

// Ready is closed once every agent of the fleet has connected to the relay
// at least once.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	return Stats{
		Agents:    f.cfg.N,
		Started:   int(f.started.Load()),
		Connected: int(f.connected.Load()),
		Commands:  f.commands.Load(),
		Results:   f.results.Load(),
	}
}

// AgentIDs returns the IDs of the agents created so far, by index ("" for
// one not created yet).
func (f *Fleet) AgentIDs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...)
}

// Run creates the agents (StartConcurrency at a time: each enrolls if it has
// no credentials and connects before the next one starts) and runs them
// until ctx ends. It returns once every agent has stopped: nil when ctx
// ended, or the first error that kept an agent from being created.
func (f *Fleet) Run(ctx context.Context) error {
	if err := os.MkdirAll(f.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("fleet dir %s: %w", f.cfg.Dir, err)
	}
	f.log.Info("fleet starting", "agents", f.cfg.N, "dir", f.cfg.Dir, "prefix", f.cfg.Prefix)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var running sync.WaitGroup // every agent's Run
	defer running.Wait()
	sem := make(chan struct{}, f.cfg.StartConcurrency)
	var starting sync.WaitGroup
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	start := time.Now()
loop:
	for i := range f.cfg.N {
		select {
		case <-ctx.Done():
			break loop
		case sem <- struct{}{}:
		}
		select {
		case <-progress.C:
			s := f.Stats()
			f.log.Info("fleet starting", "started", s.Started, "connected", s.Connected, "of", s.Agents)
		default:
		}
		starting.Go(func() {
			defer func() { <-sem }()
			m, err := f.newMember(i)
			if err != nil {
				cancel(fmt.Errorf("agent %d: %w", i, err))
				return
			}
			f.started.Add(1)
			running.Go(func() {
				if err := m.agent.Run(ctx); err != nil {
					f.log.Error("agent stopped", "index", i, "err", err)
				}
			})
			// Hold the slot until the agent is connected (enrolment and TLS
			// handshakes are what costs the server), or ctx ends.
			select {
			case <-m.up:
			case <-ctx.Done():
			}
		})
	}
	starting.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil && !errors.Is(err, context.Canceled) {
		running.Wait()
		return err
	}
	if ctx.Err() == nil {
		f.log.Info("fleet started", "agents", f.cfg.N, "connected", f.connected.Load(),
			"took", time.Since(start).Round(time.Millisecond).String())
	}
	<-ctx.Done()
	running.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// member is one simulated agent.
type member struct {
	index int
	agent *agent.Agent
	// up is closed at the first connect; isUp tracks the connection.
	up     chan struct{}
	upOnce sync.Once
	isUp   atomic.Bool
}

// newMember writes an agent's fixtures and makes the agent.
func (f *Fleet) newMember(i int) (*member, error) {
	dir := filepath.Join(f.cfg.Dir, fmt.Sprintf("a%05d", i))
	root := filepath.Join(dir, "root")
	// The agent's directory is private like its state; only the fixture
	// tree under root/ is 0755 and 0644, as the files it imitates are.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fleet agent dir: %w", err)
	}
	if err := WriteFixtures(root, f.cfg.Prefix, i); err != nil {
		return nil, err
	}
	name, env, tags := Attributes(f.cfg.Prefix, i)
	c := agent.DefaultConfig()
	c.Server = f.cfg.Server
	c.CA = f.cfg.CA
	c.EnrollmentToken = f.cfg.EnrollmentToken
	c.StateDir = filepath.Join(dir, "state")
	// Parsed once by New and passed as options; the configuration only
	// has to name them.
	c.Keyring, c.KeyringData = f.cfg.Keyring, f.cfg.KeyringData
	c.ACL, c.ACLData = f.cfg.ACL, f.cfg.ACLData
	c.Tags = tags
	c.Heartbeat = f.cfg.Heartbeat
	c.ModuleTimeout = f.cfg.ModuleTimeout
	c.MaxProcs = 1
	c.Name = name
	m := &member{index: i, up: make(chan struct{})}
	alog := slog.New(levelHandler{min: f.cfg.AgentLogLevel, Handler: f.log.Handler()}).With("agent", name)
	a, err := agent.NewWithOptions(c, alog, f.dialer(m), agent.Options{
		Keyring:     f.keyring,
		ACL:         &f.acl,
		HTTPClient:  f.http,
		RunModule:   chrootRunner(root),
		Workers:     1,
		QueueSize:   16,
		Environment: &env,
		Simulated:   true,
		MemoryState: !f.cfg.DiskState,
	})
	if err != nil {
		return nil, err
	}
	m.agent = a
	f.mu.Lock()
	f.ids[i] = a.ID()
	f.mu.Unlock()
	return m, nil
}

// dialer connects a member to the relay its enrollment named (NATS or
// RabbitMQ, by the URL's scheme, as a real agent does) and counts what goes
// through.
func (f *Fleet) dialer(m *member) relay.Dialer {
	dial := dialer.New(nil)
	return func(ctx context.Context, agentID string, c relay.Credentials) (relay.Conn, error) {
		conn, err := dial(ctx, agentID, c)
		if err != nil {
			return nil, err
		}
		cc := &countingConn{Conn: conn, f: f, m: m}
		conn.OnConnect(func() {
			if m.isUp.CompareAndSwap(false, true) {
				if f.connected.Add(1) == int64(f.cfg.N) {
					f.readyOnce.Do(func() { close(f.ready) })
				}
			}
			m.upOnce.Do(func() { close(m.up) })
		})
		return cc, nil
	}
}

// countingConn is a relay.Conn that counts commands and results.
type countingConn struct {
	relay.Conn
	f      *Fleet
	m      *member
	closed atomic.Bool
}

func (c *countingConn) Publish(ctx context.Context, kind string, data []byte) error {
	err := c.Conn.Publish(ctx, kind, data)
	if err == nil && kind == relay.KindResult {
		c.f.results.Add(1)
	}
	return err
}

// Notify passes a plain heartbeat to the relay's Notify (relay.Notifier),
// or publishes it where the relay has none.
func (c *countingConn) Notify(kind string, data []byte) error {
	if n, ok := c.Conn.(relay.Notifier); ok {
		return n.Notify(kind, data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Conn.Publish(ctx, kind, data)
}

func (c *countingConn) Subscribe(ctx context.Context, h func(kind string, data []byte)) error {
	return c.Conn.Subscribe(ctx, func(kind string, data []byte) {
		if kind == relay.KindCommand {
			c.f.commands.Add(1)
		}
		h(kind, data)
	})
}

func (c *countingConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.m.isUp.CompareAndSwap(true, false) {
		c.f.connected.Add(-1)
	}
	return c.Conn.Close()
}

// Mode is the mode simulated agents report.
const Mode = action.ModeFleetSim

// levelHandler drops records under min.
type levelHandler struct {
	min slog.Level
	slog.Handler
}

func (h levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelHandler{min: h.min, Handler: h.Handler.WithAttrs(attrs)}
}

func (h levelHandler) WithGroup(name string) slog.Handler {
	return levelHandler{min: h.min, Handler: h.Handler.WithGroup(name)}
}
