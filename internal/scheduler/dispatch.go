package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/audit"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/target"
)

// dispatchAhead bounds the batches stored but not yet sent of one dispatch
// (8 batches of 1,000 commands of 1.5 KB: 12 MB).
const dispatchAhead = 8

// errNoLease is the cause of a dispatch's context when its lease was lost.
var errNoLease = errors.New("dispatch lease lost")

// Dispatch creates one command per agent matching the action's target and
// sends them. The action must already be stored, in status pending. It
// returns the number of commands created. When another server holds the
// action's dispatch lease, or the action is no longer pending, it does
// nothing and returns 0.
//
// Dispatch holds the action's dispatch lease in the store from start to end
// and creates every command in a transaction that checks it
// (store.DispatchCommands). Pages of the target are resolved to agent IDs
// and names, turned into commands and messages, stored, then sent, in a
// pipeline: the store writes the next batches while the relay sends one,
// and no command is sent before it is stored.
//
// If a server dies in the middle (or Dispatch fails), the lease expires and
// the sweep of any server (Sweep, every SweepEvery) takes the dispatch over:
// it sends again the action's commands still unanswered (the server that
// stopped may have stored some it never sent; agents ignore a command they
// already have), resolves the target again, creates commands only for the
// agents that have none for the action, sends them and sets the action in
// flight. The lease makes the two exclusive: once the new holder took it, the
// old one can store nothing more, so no agent gets two commands for one
// action. While it is being dispatched an action stays pending, and a
// pending action is never finished.
func (s *Scheduler) Dispatch(ctx context.Context, a *action.Action) (int, error) {
	l, err := s.acquire(ctx, a.ID)
	if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrNotPending) {
		s.log.Info("action dispatched elsewhere", "action", a.ID, "err", err)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return s.dispatch(ctx, a, l)
}

// acquire takes the dispatch lease of action id under a new owner name.
func (s *Scheduler) acquire(ctx context.Context, id uint64) (store.DispatchLease, error) {
	n, err := NewID()
	if err != nil {
		return store.DispatchLease{}, err
	}
	now := s.now()
	l := store.DispatchLease{ActionID: id, Owner: s.cfg.Owner + "/" + strconv.FormatUint(n, 36),
		Expires: now.Add(s.cfg.DispatchLease)}
	if err := s.store.AcquireDispatch(ctx, l, now); err != nil {
		return l, fmt.Errorf("dispatch action %d: %w", id, err)
	}
	return l, nil
}

// resumeStalled takes over the dispatches whose lease expired and the
// actions nobody started dispatching, one after the other.
func (s *Scheduler) resumeStalled(ctx context.Context) {
	now := s.now()
	ids, err := s.store.StalledDispatches(ctx, now, now.Add(-s.cfg.DispatchLease))
	if err != nil {
		s.log.Warn("find stalled dispatches", "err", err)
		return
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		l, err := s.acquire(ctx, id)
		if errors.Is(err, store.ErrLeaseHeld) || errors.Is(err, store.ErrNotPending) || errors.Is(err, store.ErrNotFound) {
			continue // another server was quicker
		}
		if err != nil {
			s.log.Warn("take over dispatch", "action", id, "err", err)
			continue
		}
		a, err := s.store.Action(ctx, id)
		if err != nil {
			s.log.Warn("take over dispatch: read action", "action", id, "err", err)
			s.giveUp(ctx, l)
			continue
		}
		s.log.Info("taking over a stalled dispatch", "action", id, "name", a.Name, "commands", a.Counters.Sent)
		n, err := s.dispatch(ctx, a, l)
		if err != nil {
			s.log.Warn("resume dispatch", "action", id, "created", n, "err", err)
		}
		s.auditResumed(ctx, a, n, err)
	}
}

// auditResumed records in the audit log that this server took over the
// fan-out of a and created n more commands: a launch the API did not see
// finish (its server stopped in the middle) or never started (an action
// stored without one). A failure to record it is logged.
func (s *Scheduler) auditResumed(ctx context.Context, a *action.Action, n int, derr error) {
	details := map[string]string{"commands": strconv.Itoa(n), "resumed": "true", "owner": s.cfg.Owner}
	if derr != nil {
		details["error"] = derr.Error()
	}
	rec := audit.Record{Time: s.now(), Actor: audit.ActorServer, Kind: audit.KindActionLaunch,
		Object: strconv.FormatUint(a.ID, 10), Details: details}
	if _, err := s.store.AppendAudit(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("recording a resumed dispatch in the audit log failed", "action", a.ID, "err", err)
	}
}

