// Package scheduler moves work between the store and the relay: it fans an
// action out into one command per targeted agent (under a dispatch lease in
// the store, so that a dispatch a dead server left halfway is finished by
// another; see Dispatch), ingests results and heartbeats in batches,
// acknowledges results to agents once they are stored, resends pending
// commands to agents that come back, expires commands whose action expired,
// and ages agents from online to idle to offline.
//
// Every path is batched: a thousand results cost one store transaction and one
// relay flush, never a database round trip each.
package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/store"
)

// Config tunes the scheduler. Zero values take the defaults.
type Config struct {
	// BatchSize bounds the rows in one store write and the messages in one
	// relay flush (default 1000).
	BatchSize int
	// BatchDelay is how long a partial batch of results waits for more
	// before it is written (default 20ms).
	BatchDelay time.Duration
	// HeartbeatDelay is the same for heartbeats (default 1s): an idle fleet
	// of 10,000 agents sends ~170 a second, and one write a second costs
	// the store less than several small ones.
	HeartbeatDelay time.Duration
	// OnlineWindow: an agent whose last heartbeat is older is idle
	// (default 3m).
	OnlineWindow time.Duration
	// IdleWindow: an agent whose last heartbeat is older is offline
	// (default 1h).
	IdleWindow time.Duration
	// SweepEvery is how often agents are aged and commands expired
	// (default 5s).
	SweepEvery time.Duration
	// QueueSize bounds the results and heartbeats waiting to be written
	// (default 50,000). When full, the relay handler waits; an agent keeps a
	// result that was not acknowledged and sends it again.
	QueueSize int
	// DispatchLease is how long a server fanning an action out may go
	// without renewing its lease before another server's sweep takes the
	// dispatch over (default 15s); it is renewed every third of that and
	// with every batch of commands. An action nobody started dispatching is
	// taken over once it is that old.
	DispatchLease time.Duration
	// Owner names this scheduler in dispatch leases (default: host name,
	// process ID and a random part). Every lease adds a random part of
	// its own.
	Owner string
}

func (c *Config) fill() {
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchDelay <= 0 {
		c.BatchDelay = 20 * time.Millisecond
	}
	if c.HeartbeatDelay <= 0 {
		c.HeartbeatDelay = time.Second
	}
	if c.OnlineWindow <= 0 {
		c.OnlineWindow = 3 * time.Minute
	}
	if c.IdleWindow <= 0 {
		c.IdleWindow = time.Hour
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = 5 * time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 50000
	}
	if c.DispatchLease <= 0 {
		c.DispatchLease = 15 * time.Second
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		id, _ := NewID()
		c.Owner = fmt.Sprintf("%s/%d/%x", host, os.Getpid(), id)
	}
}

// Store is what the scheduler reads and writes: the store.Store methods it
// calls, and nothing else (store.Store satisfies it).
type Store interface {
	// Dispatch (dispatch.go).
	AcquireDispatch(ctx context.Context, l store.DispatchLease, now time.Time) error
	RenewDispatch(ctx context.Context, l store.DispatchLease) error
	DispatchCommands(ctx context.Context, l store.DispatchLease, cmds []action.Command) error
	FinishDispatch(ctx context.Context, l store.DispatchLease, status string, finished time.Time) error
	StalledDispatches(ctx context.Context, now, unclaimedBefore time.Time) ([]uint64, error)
	AgentRefs(ctx context.Context, q store.AgentQuery) ([]store.AgentRef, error)
	Commands(ctx context.Context, q store.CommandQuery) ([]action.Command, error)

	// Actions' statuses.
	Action(ctx context.Context, id uint64) (*action.Action, error)
	SetActionStatus(ctx context.Context, id uint64, status string, finished time.Time) error

	// Results, heartbeats, redelivery and the sweep.
	StoreResults(ctx context.Context, results []action.ResultMessage) (ack []uint64, err error)
	UpsertAgents(ctx context.Context, agents []action.Agent) error
	PendingCommands(ctx context.Context, agentID string, now time.Time) ([]action.Command, error)
	MarkAgents(ctx context.Context, onlineSince, idleSince time.Time) error
	ExpireCommands(ctx context.Context, now time.Time) ([]uint64, error)

	// The audit log: dispatches resumed from another server.
	AppendAudit(ctx context.Context, recs ...audit.Record) ([]audit.Entry, error)
}

