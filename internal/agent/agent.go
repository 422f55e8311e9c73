package agent

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/migplatform/mig/internal/acl"
	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/version"
)

// Workers is how many commands an agent runs at once.
const Workers = 4

// Timing of the agent's retries.
const (
	// ResendInterval is how often unacknowledged results are sent again,
	// backing off up to maxResend while no acknowledgement comes.
	ResendInterval = 10 * time.Second
	maxResend      = 5 * time.Minute
	enrollMin      = time.Second
	enrollMax      = 5 * time.Minute
	publishTimeout = 30 * time.Second
	pruneInterval  = time.Hour
	// msgQueue bounds the relay messages waiting for the dispatcher; more
	// are dropped (the server sends commands again on the next hello).
	msgQueue = 1024
)

// ErrRunning is returned by Run when the agent is already running.
var ErrRunning = errors.New("agent is already running")

// Agent is one running MIG agent.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	dial    relay.Dialer
	keyring *sign.Keyring
	acl     acl.ACL
	key     ed25519.PrivateKey
	id      string
	http    *http.Client
	caPEM   []byte
	ident   string
	init    string
	started time.Time

	journal *journal
	outbox  *outbox
	inbox   *inbox
	resumed []inboxItem

	// What Options may change: how modules run, how many workers, the
	// environment reported instead of the host's, and the mode.
	runParsed ParsedRunner // when set, used instead of runModule
	runModule ModuleRunner
	workers   int
	env       *action.Environment
	mode      string

	// Retry timing; tests shorten it.
	enrollMin, enrollMax time.Duration
	resendMin, resendMax time.Duration
	// reenrollAfter is how long the relay may stay unreachable (no
	// successful connect or publish) before the agent assumes its
	// credentials are refused and enrolls again.
	reenrollAfter time.Duration

	// noHealth is set when the state is kept in memory: no health.json.
	noHealth bool
	healthMu sync.Mutex

	running atomic.Bool
	lastOK  atomic.Int64 // unix nanoseconds of the last connect or publish

	mu       sync.Mutex
	conn     relay.Conn
	inflight map[uint64]bool

	msgs      chan relayMsg
	jobs      chan job
	connected chan struct{}
	acked     chan struct{}
}

// relayMsg is one message from the agent's relay inbox.
type relayMsg struct {
	kind string
	data []byte
}

// ModuleRunner runs one operation of a module and returns its result. Its
// errors wrap module.ErrTimeout when ctx ended first, and are taken as a
// module crash otherwise. module.RunChild in a child process is the default;
// module.RunLocal runs in the agent's own process.
type ModuleRunner func(ctx context.Context, name string, params []byte, env module.Env) (action.Result, error)

// ParsedRunner runs one operation of module name whose parameters the agent
// parsed when it checked the command: r is what module.Parse returned for
// them. module.RunParsed runs r in the agent's own process. Its errors are
// taken as ModuleRunner's.
type ParsedRunner func(ctx context.Context, name string, r module.Runner, env module.Env) (action.Result, error)