// giveUp lets another dispatcher take l over at once.
func (s *Scheduler) giveUp(ctx context.Context, l store.DispatchLease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	l.Expires = s.now().Add(-time.Nanosecond)
	if err := s.store.RenewDispatch(ctx, l); err != nil && !errors.Is(err, store.ErrLeaseLost) {
		s.log.Warn("give up dispatch lease", "action", l.ActionID, "err", err)
	}
}

// dispatch fans a out under lease l: it creates and sends the commands of
// the agents that have none for a yet, then sets a in flight (or completed
// when it has no command at all).
func (s *Scheduler) dispatch(ctx context.Context, a *action.Action, l store.DispatchLease) (int, error) {
	expr, err := target.Parse(a.Target)
	if err != nil {
		// No agent can ever be targeted: finish the action rather than
		// leave it pending for every sweep to retry.
		if ferr := s.store.FinishDispatch(ctx, l, action.StatusCompleted, s.now()); ferr != nil {
			s.log.Warn("finish action with a bad target", "action", a.ID, "err", ferr)
		}
		return 0, fmt.Errorf("target of action %d: %w", a.ID, err)
	}
	// Commands of a may exist already when a dispatch is taken over; the
	// first dispatch of an action skips the check.
	resume := false
	if cur, err := s.store.Action(ctx, a.ID); err != nil {
		s.giveUp(ctx, l)
		return 0, fmt.Errorf("dispatch action %d: %w", a.ID, err)
	} else if cur.Counters.Sent > 0 {
		resume = true
	}
	enc, err := newCommandEncoder(a)
	if err != nil {
		s.giveUp(ctx, l)
		return 0, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel(nil)
		wg.Wait()
	}()
	wg.Go(func() { s.renewLoop(ctx, l, cancel) })
	if resume {
		// The server that stopped may have stored commands it never sent
		// (the pipeline stores batches ahead): send again the ones still
		// unanswered. An agent ignores a command it already has.
		s.resendUnanswered(ctx, a, enc)
	}

	// The producer resolves, encodes and stores batches; this goroutine
	// sends them. The producer may run dispatchAhead batches ahead, so
	// that most commands are stored before the results of the first ones
	// compete with it for the store (SQLite has a single writer).
	batches := make(chan []relay.Outbound, dispatchAhead)
	var created int
	var perr error
	wg.Go(func() {
		defer close(batches)
		created, perr = s.produce(ctx, a, l, expr, enc, resume, batches)
	})
	for msgs := range batches {
		// A failed send is not fatal: the commands are stored and go out
		// again when each agent says hello.
		if err := s.hub.Send(ctx, msgs); err != nil {
			s.log.Warn("send commands", "action", a.ID, "count", len(msgs), "err", err)
		}
	}
	// batches is closed: the producer has returned.
	if perr == nil {
		perr = context.Cause(ctx)
	}
	if errors.Is(context.Cause(ctx), errNoLease) || errors.Is(perr, store.ErrLeaseLost) {
		s.log.Warn("dispatch taken over by another server", "action", a.ID, "created", created)
		return created, nil
	}
	if perr != nil {
		s.giveUp(ctx, l)
		return created, perr
	}

	return s.finishDispatch(ctx, a, l, created, resume)
}

// finishDispatch ends a's dispatch under lease l once its created commands
// are stored and sent: the action goes in flight, or completed (expired)
// when no command exists for it at all.
func (s *Scheduler) finishDispatch(ctx context.Context, a *action.Action, l store.DispatchLease, created int, resume bool) (int, error) {
	status, finished := action.StatusInFlight, time.Time{}
	if created == 0 {
		cur, err := s.store.Action(ctx, a.ID)
		if err != nil {
			s.giveUp(ctx, l)
			return 0, fmt.Errorf("dispatch action %d: %w", a.ID, err)
		}
		if cur.Counters.Sent == 0 {
			status, finished = action.StatusCompleted, s.now()
			if !s.now().Before(a.ExpireAfter) {
				status = action.StatusExpired
			}
		}
	}
	if err := s.store.FinishDispatch(ctx, l, status, finished); err != nil {
		if errors.Is(err, store.ErrLeaseLost) {
			s.log.Warn("dispatch taken over by another server", "action", a.ID, "created", created)
			return created, nil
		}
		s.giveUp(ctx, l)
		return created, fmt.Errorf("set status of action %d: %w", a.ID, err)
	}
	// Results that arrived while the commands were being created were
	// stored but could not finish the action: check now.
	if status == action.StatusInFlight {
		s.checkFinished(ctx, a.ID)
	}
	s.log.Info("action dispatched", "action", a.ID, "name", a.Name, "commands", created, "resumed", resume)
	return created, nil
}