var _ Store = store.Store(nil)

// Scheduler is the server's dispatcher. Create it with New, then call Run.
type Scheduler struct {
	cfg        Config
	store      Store
	hub        relay.Hub
	log        *slog.Logger
	now        func() time.Time
	results    chan inResult
	heartbeats chan action.HeartbeatMessage

	mu       sync.Mutex
	finished map[uint64]bool // actions known to be finished, to skip counter reads
}

// New returns a scheduler over a store and a relay hub.
func New(cfg Config, st Store, hub relay.Hub, logger *slog.Logger) *Scheduler {
	cfg.fill()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{
		cfg:        cfg,
		store:      st,
		hub:        hub,
		log:        logger.With("component", "scheduler"),
		now:        time.Now,
		results:    make(chan inResult, cfg.QueueSize),
		heartbeats: make(chan action.HeartbeatMessage, cfg.QueueSize),
		finished:   map[uint64]bool{},
	}
}

// Run receives from the relay and writes to the store until ctx ends. It
// returns once everything it started has stopped; results already received
// are written before it returns.
func (s *Scheduler) Run(ctx context.Context) error {
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.hub.Receive(recvCtx, s.handle); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, relay.ErrClosed) {
			select {
			case errc <- fmt.Errorf("receive from relay: %w", err):
			default:
			}
		}
	}()
	// The writers stop after the receiver, so that what was received is
	// written: they run on a context that outlives ctx by the drain.
	drainCtx, stopDrain := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDrain()
	var writers sync.WaitGroup
	writers.Add(3)
	go func() { defer writers.Done(); s.resultLoop(drainCtx, ctx.Done()) }()
	go func() { defer writers.Done(); s.heartbeatLoop(drainCtx, ctx.Done()) }()
	go func() { defer writers.Done(); s.sweepLoop(ctx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		stopRecv()
	}
	wg.Wait()
	writers.Wait()
	return err
}

// inResult is a received result and what releases it in the relay.
type inResult struct {
	msg     action.ResultMessage
	release func() // nil if the relay keeps nothing
}

// handle is called by the relay for every inbound message.
func (s *Scheduler) handle(m relay.Inbound) {
	switch m.Kind {
	case relay.KindResult:
		r, err := action.DecodeResult(m.Data)
		if err != nil {
			s.log.Warn("bad result message", "agent", m.AgentID, "err", err)
			return
		}
		if r.AgentID != m.AgentID {
			s.log.Warn("result names another agent", "agent", m.AgentID, "claimed", r.AgentID)
			return
		}
		// A durable relay keeps the message until the result is stored,
		// so that another server gets it if this one dies first.
		var release func()
		if m.Defer != nil {
			release = m.Defer()
		}
		s.results <- inResult{msg: *r, release: release}
	case relay.KindHeartbeat:
		h, err := action.DecodeHeartbeat(m.Data)
		if err != nil {
			s.log.Warn("bad heartbeat message", "agent", m.AgentID, "err", err)
			return
		}
		if h.Agent.ID != m.AgentID {
			s.log.Warn("heartbeat names another agent", "agent", m.AgentID, "claimed", h.Agent.ID)
			return
		}
		select {
		case s.heartbeats <- *h:
		default:
			// Heartbeats are periodic: dropping one under overload is safe,
			// except a hello, which triggers redelivery; wait for those.
			if h.Hello {
				s.heartbeats <- *h
			}
		}
	default:
		s.log.Warn("unexpected message kind", "agent", m.AgentID, "kind", m.Kind)
	}
}