// Options are choices about how an agent runs that no configuration file
// makes: the fleet simulator (internal/fleet) uses them to run thousands of
// agents in one process. The zero value is a normal agent.
type Options struct {
	// Keyring and ACL, when set, are used instead of parsing the ones the
	// configuration names, so that many agents share one parsed copy. Both
	// are safe for concurrent use.
	Keyring *sign.Keyring
	ACL     *acl.ACL
	// HTTPClient, when set, makes enrollment requests, so that many agents
	// share one connection pool. It must trust the server's certificate.
	HTTPClient *http.Client
	// RunModule runs operations instead of a child process of
	// Config.ModuleExe.
	RunModule ModuleRunner
	// RunParsed, when set, runs operations instead of RunModule or a child
	// process, with the parameters the checks parsed (module.RunParsed
	// runs them in process), so that they are not parsed a second time.
	RunParsed ParsedRunner
	// Workers is how many commands the agent runs at once (default
	// Workers).
	Workers int
	// QueueSize bounds the relay messages and the commands waiting to be
	// handled (defaults 1024 and 256). A small queue saves memory when one
	// process runs many agents; the server sends dropped commands again.
	QueueSize int
	// Environment, when set, is reported (and matched by targets) instead
	// of what the agent finds on its host; its Modules are always the
	// registered modules, and QueueLoc starts with its OS.
	Environment *action.Environment
	// Simulated reports the agent in mode action.ModeFleetSim.
	Simulated bool
	// MemoryState keeps the inbox, the outbox and the replay journal in
	// memory instead of StateDir (the identity and the credentials stay
	// on disk). It gives up the agent's durability: commands and results
	// do not survive a restart, and an action may run again after one. A
	// fleet simulator uses it because thousands of agents in one process
	// would otherwise spend most of their CPU on state-file system calls;
	// a real agent never does.
	MemoryState bool
}

// New validates cfg, loads the keyring and the ACL, makes or loads the
// agent's identity and opens its state directory. dial connects to the
// relay (natsrelay.Dial in production).
func New(cfg Config, logger *slog.Logger, dial relay.Dialer) (*Agent, error) {
	return NewWithOptions(cfg, logger, dial, Options{})
}

// NewWithOptions is New with options that change how the agent runs.
func NewWithOptions(cfg Config, logger *slog.Logger, dial relay.Dialer, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		return nil, fmt.Errorf("%w: logger is nil", ErrConfig)
	}
	if dial == nil {
		return nil, fmt.Errorf("%w: relay dialer is nil", ErrConfig)
	}
	if opts.Workers < 0 || opts.QueueSize < 0 {
		return nil, fmt.Errorf("%w: workers %d or queue size %d is negative", ErrConfig, opts.Workers, opts.QueueSize)
	}
	log := logger.With("component", "agent")
	a := &Agent{
		cfg:           cfg,
		log:           log,
		dial:          dial,
		started:       time.Now(),
		enrollMin:     enrollMin,
		enrollMax:     enrollMax,
		resendMin:     ResendInterval,
		resendMax:     maxResend,
		reenrollAfter: max(3*cfg.Heartbeat, time.Second),
		inflight:      map[uint64]bool{},
		connected:     make(chan struct{}, 1),
		acked:         make(chan struct{}, 1),
		runParsed:     opts.RunParsed,
		workers:       cmp.Or(opts.Workers, Workers),
		mode:          cfg.Mode,
		noHealth:      opts.MemoryState,
	}
	a.msgs = make(chan relayMsg, cmp.Or(opts.QueueSize, msgQueue))
	if opts.Simulated {
		a.mode = action.ModeFleetSim
	}
	if opts.Environment != nil {
		env := *opts.Environment
		env.Addresses = slices.Clone(env.Addresses)
		a.env = &env
	} else {
		a.ident, a.init = hostIdent(), initSystem()
	}
	if opts.RunParsed == nil {
		a.runModule = opts.RunModule
		if a.runModule == nil {
			// A child process parses the parameters it is sent: the
			// Runner the checks built cannot cross into it.
			exe := cfg.ModuleExe
			a.runModule = func(ctx context.Context, name string, params []byte, env module.Env) (action.Result, error) {
				return module.RunChild(ctx, exe, name, params, env)
			}
		}
	}
	var err error
	if opts.Keyring != nil {
		a.keyring = opts.Keyring
	} else {
		kr, src, err := cfg.keyringBytes()
		if err != nil {
			return nil, err
		}
		if a.keyring, err = sign.ReadKeyring(bytes.NewReader(kr)); err != nil {
			return nil, fmt.Errorf("%w: keyring %s: %w", ErrConfig, src, err)
		}
	}
	if opts.ACL != nil {
		a.acl = *opts.ACL
	} else {
		aclData, src, err := cfg.aclBytes()
		if err != nil {
			return nil, err
		}
		if a.acl, err = acl.Parse(aclData); err != nil {
			return nil, fmt.Errorf("%w: acl %s: %w", ErrConfig, src, err)
		}
	}
	if cfg.CA != "" {
		if err := checkTrustFile(cfg.CA, "ca"); err != nil {
			return nil, err
		}
		if a.caPEM, err = readFileLimited(cfg.CA, MaxConfigSize); err != nil {
			return nil, fmt.Errorf("%w: ca: %v", ErrConfig, err)
		}
	}
	if opts.HTTPClient != nil {
		a.http = opts.HTTPClient
	} else if a.http, err = httpClient(a.caPEM); err != nil {
		return nil, fmt.Errorf("%w (ca %s)", err, cfg.CA)
	}
	fresh, err := stateDirFresh(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if err := checkStatePerms(cfg.StateDir, log); err != nil {
		return nil, err
	}
	if a.key, err = loadIdentity(cfg.StateDir, log); err != nil {
		return nil, err
	}
	a.id = action.AgentID(a.key.Public().(ed25519.PublicKey))
	if opts.MemoryState {
		a.journal, a.outbox, a.inbox = newMemoryJournal(), newMemoryOutbox(), newMemoryInbox()
	} else {
		if a.journal, err = openJournal(cfg.StateDir, fresh, a.started, log); err != nil {
			return nil, err
		}
		if err := a.journal.prune(time.Now()); err != nil {
			return nil, err
		}
		if a.outbox, err = openOutbox(cfg.StateDir, log); err != nil {
			return nil, err
		}
		if a.inbox, a.resumed, err = openInbox(cfg.StateDir, log); err != nil {
			return nil, err
		}
	}
	a.jobs = make(chan job, cmp.Or(opts.QueueSize, maxInbox)+len(a.resumed))
	return a, nil
}