// resendUnanswered sends again the commands of a still in status sent.
// Failures are logged: those commands also go out when their agents say
// hello.
func (s *Scheduler) resendUnanswered(ctx context.Context, a *action.Action, enc *commandEncoder) {
	if !s.now().Before(a.ExpireAfter) {
		return
	}
	q := store.CommandQuery{ActionID: a.ID, Status: action.CmdSent, NoResults: true, Limit: s.cfg.BatchSize}
	sent := 0
	for {
		cmds, err := s.store.Commands(ctx, q)
		if err != nil {
			s.log.Warn("read unanswered commands", "action", a.ID, "err", err)
			return
		}
		if len(cmds) == 0 {
			break
		}
		q.AfterID = cmds[len(cmds)-1].ID
		msgs, err := enc.messages(cmds, a.ExpireAfter)
		if err != nil {
			s.log.Error("encode unanswered commands", "action", a.ID, "err", err)
			return
		}
		if err := s.hub.Send(ctx, msgs); err != nil {
			s.log.Warn("send unanswered commands", "action", a.ID, "count", len(msgs), "err", err)
			return
		}
		sent += len(msgs)
		if len(cmds) < s.cfg.BatchSize {
			break
		}
	}
	s.log.Info("sent unanswered commands again", "action", a.ID, "count", sent)
}

// renewLoop renews l every third of the lease until ctx ends, and cancels
// the dispatch when the lease is lost.
func (s *Scheduler) renewLoop(ctx context.Context, l store.DispatchLease, cancel context.CancelCauseFunc) {
	t := time.NewTicker(s.cfg.DispatchLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.Expires = s.now().Add(s.cfg.DispatchLease)
		err := s.store.RenewDispatch(ctx, l)
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			cancel(errNoLease)
			return
		case err != nil && ctx.Err() == nil:
			s.log.Warn("renew dispatch lease", "action", l.ActionID, "err", err)
		}
	}
}

// produce pages through the agents a targets (those without a command of
// a, when resuming), stores a batch of commands for each page and hands
// its messages to batches. It returns the number of commands created.
func (s *Scheduler) produce(ctx context.Context, a *action.Action, l store.DispatchLease, expr target.Expr,
	enc *commandEncoder, resume bool, batches chan<- []relay.Outbound) (int, error) {
	if !s.now().Before(a.ExpireAfter) {
		return 0, nil // agents would refuse it; nothing to create
	}
	q := store.AgentQuery{Target: expr, Limit: s.cfg.BatchSize}
	if resume {
		q.WithoutCommandOf = a.ID
	}
	total := 0
	for {
		refs, err := s.store.AgentRefs(ctx, q)
		if err != nil {
			return total, fmt.Errorf("resolve target of action %d: %w", a.ID, err)
		}
		if len(refs) == 0 {
			return total, nil
		}
		q.After = refs[len(refs)-1].ID
		msgs, err := s.storeBatch(ctx, a, l, enc, refs)
		if err != nil {
			return total, err
		}
		total += len(msgs)
		select {
		case batches <- msgs:
		case <-ctx.Done():
			return total, context.Cause(ctx)
		}
		if len(refs) < s.cfg.BatchSize {
			return total, nil
		}
	}
}

