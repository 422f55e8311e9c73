package agent

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/relay"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/target"
)

// restartedError is the error of a command that was running when the agent
// stopped.
const restartedError = "agent restarted while running the command"

// job is one command from the inbox for a worker.
type job struct {
	item inboxItem
	// resumed is set for commands found in the inbox at start.
	resumed bool
}

// refusal is why a command is not run: a stable code and a reason.
type refusal struct {
	code string
	err  error
}

// commandPeek is the part of a command message read when the whole does not
// decode, to answer with CodeBadEncoding when possible.
type commandPeek struct {
	Command struct {
		ID      uint64 `json:"id"`
		AgentID string `json:"agentid"`
		Action  struct {
			ID uint64 `json:"id"`
		} `json:"action"`
	} `json:"command"`
}

// handle checks, runs and answers one command, in named steps:
//
//  1. decode: a command that does not decode is answered CodeBadEncoding
//     when it names this agent and a command ID (handleUndecodable), else
//     dropped;
//  2. claim in memory: a command already being handled by another worker
//     is left to it;
//  3. settle what needs no run (settled): a command already answered is
//     answered again from the outbox, one for another agent is refused,
//     one whose action already ran here as this command is answered as
//     interrupted (on resume) or dropped;
//  4. check (check): the whole trust model, before anything runs;
//  5. claim in the journal (claimJournal): from here on the action counts
//     as run, so it can never run twice;
//  6. run (run) every operation;
//  7. enforce privacy (limitResults) on what the modules returned;
//  8. finish (finish): fit the result to the relay limit, then sign what
//     is left, keep it in the outbox, take the command out of the inbox
//     and publish.
//
// The command stays in the inbox until its result is in the outbox, so a
// crash at any point resumes it on the next start.
func (a *Agent) handle(ctx context.Context, j job) {
	m, err := action.DecodeCommand(j.item.data)
	if err != nil {
		a.handleUndecodable(ctx, j.item, err)
		return
	}
	cmd := &m.Command
	act := &cmd.Action
	log := a.log.With("command", cmd.ID, "action", act.ID)
	if !a.claimInflight(cmd.ID) {
		log.Debug("ignoring a command that is already being handled")
		a.inboxDone(j.item)
		return
	}
	defer a.releaseInflight(cmd.ID)
	if a.settled(ctx, j, cmd, log) {
		return
	}
	now := time.Now()
	runners, hash, r := a.check(cmd, now)
	if r != nil {
		log.Warn("refusing a command", "code", r.code, "err", r.err)
		a.refuse(ctx, j.item, cmd.ID, act.ID, hash, *r)
		return
	}
	if a.runParsed == nil {
		// Child processes parse their own parameters: do not keep what
		// the checks built while they run.
		runners = nil
	}
	if !a.claimJournal(ctx, j.item, cmd, hash, now, log) {
		return
	}
	log.Info("running a command", "modules", act.Modules(), "name", act.Name)
	res, ok := a.run(ctx, cmd, runners)
	if !ok {
		// The agent is stopping: the command stays in the inbox and is
		// answered as interrupted on the next start.
		return
	}
	a.limitResults(cmd, res)
	log.Info("command finished", "status", res.Status, "code", res.Code)
	a.finish(ctx, j.item, res, hash)
}

// handleUndecodable answers a command message that does not decode. It
// guarantees that such a message never runs anything: if what can be read
// of it names a command for this agent, that command is answered
// CodeBadEncoding with the decoding error (once: an answer already in the
// outbox is sent again); otherwise it is dropped from the inbox.
func (a *Agent) handleUndecodable(ctx context.Context, it inboxItem, err error) {
	var p commandPeek
	_ = json.Unmarshal(it.data, &p)
	if p.Command.ID == 0 || p.Command.AgentID != a.id {
		a.log.Warn("dropping a command that does not decode", "err", err)
		a.inboxDone(it)
		return
	}
	if !a.claimInflight(p.Command.ID) {
		a.inboxDone(it)
		return
	}
	defer a.releaseInflight(p.Command.ID)
	if a.outbox.has(p.Command.ID) {
		a.resend(ctx, it, p.Command.ID)
		return
	}
	a.refuse(ctx, it, p.Command.ID, p.Command.Action.ID, "", refusal{action.CodeBadEncoding, err})
}

