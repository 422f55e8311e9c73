package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/sign"
	"github.com/migplatform/mig/internal/target"
)

// moduleCmd runs "mig <module> [flags]": build the module's parameters from
// flags (or load -i), check everything, then run locally, print, sign or
// launch.
func (r *runner) moduleCmd(m module.Module, args []string) error {
	fs := flag.NewFlagSet("mig "+m.Name(), flag.ContinueOnError)
	build := module.SetFlags(m, fs)
	modFlags := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { modFlags[f.Name] = true })
	g := &globals{}
	g.register(fs, allGlobals)
	pos, err := r.parseFlags(fs, args, func(w io.Writer) { moduleUsage(w, m, fs, modFlags, g) })
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("mig %s: unexpected argument %q (flags start with -; see mig %s -h)", m.Name(), pos[0], m.Name())
	}
	if err := g.check(); err != nil {
		return err
	}
	if g.input != "" {
		var set []string
		fs.Visit(func(f *flag.Flag) {
			if modFlags[f.Name] {
				set = append(set, "-"+f.Name)
			}
		})
		if len(set) > 0 {
			return usagef("mig %s: %v cannot be combined with -i %s: the action comes from the file", m.Name(), set, g.input)
		}
		return r.launchFile(g)
	}
	if g.signOnly {
		return usagef("mig %s: -s signs the action given with -i; use -p to print a signed action built from flags", m.Name())
	}
	// The flags build the parameters and parse them once, as an agent
	// will: -t local runs what that parse returned.
	params, parsed, err := build()
	if err != nil {
		return usagef("mig %s: %w", m.Name(), err)
	}
	op := action.Operation{Module: m.Name(), Parameters: params}
	if g.isSet(flagTarget) && g.target == TargetLocal {
		return r.runLocal(g, []action.Operation{op}, []module.Runner{parsed})
	}
	cfg, err := r.loadTargetConfig(g)
	if err != nil {
		return err
	}
	tgt, err := resolveTarget(g.target, g.isSet(flagTarget), cfg)
	if err != nil {
		return err
	}
	a := &action.Action{
		Name:       commandName(m.Name(), args),
		Target:     tgt,
		Operations: []action.Operation{op},
	}
	client.PrepareAction(a, g.expire, r.now())
	checked, err := a.Check()
	if err != nil {
		return asUsage(err)
	}
	return r.launch(cfg, g, checked)
}

// loadTargetConfig loads the configuration; when that fails and -t names a
// target that does not parse, the bad target is reported first, since it is
// wrong whatever the configuration says.
func (r *runner) loadTargetConfig(g *globals) (client.Config, error) {
	cfg, err := r.loadConfig(g)
	if err != nil && g.isSet(flagTarget) && g.target != TargetAll {
		if _, perr := target.Parse(g.target); perr != nil {
			return client.Config{}, usagef("bad target %q: %w", g.target, perr)
		}
	}
	return cfg, err
}

// actionCmd runs "mig action -i FILE [-s] [-o FILE] [-p]".
func (r *runner) actionCmd(g *globals, pos []string) error {
	if g.input == "" && len(pos) == 1 {
		g.input, pos = pos[0], nil
	}
	if len(pos) > 0 {
		return usagef("mig action: unexpected argument %q", pos[0])
	}
	if g.input == "" {
		return usagef("mig action: give the action file with -i FILE")
	}
	return r.launchFile(g)
}

// clearPlatformFields drops what the server sets, which a file exported
// from the API may carry; none of it is signed.
func clearPlatformFields(a *action.Action) {
	a.Status = ""
	a.StartTime = time.Time{}
	a.FinishTime = time.Time{}
	a.LastUpdateTime = time.Time{}
	a.Counters = action.Counters{}
	a.Investigators = nil
}