// collect reads up to max items from ch, waiting at most delay after the
// first one. It returns nil when stop is closed and ch is empty.
func collect[T any](ch chan T, max int, delay time.Duration, stop <-chan struct{}) []T {
	var batch []T
	select {
	case v := <-ch:
		batch = append(batch, v)
	case <-stop:
		// Drain what is already queued.
		for len(batch) < max {
			select {
			case v := <-ch:
				batch = append(batch, v)
			default:
				return batch
			}
		}
		return batch
	}
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		case <-timer.C:
			return batch
		}
	}
	return batch
}

func (s *Scheduler) resultLoop(ctx context.Context, stop <-chan struct{}) {
	for {
		batch := collect(s.results, s.cfg.BatchSize, s.cfg.BatchDelay, stop)
		if len(batch) == 0 {
			select {
			case <-stop:
				return
			default:
				continue
			}
		}
		msgs := make([]action.ResultMessage, len(batch))
		for i, r := range batch {
			msgs[i] = r.msg
		}
		s.storeResults(ctx, msgs)
		// Released even when storing failed: the agent sends again what it
		// was not acknowledged, and a message held forever would block the
		// relay's delivery window.
		for _, r := range batch {
			if r.release != nil {
				r.release()
			}
		}
	}
}

// storeResults writes a batch of results and acknowledges them to agents.
// On a store error nothing is acknowledged: agents send the results again.
func (s *Scheduler) storeResults(ctx context.Context, batch []action.ResultMessage) {
	acked, err := s.store.StoreResults(ctx, batch)
	if err != nil {
		s.log.Error("store results", "count", len(batch), "err", err)
		return
	}
	agentOf := make(map[uint64]string, len(batch))
	actions := map[uint64]bool{}
	for _, r := range batch {
		agentOf[r.CommandID] = r.AgentID
		actions[r.ActionID] = true
	}
	perAgent := map[string][]uint64{}
	for _, id := range acked {
		if a, ok := agentOf[id]; ok {
			perAgent[a] = append(perAgent[a], id)
		}
	}
	msgs := make([]relay.Outbound, 0, len(perAgent))
	for agentID, ids := range perAgent {
		data, err := action.Marshal(action.AckMessage{V: action.ProtocolVersion, CommandIDs: ids})
		if err != nil {
			s.log.Error("encode ack", "agent", agentID, "err", err)
			continue
		}
		msgs = append(msgs, relay.Outbound{AgentID: agentID, Kind: relay.KindAck, Data: data})
	}
	if err := s.sendBatched(ctx, msgs); err != nil {
		s.log.Warn("send acks", "count", len(msgs), "err", err)
	}
	for id := range actions {
		s.checkFinished(ctx, id)
	}
}

// checkFinished marks an action completed once every command is terminal.
func (s *Scheduler) checkFinished(ctx context.Context, id uint64) {
	s.mu.Lock()
	done := s.finished[id]
	s.mu.Unlock()
	if done {
		return
	}
	a, err := s.store.Action(ctx, id)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("read action counters", "action", id, "err", err)
		}
		return
	}
	// An action still being dispatched (pending) has not created all its
	// commands yet: the commands it has may all be done without the action
	// being done. Dispatch checks again once it has sent them all.
	if a.Status == action.StatusPending || a.Counters.Sent == 0 || a.Counters.Done < a.Counters.Sent {
		return
	}
	status := action.StatusCompleted
	if a.Counters.Expired > 0 {
		status = action.StatusExpired
	}
	if err := s.store.SetActionStatus(ctx, id, status, s.now()); err != nil {
		s.log.Warn("set action status", "action", id, "err", err)
		return
	}
	s.mu.Lock()
	s.finished[id] = true
	s.mu.Unlock()
	s.log.Info("action finished", "action", id, "status", status, "sent", a.Counters.Sent,
		"success", a.Counters.Success, "failed", a.Counters.Failed, "timeout", a.Counters.TimeOut, "expired", a.Counters.Expired)
}

