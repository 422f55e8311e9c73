// Package cli is the mig command line: one subcommand per module ("mig file
// -path /etc -name '^passwd$'"), plus the subcommands of one table
// (commands, in commands.go: action, results, agents, dashboard,
// investigator, apikey, audit, scribe convert), from which dispatch and
// help come. It builds, checks, signs and launches actions through package
// client, follows them while agents answer, and prints results with each
// module's printer. cmd/mig only calls Main.
//
// Everything an investigator types is checked locally before anything is
// sent: the target is parsed, module parameters are built and validated, and
// an action file is validated, so a typo is refused with exit code 2 without
// a request to the server.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/cmdflag"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/target"
)

// Exit codes of Main.
const (
	ExitOK          = 0   // success
	ExitFailure     = 1   // the command ran and failed (server, network, no agent)
	ExitUsage       = 2   // bad command line or bad input, refused before anything was sent
	ExitInterrupted = 130 // interrupted (Ctrl-C) while following an action
)

// DefaultTarget is the target of an action when neither -t nor the
// configuration's targets.default says otherwise.
const DefaultTarget = "status='online'"

// Special targets.
const (
	TargetAll   = "all"   // every online agent
	TargetLocal = "local" // run the module inside mig itself
)

// DefaultExpiration is the validity of an action when -e is not given:
// the client's, defined once there.
const DefaultExpiration = client.DefaultExpiration

// followGrace is how long mig keeps following an action after it expired,
// for the server to mark the remaining commands expired.
const followGrace = 2 * time.Minute

// errInterrupted is returned when ctx ended while following an action.
var errInterrupted = errors.New("interrupted")

// usageError is bad input refused before anything was sent (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// asUsage marks err as a usage error.
func asUsage(err error) error {
	if err == nil {
		return nil
	}
	return &usageError{err}
}

// runner holds one invocation's I/O.
type runner struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// every is the polling interval while following an action.
	every time.Duration
	// hostname names this machine in -t local results.
	hostname func() (string, error)
}

// Main runs the mig command line with args (without the program name) and
// returns the process exit code (ExitOK, ExitFailure, ExitUsage or
// ExitInterrupted). Ending ctx (Ctrl-C in cmd/mig) stops following an
// action; the action keeps running on the agents.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	r := &runner{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now,
		every: time.Second, hostname: os.Hostname}
	return r.main(args)
}

func (r *runner) main(args []string) int {
	err := r.dispatch(args)
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, errInterrupted):
		return ExitInterrupted
	case errors.As(err, &ue):
		fmt.Fprintf(r.stderr, "mig: %v\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(r.stderr, "mig: %v\n", err)
		return ExitFailure
	}
}

// dispatch runs the subcommand (the table commands) or module args[0]
// names.
func (r *runner) dispatch(args []string) error {
	if len(args) == 0 {
		r.usage(r.stderr)
		return usagef("no subcommand or module given")
	}
	name, rest := args[0], args[1:]
	if isHelp(name) {
		r.usage(r.stdout)
		return nil
	}
	if c := lookupCommand(commands, name); c != nil {
		if !c.moduleVerbs || (len(rest) > 0 && lookupCommand(c.verbs, rest[0]) != nil) {
			return c.exec(r, "mig "+name, rest)
		}
	}
	if m, ok := module.Lookup(name); ok {
		return r.moduleCmd(m, rest)
	}
	return usagef("unknown subcommand or module %q; subcommands: %s; modules: %s",
		name, strings.Join(commandNames(), ", "), strings.Join(module.Names(), ", "))
}

// usage writes the general help: subcommands, modules and global flags.
func (r *runner) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: mig <module> [global flags] [module flags]\n")
	fmt.Fprintf(w, "       mig <subcommand> [flags]\n\n")
	fmt.Fprintf(w, "modules (mig <module> -h lists a module's flags):\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, n := range module.Names() {
		m, _ := module.Lookup(n)
		fmt.Fprintf(tw, "  %s\t%s\n", n, m.Summary())
	}
	tw.Flush()
	fmt.Fprintf(w, "\nsubcommands (mig <subcommand> -h lists its flags):\n")
	writeCommands(w, "", commands)
	fmt.Fprintf(w, "\nglobal flags:\n")
	fs := flag.NewFlagSet("mig", flag.ContinueOnError)
	var g globals
	g.register(fs, allGlobals)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// Global flag names.
const (
	flagConfig  = "c"
	flagTarget  = "t"
	flagExpire  = "e"
	flagShow    = "show"
	flagRender  = "render"
	flagInput   = "i"
	flagPrint   = "p"
	flagSign    = "s"
	flagOutput  = "o"
	flagVerbose = "v"
)

var allGlobals = []string{flagConfig, flagTarget, flagExpire, flagShow, flagRender, flagInput,
	flagPrint, flagSign, flagOutput, flagVerbose}

// globals are the flags shared by module subcommands and the other
// subcommands.
type globals struct {
	config   string
	target   string
	expire   time.Duration
	show     string
	render   string
	input    string
	print    bool
	signOnly bool
	output   string
	verbose  bool

	fs       *flag.FlagSet
	shadowed []string // globals a module's flag took the name of
}