// launchFile loads the action file of -i, checks it, and signs, prints or
// launches it. A signed action keeps its ID, target and times, which the
// signatures cover.
func (r *runner) launchFile(g *globals) error {
	a, err := LoadActionFile(g.input)
	if err != nil {
		return asUsage(err)
	}
	clearPlatformFields(a)
	signed := len(a.PGPSignatures) > 0
	parsed := make([]module.Runner, len(a.Operations))
	for i, op := range a.Operations {
		if _, parsed[i], err = module.Parse(op.Module, op.Parameters); err != nil {
			return usagef("%s: operation %d: %w", g.input, i, err)
		}
	}
	if g.isSet(flagTarget) && g.target == TargetLocal {
		return r.runLocal(g, a.Operations, parsed)
	}
	cfg, err := r.loadTargetConfig(g)
	if err != nil {
		return err
	}
	switch {
	case signed && g.isSet(flagTarget):
		return usagef("-t cannot change the target of %s: it carries %d signature(s) over its target %q",
			g.input, len(a.PGPSignatures), a.Target)
	case g.isSet(flagTarget) || a.Target == "":
		if a.Target, err = resolveTarget(g.target, g.isSet(flagTarget), cfg); err != nil {
			return err
		}
	default:
		if _, err := target.Parse(a.Target); err != nil {
			return usagef("%s: bad target %q: %w", g.input, a.Target, err)
		}
	}
	if signed {
		if a.ID == 0 {
			return usagef("%s: the action is signed but has no id; its signatures cannot be checked by agents", g.input)
		}
		if g.isSet(flagExpire) {
			return usagef("-e cannot change the expiration of %s: it is signed", g.input)
		}
	} else {
		client.PrepareAction(a, g.expire, r.now())
	}
	checked, err := a.Check()
	if err != nil {
		return usagef("%s: %w", g.input, err)
	}
	if now := r.now(); !a.ExpireAfter.After(now) {
		return usagef("%s: action %d expired at %s", g.input, a.ID, a.ExpireAfter.Format(time.RFC3339))
	}
	return r.launch(cfg, g, checked)
}

// launch signs a checked action and either writes it out (-s, -p) or
// previews the target, launches the action and follows it. The action was
// checked and encoded once (action.Action.Check); what is signed, written
// and launched is that checked action.
func (r *runner) launch(cfg client.Config, g *globals, checked *action.Checked) error {
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	// A client with only an API key cannot sign: it may launch an action
	// that investigators already signed (mig action -i signed.json), and
	// nothing else. Say so before asking the server anything.
	noSigner := c.Signer().Fingerprint() == ""
	signed := len(checked.Action().PGPSignatures) > 0
	if noSigner && (g.print || g.signOnly || !signed) {
		return usagef("%v", client.ErrNoSigner)
	}
	if g.print || g.signOnly {
		a, err := sign.SignChecked(checked, c.Signer())
		if err != nil {
			return fmt.Errorf("signing action %d: %w", checked.ID(), err)
		}
		return r.writeAction(g, a)
	}
	n, err := c.CountAgents(r.ctx, checked.Target())
	if err != nil {
		return err
	}
	fmt.Fprintf(r.stderr, "%d agents will be targeted\n", n)
	if n == 0 {
		return fmt.Errorf("no agent matches target %q; action not launched", checked.Target())
	}
	a, err := sign.SignChecked(checked, c.Signer())
	switch {
	case errors.Is(err, sign.ErrAlreadySigned), noSigner && signed:
		// An action this investigator already signed (with -s) launches
		// as it is: a key counts once, so signing it again would add
		// nothing. A client with only an API key launches the signatures
		// the action carries; the API and every agent check them.
		a = checked.Action()
	case err != nil:
		return fmt.Errorf("signing action %d: %w", checked.ID(), err)
	}
	stored, err := c.CreateAction(r.ctx, a)
	if err != nil {
		return err
	}
	if stored.ID != 0 && stored.ID != a.ID {
		return fmt.Errorf("%w: launched action %d but the server stored %d", client.ErrBadResponse, a.ID, stored.ID)
	}
	if g.verbose {
		fmt.Fprintf(r.stderr, "launched action %d %q\n", a.ID, a.Name)
	}
	return r.follow(c, g, a)
}