func (s *Scheduler) heartbeatLoop(ctx context.Context, stop <-chan struct{}) {
	for {
		batch := collect(s.heartbeats, s.cfg.BatchSize, s.cfg.HeartbeatDelay, stop)
		if len(batch) == 0 {
			select {
			case <-stop:
				return
			default:
				continue
			}
		}
		now := s.now().UTC()
		// Keep the newest heartbeat of each agent in the batch.
		latest := make(map[string]int, len(batch))
		agents := make([]action.Agent, 0, len(batch))
		var hellos []string
		for _, h := range batch {
			a := h.Agent
			a.HeartbeatTime = now
			a.Status = action.AgentOnline
			if i, ok := latest[a.ID]; ok {
				agents[i] = a
			} else {
				latest[a.ID] = len(agents)
				agents = append(agents, a)
			}
			if h.Hello {
				hellos = append(hellos, a.ID)
			}
		}
		if err := s.store.UpsertAgents(ctx, agents); err != nil {
			s.log.Error("store heartbeats", "count", len(agents), "err", err)
		}
		for _, id := range hellos {
			s.redeliver(ctx, id)
		}
	}
}

// redeliver sends an agent the commands it has not answered whose action is
// still valid. The agent ignores the ones it already ran.
func (s *Scheduler) redeliver(ctx context.Context, agentID string) {
	cmds, err := s.store.PendingCommands(ctx, agentID, s.now())
	if err != nil {
		s.log.Warn("read pending commands", "agent", agentID, "err", err)
		return
	}
	if len(cmds) == 0 {
		return
	}
	msgs := make([]relay.Outbound, 0, len(cmds))
	for _, c := range cmds {
		data, err := encodeCommand(c)
		if err != nil {
			s.log.Error("encode command", "command", c.ID, "err", err)
			continue
		}
		msgs = append(msgs, relay.Outbound{AgentID: agentID, Kind: relay.KindCommand, Data: data, Expires: c.Action.ExpireAfter})
	}
	if err := s.sendBatched(ctx, msgs); err != nil {
		s.log.Warn("redeliver commands", "agent", agentID, "err", err)
		return
	}
	s.log.Info("redelivered pending commands", "agent", agentID, "count", len(msgs))
}

func (s *Scheduler) sweepLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}

// Sweep ages agents, expires commands and finishes stalled dispatches once.
// Run calls it periodically.
func (s *Scheduler) Sweep(ctx context.Context) {
	now := s.now()
	if err := s.store.MarkAgents(ctx, now.Add(-s.cfg.OnlineWindow), now.Add(-s.cfg.IdleWindow)); err != nil {
		s.log.Warn("mark agents", "err", err)
	}
	ids, err := s.store.ExpireCommands(ctx, now)
	if err != nil {
		s.log.Warn("expire commands", "err", err)
	}
	for _, id := range ids {
		s.checkFinished(ctx, id)
	}
	s.resumeStalled(ctx)
}

func (s *Scheduler) sendBatched(ctx context.Context, msgs []relay.Outbound) error {
	for len(msgs) > 0 {
		n := min(len(msgs), s.cfg.BatchSize)
		if err := s.hub.Send(ctx, msgs[:n]); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

func encodeCommand(c action.Command) ([]byte, error) {
	return action.Marshal(action.CommandMessage{V: action.ProtocolVersion, Command: c})
}

// NewID returns a random identifier in [1, 2^53), so that it survives JSON
// numbers in any language.
func NewID() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("random id: %w", err)
		}
		if id := binary.LittleEndian.Uint64(b[:]) & (1<<53 - 1); id != 0 {
			return id, nil
		}
	}
}