// settled handles a decoded command that must not be checked and run, and
// reports whether it did. It guarantees that a command is answered at most
// once and its action runs at most once: a command whose result is in the
// outbox gets that result again; a command for another agent is refused
// CodeBadEncoding; a command whose action the journal records as run by
// this same command is answered as interrupted if it was found in the
// inbox at start (it was running when the agent stopped), and dropped
// otherwise (it ran and its result was acknowledged).
func (a *Agent) settled(ctx context.Context, j job, cmd *action.Command, log *slog.Logger) bool {
	act := &cmd.Action
	if a.outbox.has(cmd.ID) {
		log.Debug("command already answered; sending its result again")
		a.resend(ctx, j.item, cmd.ID)
		return true
	}
	if cmd.AgentID != a.id {
		a.refuse(ctx, j.item, cmd.ID, act.ID, "", refusal{action.CodeBadEncoding,
			fmt.Errorf("command %d is for agent %q, not this agent %q", cmd.ID, cmd.AgentID, a.id)})
		return true
	}
	e, ok := a.journal.lookup(act.ID)
	if !ok || e.Command != cmd.ID {
		return false
	}
	if !j.resumed {
		log.Debug("ignoring a command that already ran and was acknowledged")
		a.inboxDone(j.item)
		return true
	}
	log.Warn("answering a command that was running when the agent stopped")
	now := time.Now()
	// It ran, so it checked: its encoding is that of the action it ran.
	hash := ""
	if checked, err := act.Check(); err == nil {
		hash = action.ActionHash(checked.Encoding())
	}
	a.finish(ctx, j.item, &action.ResultMessage{
		CommandID: cmd.ID, ActionID: act.ID, Status: action.CmdFailed,
		Code: action.CodeModuleFailed, Error: restartedError, Started: now, Finished: now,
	}, hash)
	return true
}

// claimJournal records a checked command's action in the replay journal
// before it runs, and reports whether it may run. It guarantees that an
// action runs at most once on this agent, even across a crash: a full
// journal or an action already run by another command is refused
// CodeReplay; the same command already recorded (claimed by a concurrent
// duplicate) is dropped; a journal that cannot be written keeps the
// command in the inbox, unrun, for the next start.
func (a *Agent) claimJournal(ctx context.Context, it inboxItem, cmd *action.Command, hash string, now time.Time, log *slog.Logger) bool {
	act := &cmd.Action
	e, claimed, err := a.journal.claim(journalEntry{Action: act.ID, Command: cmd.ID, ExpireAfter: act.ExpireAfter}, now)
	switch {
	case errors.Is(err, ErrJournalFull):
		a.refuse(ctx, it, cmd.ID, act.ID, hash, refusal{action.CodeReplay,
			fmt.Errorf("cannot record action %d: %w; refusing it until older actions expire", act.ID, err)})
		return false
	case err != nil:
		// Without the journal on disk the action must not run; the command
		// stays in the inbox for the next start.
		log.Error("cannot record the action in the journal", "err", err)
		return false
	case !claimed && e.Command == cmd.ID:
		a.inboxDone(it)
		return false
	case !claimed:
		a.refuse(ctx, it, cmd.ID, act.ID, hash, refusal{action.CodeReplay,
			fmt.Errorf("action %d already ran here as command %d", act.ID, e.Command)})
		return false
	}
	return true
}

// check runs every check of the trust model, in order: encoding,
// signatures, ACL, validity window, replay, target, then each operation's
// parameters. It returns the first refusal, or the parsed parameters of
// every operation, which run runs without parsing them again. With either
// it returns the action hash of the encoding it checked (action.ActionHash),
// which the agent signs with its result; "" if the action did not encode.
func (a *Agent) check(cmd *action.Command, now time.Time) ([]module.Runner, string, *refusal) {
	act := &cmd.Action
	// The action as received is checked and encoded once, here; the
	// signatures are verified over that encoding, and nothing below
	// changes act.
	checked, err := act.Check()
	if err != nil {
		return nil, "", &refusal{action.CodeBadEncoding, err}
	}
	hash := action.ActionHash(checked.Encoding())
	runners, r := a.checkEncoded(cmd, checked, now)
	return runners, hash, r
}