// writeAction writes a signed action as indented JSON to -o or stdout.
func (r *runner) writeAction(g *globals, a *action.Action) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding action %d: %w", a.ID, err)
	}
	b = append(b, '\n')
	if g.output == "" {
		_, err = r.stdout.Write(b)
		return err
	}
	if err := os.WriteFile(g.output, b, 0o644); err != nil {
		return fmt.Errorf("writing action %d: %w", a.ID, err)
	}
	fmt.Fprintf(r.stderr, "action %d with %d signature(s) written to %s\n", a.ID, len(a.PGPSignatures), g.output)
	return nil
}

// follow prints progress and results until every agent answered, the action
// is long expired, or the user interrupts. Each result is verified as mig
// results verifies it, against the pins of ~/.mig/agentkeys; a result FORGED
// or signed by a changed key makes follow fail once the action is done.
func (r *runner) follow(c *client.Client, g *globals, a *action.Action) error {
	start := r.now()
	pr := newProgress(r.stderr, start)
	pr.now = r.now
	p := &printer{out: r.stdout, errw: r.stderr, show: g.show, render: g.render, verbose: g.verbose,
		ops: a.Operations, actionID: a.ID, progress: pr}
	v, err := newResultVerifier(r.stderr, "", a)
	if err != nil {
		return err
	}
	v.quietUnsigned = true
	v.beforeWarning = func() {
		_ = p.flush()
		pr.clear()
	}
	ctx, cancel := context.WithDeadline(r.ctx, a.ExpireAfter.Add(followGrace))
	defer cancel()
	var printErr error
	// Follow delivers a poll's commands, then its counters: the results of
	// a poll are written at once, then the progress line.
	final, err := c.Follow(ctx, a.ID, r.every, func(n action.Counters) {
		if err := p.flush(); err != nil && printErr == nil {
			printErr = err
		}
		pr.update(n)
	}, func(cmd action.Command) {
		p.signature = v.check(cmd)
		if err := p.command(cmd); err != nil && printErr == nil {
			printErr = err
		}
	})
	if err := p.flush(); err != nil && printErr == nil {
		printErr = err
	}
	pr.clear()
	if err != nil {
		switch {
		case r.ctx.Err() != nil:
			fmt.Fprintf(r.stderr, "stopped following action %d; it keeps running on the agents. Get its results later with:\n  mig results %d\n", a.ID, a.ID)
			return errInterrupted
		case errors.Is(err, context.DeadlineExceeded):
			if final != nil {
				p.summary(final.Counters)
			}
			if err := v.finish(false); err != nil {
				return err
			}
			return fmt.Errorf("action %d expired at %s but not every agent answered; see mig results %d",
				a.ID, a.ExpireAfter.Format(time.RFC3339), a.ID)
		}
		return fmt.Errorf("following action %d: %w (get its results later with: mig results %d)", a.ID, err, a.ID)
	}
	p.summary(final.Counters)
	if printErr != nil {
		return fmt.Errorf("printing results: %w", printErr)
	}
	return v.finish(false)
}

// runLocal runs operations inside mig itself, with no server and no
// configuration, and prints their results as this host's. parsed[i] is
// what parsing ops[i]'s parameters returned when they were checked: each
// operation's parameters are parsed once (a scribe policy of thousands of
// tests takes a while to parse).
func (r *runner) runLocal(g *globals, ops []action.Operation, parsed []module.Runner) error {
	if len(parsed) != len(ops) {
		return fmt.Errorf("running locally: %d operations but %d parsed", len(ops), len(parsed))
	}
	host, err := r.hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	ctx, cancel := context.WithTimeout(r.ctx, g.expire)
	defer cancel()
	cmd := action.Command{AgentName: host, Status: action.CmdSuccess}
	for i, op := range ops {
		res, err := module.RunParsed(ctx, op.Module, parsed[i], module.Env{})
		if err != nil {
			if r.ctx.Err() != nil {
				return errInterrupted
			}
			return fmt.Errorf("running %s locally: %w", op.Module, err)
		}
		cmd.Results = append(cmd.Results, res)
	}
	p := &printer{out: r.stdout, errw: r.stderr, show: g.show, render: g.render, verbose: g.verbose, ops: ops}
	if err := p.command(cmd); err != nil {
		return err
	}
	return p.flush()
}