// ID returns the agent's ID.
func (a *Agent) ID() string { return a.id }

// Run connects to the relay (enrolling when it has no credentials), says
// hello, sends heartbeats, and answers commands until ctx ends. Everything it
// starts is stopped and waited for before it returns. It returns nil when ctx
// ends.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer a.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	a.log.Info("agent starting", "agentid", a.id, "name", a.cfg.Name, "version", version.Version,
		"statedir", a.cfg.StateDir, "modules", module.Names(), "resumed", len(a.resumed))
	for _, it := range a.resumed {
		a.jobs <- job{item: it, resumed: true}
	}
	a.resumed = nil
	a.writeHealth(false)
	for range a.workers {
		wg.Go(func() { a.work(ctx) })
	}
	wg.Go(func() { a.dispatch(ctx) })
	wg.Go(func() { a.keepalive(ctx) })
	a.connectLoop(ctx)
	a.log.Info("agent stopping", "agentid", a.id)
	return nil
}

// work runs commands from the queue until ctx ends.
func (a *Agent) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.jobs:
			a.handle(ctx, j)
		}
	}
}

// receive is the relay callback: it never blocks.
func (a *Agent) receive(kind string, data []byte) {
	m := relayMsg{kind: kind, data: bytes.Clone(data)}
	select {
	case a.msgs <- m:
	default:
		a.log.Warn("dropping a relay message: queue full", "kind", kind, "queue", cap(a.msgs))
	}
}