// register adds the named global flags to fs, skipping any name fs already
// has (a module's own flag wins).
func (g *globals) register(fs *flag.FlagSet, names []string) {
	g.fs = fs
	g.expire = DefaultExpiration
	g.show = ShowFound
	g.render = RenderText
	for _, n := range names {
		if fs.Lookup(n) != nil {
			g.shadowed = append(g.shadowed, n)
			continue
		}
		switch n {
		case flagConfig:
			fs.StringVar(&g.config, n, "", "client configuration `file` (default $MIG_CONFIG, else ~/.migrc)")
		case flagTarget:
			fs.StringVar(&g.target, n, "", "`target` of the action: a target expression, a macro from the configuration, \"all\" (online agents) or \"local\" (run here) (default the configuration's targets.default, else "+DefaultTarget+")")
		case flagExpire:
			fs.DurationVar(&g.expire, n, DefaultExpiration, "how long the action stays valid")
		case flagShow:
			fs.StringVar(&g.show, n, ShowFound, "what to print: found, notfound (agents that found nothing) or all")
		case flagRender:
			fs.StringVar(&g.render, n, RenderText, "output format: text, or json (one JSON object per line)")
		case flagInput:
			fs.StringVar(&g.input, n, "", "load the action from `file` instead of building it from flags")
		case flagPrint:
			fs.BoolVar(&g.print, n, false, "print the signed action as JSON and exit without launching")
		case flagSign:
			fs.BoolVar(&g.signOnly, n, false, "add your signature to the action given with -i and write it out without launching")
		case flagOutput:
			fs.StringVar(&g.output, n, "", "write the action of -s or -p to `file` instead of stdout")
		case flagVerbose:
			fs.BoolVar(&g.verbose, n, false, "verbose: log requests to stderr")
		}
	}
}

// isSet reports whether the flag was given on the command line.
func (g *globals) isSet(name string) bool {
	return g.fs != nil && cmdflag.IsSet(g.fs, name)
}

// check validates the values of the global flags.
func (g *globals) check() error {
	switch g.show {
	case ShowFound, ShowNotFound, ShowAll:
	default:
		return usagef("-show %q: want found, notfound or all", g.show)
	}
	switch g.render {
	case RenderText, RenderJSON:
	default:
		return usagef("-render %q: want text or json", g.render)
	}
	if g.expire <= 0 {
		return usagef("-e %s: the expiration must be positive", g.expire)
	}
	if g.isSet(flagTarget) && strings.TrimSpace(g.target) == "" {
		return usagef("-t is empty")
	}
	if g.output != "" && !g.print && !g.signOnly {
		return usagef("-o %s is only for -s or -p", g.output)
	}
	return nil
}

// parseFlags parses args with fs, allowing positional arguments between
// flags, and returns the positional arguments. -h returns flag.ErrHelp
// after usage was written to stdout.
func (r *runner) parseFlags(fs *flag.FlagSet, args []string, usage func(io.Writer)) ([]string, error) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage(r.stdout)
				return nil, flag.ErrHelp
			}
			return nil, usagef("%s: %v (see %s -h)", fs.Name(), err, fs.Name())
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// loadConfig reads the client configuration named by -c, $MIG_CONFIG or
// ~/.migrc, with the logger -v asks for.
func (r *runner) loadConfig(g *globals) (client.Config, error) {
	cfg, err := client.LoadConfig(g.config)
	if err != nil {
		return client.Config{}, err
	}
	cfg.Logger = r.logger(g)
	return cfg, nil
}

func (r *runner) logger(g *globals) *slog.Logger {
	if !g.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(r.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// resolveTarget turns the -t value (or the configured default) into a
// target expression: "all" is every online agent, a macro name is replaced
// by its target. The result is parsed; a bad target is a usage error naming
// it.
func resolveTarget(t string, set bool, cfg client.Config) (string, error) {
	if !set {
		t = cfg.Targets.Default
		if strings.TrimSpace(t) == "" {
			t = DefaultTarget
		}
	}
	if t == TargetAll {
		t = DefaultTarget
	} else if m, ok := cfg.Targets.Macros[t]; ok {
		t = m
	}
	if t == TargetLocal {
		return "", usagef("target %q cannot be used here", TargetLocal)
	}
	if _, err := target.Parse(t); err != nil {
		return "", usagef("bad target %q: %w", t, err)
	}
	return t, nil
}

// commandName names an action built from the command line after the module
// and its arguments.
func commandName(mod string, args []string) string {
	var b strings.Builder
	b.WriteString(mod)
	for _, a := range args {
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	s := strings.ToValidUTF8(b.String(), "?")
	if len(s) > action.MaxNameLen {
		s = strings.ToValidUTF8(s[:action.MaxNameLen-3], "") + "..."
	}
	return s
}

// moduleUsage writes the help of "mig <module>": its flags, then the global
// flags.
func moduleUsage(w io.Writer, m module.Module, fs *flag.FlagSet, modFlags map[string]bool, g *globals) {
	fmt.Fprintf(w, "usage: mig %s [global flags] [%s flags]\n\n%s\n\n", m.Name(), m.Name(), m.Summary())
	fmt.Fprintf(w, "%s flags:\n", m.Name())
	printSome(w, fs, func(n string) bool { return modFlags[n] })
	fmt.Fprintf(w, "\nglobal flags:\n")
	printSome(w, fs, func(n string) bool { return !modFlags[n] })
	if c := lookupCommand(commands, m.Name()); c != nil && c.moduleVerbs {
		fmt.Fprintf(w, "\nverbs:\n")
		writeCommands(w, "mig "+m.Name(), c.verbs)
	}
	for _, s := range g.shadowed {
		fmt.Fprintf(w, "\nnote: -%s is a flag of %s here; the global -%s is not available with mig %s\n", s, m.Name(), s, m.Name())
	}
}

// printSome prints the defaults of the flags of fs that keep selects.
func printSome(w io.Writer, fs *flag.FlagSet, keep func(string) bool) {
	sub := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if keep(f.Name) {
			sub.Var(f.Value, f.Name, f.Usage)
			sub.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	sub.SetOutput(w)
	sub.PrintDefaults()
}

// writeTable writes rows through a tabwriter.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}