// checkEncoded runs the checks of check after the encoding.
func (a *Agent) checkEncoded(cmd *action.Command, checked *action.Checked, now time.Time) ([]module.Runner, *refusal) {
	act := &cmd.Action
	fps, err := sign.VerifyChecked(checked, a.keyring)
	switch {
	case errors.Is(err, sign.ErrUnknownSigner):
		return nil, &refusal{action.CodeUntrusted, err}
	case err != nil:
		return nil, &refusal{action.CodeBadSignature, err}
	}
	for _, mod := range act.Modules() {
		if err := a.acl.Authorize(mod, fps); err != nil {
			return nil, &refusal{action.CodeACLDenied, fmt.Errorf("module %s: %w", mod, err)}
		}
	}
	if now.Before(act.ValidFrom) {
		return nil, &refusal{action.CodeNotYetValid, fmt.Errorf("action %d is valid from %s, now is %s",
			act.ID, act.ValidFrom.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if now.After(act.ExpireAfter) {
		return nil, &refusal{action.CodeExpired, fmt.Errorf("action %d expired at %s, now is %s",
			act.ID, act.ExpireAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if r := a.checkWindow(act); r != nil {
		return nil, r
	}
	if e, ok := a.journal.lookup(act.ID); ok {
		return nil, &refusal{action.CodeReplay, fmt.Errorf("action %d already ran here as command %d", act.ID, e.Command)}
	}
	expr, err := target.Parse(act.Target)
	if err != nil {
		return nil, &refusal{action.CodeNotTargeted, fmt.Errorf("target %q: %w", act.Target, err)}
	}
	self := a.self(now)
	if !target.Eval(expr, &self) {
		return nil, &refusal{action.CodeNotTargeted, fmt.Errorf("agent %s (%s) does not match target %q", a.id, self.Name, act.Target)}
	}
	runners := make([]module.Runner, len(act.Operations))
	for i, op := range act.Operations {
		_, r, err := module.Parse(op.Module, op.Parameters)
		if err != nil {
			return nil, &refusal{module.ErrorCode(err), fmt.Errorf("operation %d: %w", i, err)}
		}
		runners[i] = r
	}
	return runners, nil
}

// run runs every operation of a checked command and returns the result
// message. With Options.RunParsed, runners are what check parsed and run
// as they are; otherwise runners is nil and each operation goes to a child
// process (which parses the parameters it is sent) or Options.RunModule.
// It returns false if the agent is stopping.
func (a *Agent) run(ctx context.Context, cmd *action.Command, runners []module.Runner) (*action.ResultMessage, bool) {
	act := &cmd.Action
	res := &action.ResultMessage{
		CommandID: cmd.ID, ActionID: act.ID, Status: action.CmdSuccess,
		Results: make([]action.Result, len(act.Operations)), Started: time.Now(),
	}
	var timeoutErr, crashErr error
	for i, op := range act.Operations {
		timeout := min(a.cfg.ModuleTimeout, time.Until(act.ExpireAfter))
		opCtx, cancel := context.WithTimeout(ctx, timeout)
		env := module.Env{MaxProcs: a.cfg.MaxProcs}
		var r action.Result
		var err error
		if runners != nil {
			r, err = a.runParsed(opCtx, op.Module, runners[i], env)
		} else {
			r, err = a.runModule(opCtx, op.Module, op.Parameters, env)
		}
		cancel()
		if ctx.Err() != nil {
			return nil, false
		}
		if err != nil {
			err = fmt.Errorf("operation %d (%s): %w", i, op.Module, err)
			a.log.Warn("operation failed", "command", cmd.ID, "operation", i, "module", op.Module, "err", err)
			r = module.FailResult(err.Error())
			if errors.Is(err, module.ErrTimeout) {
				timeoutErr = firstErr(timeoutErr, err)
			} else {
				crashErr = firstErr(crashErr, err)
			}
		}
		res.Results[i] = r
	}
	res.Finished = time.Now()
	switch {
	case crashErr != nil:
		res.Status, res.Code, res.Error = action.CmdFailed, action.CodeModuleFailed, crashErr.Error()
	case timeoutErr != nil:
		res.Status, res.Code, res.Error = action.CmdTimeout, action.CodeModuleTimeout, timeoutErr.Error()
	}
	return res, true
}

// firstErr returns the first non-nil error.
func firstErr(first, next error) error {
	if first != nil {
		return first
	}
	return next
}

// refuse answers a command failed with a refusal; actionHash is the hash
// of the action's encoding, if it encoded.
func (a *Agent) refuse(ctx context.Context, it inboxItem, cmdID, actionID uint64, actionHash string, r refusal) {
	now := time.Now()
	a.finish(ctx, it, &action.ResultMessage{
		CommandID: cmdID, ActionID: actionID, Status: action.CmdFailed,
		Code: r.code, Error: r.err.Error(), Started: now, Finished: now,
	}, actionHash)
}

// finish seals a result (sealResult: fits it to the relay limit, then signs
// exactly what is left), writes it to the outbox, removes its command from
// the inbox and publishes the result. If the outbox cannot be written, the
// command stays in the inbox for the next start. actionHash is the hash of
// the action encoding the agent checked, "" if there is none.
func (a *Agent) finish(ctx context.Context, it inboxItem, m *action.ResultMessage, actionHash string) {
	m.V = action.ProtocolVersion
	m.AgentID = a.id
	data, err := sealResult(m, a.key, a.cfg.Name, actionHash)
	if err != nil {
		a.log.Error("cannot encode a result", "command", m.CommandID, "err", err)
		return
	}
	if err := a.outbox.put(m.CommandID, data); err != nil {
		a.log.Error("cannot keep a result in the outbox", "command", m.CommandID, "err", err)
		return
	}
	a.inboxDone(it)
	a.publish(ctx, relay.KindResult, data)
}

// resend publishes a kept result again for a command received again.
func (a *Agent) resend(ctx context.Context, it inboxItem, cmdID uint64) {
	a.inboxDone(it)
	data, err := a.outbox.get(cmdID)
	if err != nil {
		a.log.Error("cannot read a kept result", "command", cmdID, "err", err)
		return
	}
	a.publish(ctx, relay.KindResult, data)
}

// inboxDone removes an answered command from the inbox.
func (a *Agent) inboxDone(it inboxItem) {
	if err := a.inbox.done(it); err != nil {
		a.log.Error("cannot remove a command from the inbox", "file", it.path, "err", err)
	}
}

// claimInflight marks a command ID as being handled, or returns false if it
// already is.
func (a *Agent) claimInflight(id uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inflight[id] {
		return false
	}
	a.inflight[id] = true
	return true
}

func (a *Agent) releaseInflight(id uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.inflight, id)
}

// sealResult fits a result message within action.MaxMessageSize
// (module.FitMessage: the one size policy of results), leaving room for its
// signature, then signs what is left with
// the agent's identity key and encodes it: the signature covers exactly the
// result that is sent.
func sealResult(m *action.ResultMessage, key ed25519.PrivateKey, name, actionHash string) ([]byte, error) {
	m.Signature = nil
	// Code and Error are kept as text columns by the server's store, which
	// cannot hold NUL (PostgreSQL); what the agent signs is what can be
	// stored.
	m.Code, m.Error = storableText(m.Code), storableText(m.Error)
	// The signature's JSON: key and signature in base64, the hash, two
	// times, and the name, whose every byte may take six when escaped.
	reserve := 1024 + 6*len(name)
	if _, err := module.FitMessage(m, action.MaxMessageSize-reserve); err != nil {
		return nil, err
	}
	sig, err := action.SignResult(key, m.Fields(), action.ResultSignature{
		Name: name, ActionHash: actionHash, Started: m.Started, Finished: m.Finished})
	if err != nil {
		return nil, err
	}
	m.Signature = sig
	return action.Marshal(m)
}

// storableText returns s as valid UTF-8 without NUL, replacing either with
// U+FFFD.
func storableText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