// dispatch writes received commands to the inbox and queues them, and
// applies acknowledgements, until ctx ends.
func (a *Agent) dispatch(ctx context.Context) {
	for {
		var m relayMsg
		select {
		case <-ctx.Done():
			return
		case m = <-a.msgs:
		}
		switch m.kind {
		case relay.KindAck:
			ack, err := action.DecodeAck(m.data)
			if err != nil {
				a.log.Warn("dropping an ack that does not decode", "err", err)
				continue
			}
			n, err := a.outbox.ack(ack.CommandIDs)
			if err != nil {
				a.log.Error("cannot remove acknowledged results", "err", err)
			}
			if n > 0 {
				a.log.Debug("results acknowledged", "count", n)
				notify(a.acked)
			}
		case relay.KindCommand:
			if n := a.outbox.len(); n >= maxOutbox {
				a.log.Warn("dropping a command: too many unacknowledged results", "outbox", n)
				continue
			}
			it, ok, err := a.inbox.add(m.data)
			switch {
			case err != nil:
				a.log.Error("dropping a command: cannot write it to the inbox", "err", err)
				continue
			case !ok:
				a.log.Warn("dropping a command: inbox full", "inbox", maxInbox)
				continue
			}
			select {
			case a.jobs <- job{item: it}:
			case <-ctx.Done():
				return
			}
		default:
			a.log.Warn("dropping a relay message of unknown kind", "kind", m.kind)
		}
	}
}

// keepalive says hello and resends kept results after every connect, sends
// heartbeats, resends unacknowledged results with backoff and prunes the
// journal, until ctx ends.
func (a *Agent) keepalive(ctx context.Context) {
	hb := time.NewTicker(a.cfg.Heartbeat)
	defer hb.Stop()
	prune := time.NewTicker(pruneInterval)
	defer prune.Stop()
	rb := newBackoff(a.resendMin, a.resendMax)
	resend := time.NewTimer(a.resendMin)
	defer resend.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.connected:
			a.heartbeat(ctx, true)
			a.resendAll(ctx)
			rb.reset()
			resend.Reset(a.resendMin)
		case <-hb.C:
			a.heartbeat(ctx, false)
		case <-a.acked:
			rb.reset()
			resend.Reset(a.resendMin)
		case <-resend.C:
			wait := a.resendMin
			if a.outbox.len() > 0 {
				a.resendAll(ctx)
				wait = rb.next()
			} else {
				rb.reset()
			}
			resend.Reset(wait)
		case <-prune.C:
			if err := a.journal.prune(time.Now()); err != nil {
				a.log.Error("cannot prune the journal", "err", err)
			}
		}
	}
}

// heartbeat publishes a heartbeat, a hello after a connect, and records in
// the health file whether it went out.
func (a *Agent) heartbeat(ctx context.Context, hello bool) {
	a.writeHealth(a.sendHeartbeat(ctx, hello))
}

// sendHeartbeat publishes a heartbeat and reports whether it went out.
func (a *Agent) sendHeartbeat(ctx context.Context, hello bool) bool {
	data, err := action.Marshal(action.HeartbeatMessage{V: action.ProtocolVersion, Hello: hello, Agent: a.self(time.Now())})
	if err != nil {
		a.log.Error("cannot encode a heartbeat", "err", err)
		return false
	}
	if !hello {
		// A plain heartbeat needs no confirmation: the next one follows.
		a.mu.Lock()
		n, ok := a.conn.(relay.Notifier)
		a.mu.Unlock()
		if ok {
			if err := n.Notify(relay.KindHeartbeat, data); err != nil {
				a.log.Debug("cannot publish", "kind", relay.KindHeartbeat, "err", err)
				return false
			}
			// Connected and authenticated: the relay takes our messages.
			a.lastOK.Store(time.Now().UnixNano())
			return true
		}
	}
	return a.publish(ctx, relay.KindHeartbeat, data)
}

// resendAll publishes every kept result.
func (a *Agent) resendAll(ctx context.Context) {
	ids := a.outbox.list()
	if len(ids) > 0 {
		a.log.Debug("sending unacknowledged results", "count", len(ids))
	}
	for _, id := range ids {
		data, err := a.outbox.get(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // acknowledged meanwhile
		}
		if err != nil {
			a.log.Error("cannot read a kept result", "command", id, "err", err)
			continue
		}
		if !a.publish(ctx, relay.KindResult, data) {
			return
		}
	}
}