// storeBatch stores one command per agent of refs under lease l and
// returns their messages. Command IDs are consecutive from a random base,
// so that a batch is one run of the commands table's key rather than a
// write to a random page per command; if a run meets a taken ID, the batch
// is stored again with another base.
func (s *Scheduler) storeBatch(ctx context.Context, a *action.Action, l store.DispatchLease,
	enc *commandEncoder, refs []store.AgentRef) ([]relay.Outbound, error) {
	now := s.now().UTC()
	cmds := make([]action.Command, len(refs))
	for attempt := 1; ; attempt++ {
		base, err := newIDRange(len(refs))
		if err != nil {
			return nil, err
		}
		for i, r := range refs {
			cmds[i] = action.Command{ID: base + uint64(i), Action: action.Action{ID: a.ID}, AgentID: r.ID,
				AgentName: r.Name, Status: action.CmdSent, StartTime: now}
		}
		l.Expires = s.now().Add(s.cfg.DispatchLease)
		err = s.store.DispatchCommands(ctx, l, cmds)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrExists) || attempt == 3 {
			return nil, fmt.Errorf("create commands of action %d: %w", a.ID, err)
		}
	}
	return enc.messages(cmds, a.ExpireAfter)
}

// newIDRange returns the first of n consecutive identifiers, all in
// [1, 2^53).
func newIDRange(n int) (uint64, error) {
	const limit = 1 << 53
	if n <= 0 || n >= limit/2 {
		return 0, fmt.Errorf("id range of %d", n)
	}
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("random id: %w", err)
		}
		if id := binary.LittleEndian.Uint64(b[:]) & (limit - 1); id != 0 && id <= limit-uint64(n) {
			return id, nil
		}
	}
}

// commandEncoder writes the relay messages of one action's commands: the
// JSON of action.CommandMessage, exactly as json.Marshal writes it, with the
// action's JSON encoded once instead of once per agent.
type commandEncoder struct {
	head []byte // {"v":N,"command":{"id":
	act  []byte // ,"action":{...},"agentid":
}

func newCommandEncoder(a *action.Action) (*commandEncoder, error) {
	aj, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("encode action %d: %w", a.ID, err)
	}
	e := &commandEncoder{head: []byte(`{"v":` + strconv.Itoa(action.ProtocolVersion) + `,"command":{"id":`)}
	e.act = append(append([]byte(`,"action":`), aj...), `,"agentid":`...)
	return e, nil
}

// messages returns the command message of each of cmds, in one buffer.
// Only the ID, agent, status and start time of each command are written;
// its results are not (commands are sent before they have any).
func (e *commandEncoder) messages(cmds []action.Command, expires time.Time) ([]relay.Outbound, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	var tail []byte // ,"status":"sent","starttime":"..."}}, as for the previous command
	var tailStatus string
	var tailStart time.Time
	var buf []byte
	msgs := make([]relay.Outbound, len(cmds))
	for i, c := range cmds {
		if tail == nil || c.Status != tailStatus || !c.StartTime.Equal(tailStart) || c.StartTime.Location() != tailStart.Location() {
			tail = append(append(tail[:0], `,"status":`...), appendJSONString(nil, c.Status)...)
			if !c.StartTime.IsZero() {
				st, err := c.StartTime.MarshalJSON()
				if err != nil {
					return nil, fmt.Errorf("encode command %d: %w", c.ID, err)
				}
				tail = append(append(tail, `,"starttime":`...), st...)
			}
			tail = append(tail, "}}"...)
			tailStatus, tailStart = c.Status, c.StartTime
		}
		if buf == nil {
			buf = make([]byte, 0, len(cmds)*(len(e.head)+len(e.act)+len(tail)+100))
		}
		start := len(buf)
		buf = append(buf, e.head...)
		buf = strconv.AppendUint(buf, c.ID, 10)
		buf = append(buf, e.act...)
		buf = appendJSONString(buf, c.AgentID)
		if c.AgentName != "" {
			buf = append(buf, `,"agentname":`...)
			buf = appendJSONString(buf, c.AgentName)
		}
		buf = append(buf, tail...)
		if n := len(buf) - start; n > action.MaxMessageSize {
			return nil, fmt.Errorf("encode command %d: %w: message is %d bytes, over the limit of %d",
				c.ID, action.ErrMessage, n, action.MaxMessageSize)
		}
		msgs[i] = relay.Outbound{AgentID: c.AgentID, Kind: relay.KindCommand, Data: buf[start:len(buf):len(buf)], Expires: expires}
	}
	return msgs, nil
}

// appendJSONString appends s as encoding/json writes a string: plain
// printable ASCII as is, anything else through json.Marshal (escapes,
// HTML-safe characters, invalid UTF-8).
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