// publish sends a message if connected and reports whether it went out.
func (a *Agent) publish(ctx context.Context, kind string, data []byte) bool {
	a.mu.Lock()
	c := a.conn
	a.mu.Unlock()
	if c == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if err := c.Publish(ctx, kind, data); err != nil {
		a.log.Debug("cannot publish", "kind", kind, "err", err)
		return false
	}
	a.lastOK.Store(time.Now().UnixNano())
	return true
}

// connectLoop gets credentials, dials the relay and serves the connection,
// again and again, until ctx ends.
func (a *Agent) connectLoop(ctx context.Context) {
	b := newBackoff(a.enrollMin, a.enrollMax)
	for ctx.Err() == nil {
		creds, err := a.credentials(ctx)
		if err != nil {
			return
		}
		conn, err := a.dial(ctx, a.id, creds)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := b.next()
			a.log.Warn("relay refused the credentials; enrolling again", "relay", creds.URL, "retry_in", wait, "err", err)
			a.forgetCredentials()
			sleepCtx(ctx, wait)
			continue
		}
		b.reset()
		a.serve(ctx, conn)
		if err := conn.Close(); err != nil {
			a.log.Warn("closing the relay connection", "err", err)
		}
	}
}

// serve uses one relay connection until ctx ends, the connection is lost for
// good, or the relay stays unreachable long enough that the agent enrolls
// again (and gets new credentials, used by the next connection).
func (a *Agent) serve(ctx context.Context, conn relay.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		a.mu.Lock()
		a.conn = nil
		a.mu.Unlock()
		a.writeHealth(false)
	}()
	a.mu.Lock()
	a.conn = conn
	a.mu.Unlock()
	a.lastOK.Store(time.Now().UnixNano())
	conn.OnConnect(func() {
		a.lastOK.Store(time.Now().UnixNano())
		notify(a.connected)
	})
	subErr := make(chan error, 1)
	wg.Go(func() { subErr <- conn.Subscribe(ctx, a.receive) })

	check := time.NewTicker(min(a.cfg.Heartbeat, a.reenrollAfter/3))
	defer check.Stop()
	b := newBackoff(a.enrollMin, a.enrollMax)
	nextTry := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-subErr:
			if ctx.Err() == nil {
				a.log.Warn("relay connection lost; connecting again", "err", err)
				sleepCtx(ctx, b.next())
			}
			return
		case <-check.C:
		}
		down := time.Since(time.Unix(0, a.lastOK.Load()))
		if down < a.reenrollAfter || time.Now().Before(nextTry) {
			continue
		}
		a.log.Warn("relay unreachable or refusing the credentials; enrolling again", "down_for", down.Round(time.Second).String())
		if _, err := a.enroll(ctx); err != nil {
			wait := b.next()
			nextTry = time.Now().Add(wait)
			a.log.Warn("cannot enroll; keeping the current connection", "retry_in", wait, "err", err)
			continue
		}
		a.log.Info("enrolled again; reconnecting with the new credentials", "agentid", a.id)
		return
	}
}

// notify signals c without blocking.
func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// self returns the agent as it describes itself in heartbeats and evaluates
// targets against.
func (a *Agent) self(now time.Time) action.Agent {
	var env action.Environment
	if a.env != nil {
		env = *a.env
	} else {
		env = action.Environment{
			Init:      a.init,
			Ident:     a.ident,
			OS:        runtime.GOOS,
			Arch:      runtime.GOARCH,
			Addresses: hostAddresses(),
		}
	}
	env.Modules = module.Names()
	return action.Agent{
		ID:            a.id,
		Name:          a.cfg.Name,
		QueueLoc:      env.OS + "." + a.id,
		Mode:          a.mode,
		Version:       version.Version,
		PID:           os.Getpid(),
		StartTime:     a.started,
		HeartbeatTime: now,
		Status:        action.AgentOnline,
		Environment:   env,
		Tags:          a.cfg.Tags,
	}
}
