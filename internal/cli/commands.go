package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/migplatform/mig/internal/action"
)

// A command is one entry of mig's table of subcommands (commands): its name,
// what "mig help" and "mig <name> -h" say of it, its flags and what runs it.
// A command with verbs is a group ("mig investigator list"), whose verbs are
// commands too. Adding a subcommand or a verb is adding one entry; dispatch,
// flag parsing, the checks of the global flags and help all come from the
// table.
type command struct {
	name string
	// args is the synopsis after the name: "-i FILE [-s] [-o FILE] [-p]".
	args string
	// summary is the one line of "mig help".
	summary string
	// help, if set, is a paragraph of "mig <name> -h" after the usage line.
	help string
	// globals are the global flags the command takes (see register).
	globals []string
	// positional says the command takes positional arguments, which run
	// checks; without it, any positional argument is refused.
	positional bool
	// flags, if set, adds the command's own flags to fs and returns the run
	// function that reads them; otherwise run is used.
	flags func(fs *flag.FlagSet) runFunc
	run   runFunc
	// verbs make the command a group: its first argument names one of
	// them. A group with a run (or flags) of its own runs it when its first
	// argument is a flag or there is none ("mig audit -after 3").
	verbs []*command
	// moduleVerbs marks a group named after a module ("mig scribe
	// convert"): when the first argument is not one of its verbs, the
	// module's own subcommand runs.
	moduleVerbs bool
}

// runFunc runs a command once its flags are parsed and its global flags
// checked; pos are its positional arguments.
type runFunc func(r *runner, g *globals, pos []string) error

// Global flags of the commands that talk to the server.
var (
	serverGlobals = []string{flagConfig, flagVerbose}
	renderGlobals = []string{flagConfig, flagRender, flagVerbose}
)

// commands is mig's table of subcommands besides the modules. It is set in
// init because the help entry prints the table.
var commands []*command

func init() {
	commands = []*command{
		{name: "action", args: "-i FILE [-s] [-o FILE] [-p] [global flags]",
			summary: "launch an action file (or sign it with -s, print it with -p)",
			help: "Launch the action in FILE: a MIG action file (signed or not) or a bare operation\n" +
				"{\"module\": ..., \"parameters\": ...}. With -s, add your signature and write the\n" +
				"action out without launching, for a second investigator to sign and launch.",
			globals: allGlobals, positional: true, run: (*runner).actionCmd},
		{name: "results", args: "<actionid> [-show found|notfound|all] [-render text|json] [-pinfile FILE] [-requiresigned]",
			summary: "print the results of an action, verifying the agents' signatures",
			help: "Each result is verified against the key of its agent pinned in ~/.mig/agentkeys\n" +
				"(pinned on first use) or in the -pinfile an operator distributes: FORGED when the\n" +
				"signature does not match what the server shows, KEY CHANGED when the agent's key is\n" +
				"not its pin; either makes mig exit 1. -requiresigned prints only verified results\n" +
				"and fails when any result is unsigned or its key not pinned.",
			globals: []string{flagConfig, flagShow, flagRender, flagVerbose}, positional: true,
			flags: resultsFlags},
		{name: "agents", args: "[-t TARGET] [-render text|json]", summary: "list agents",
			globals: []string{flagConfig, flagTarget, flagRender, flagVerbose}, run: (*runner).agentsCmd},
		{name: "dashboard", args: "[-render text|json]", summary: "agents by status and the newest actions",
			globals: renderGlobals, run: (*runner).dashboardCmd},
		{name: "investigator", summary: "the investigators the API knows, and their OpenPGP keys and permissions",
			verbs: investigatorVerbs},
		{name: "apikey", summary: "API keys, for automation that reads results and agents without an OpenPGP key",
			verbs: apikeyVerbs},
		{name: "manifest", summary: "the signed releases mig-loader installs on the endpoints: create, sign, publish, list, disable",
			verbs: manifestVerbs},
		{name: "agentkeys", summary: "the agent keys pinned on this machine, which mig results verifies results against",
			verbs: agentkeysVerbs},
		{name: "audit", args: "[-after SEQ] [-render text|json] [-export FILE]",
			summary: "print the server's audit log, or export it to a file and verify it",
			globals: renderGlobals, flags: auditFlags, verbs: []*command{
				{name: "verify", args: "[-file FILE] [-head SEQ:HASH]",
					summary: "verify the hash chain of the server's log (or of an export file) and the head verified last",
					globals: serverGlobals, flags: auditVerifyFlags},
			}},
		{name: "scribe", moduleVerbs: true, verbs: []*command{
			{name: "convert", args: "-i oval.xml [-o policy.json] [-q]",
				summary: "convert OVAL definitions into a Scribe policy",
				help: "Convert Ubuntu or Red Hat OVAL definitions into a Scribe policy for\n" +
					"mig scribe -path policy.json: one evr test per vulnerable package and fixed\n" +
					"version, with the advisory, CVEs and affected release, depending on the\n" +
					"release checks of the definition.",
				positional: true, flags: scribeConvertFlags},
		}},
		{name: "help", summary: "this help", run: func(r *runner, _ *globals, _ []string) error {
			r.usage(r.stdout)
			return nil
		}},
	}
}

// investigatorVerbs are the verbs of "mig investigator".
var investigatorVerbs = []*command{
	{name: "list", summary: "list the investigators", globals: renderGlobals, run: (*runner).investigatorList},
	{name: "create", args: "-name NAME -pubkey FILE [-perm a,b]",
		summary: "register an investigator with an OpenPGP public key", globals: serverGlobals,
		flags: investigatorCreateFlags},
	{name: "disable", args: "ID", summary: "disable an investigator: the API refuses their requests and signatures",
		globals: serverGlobals, positional: true, run: investigatorStatusCmd("disable", action.InvestigatorDisabled)},
	{name: "enable", args: "ID", summary: "enable an investigator again",
		globals: serverGlobals, positional: true, run: investigatorStatusCmd("enable", action.InvestigatorActive)},
}

// apikeyVerbs are the verbs of "mig apikey".
var apikeyVerbs = []*command{
	{name: "create", args: "-name NAME [-perm a,b] [-expire 720h]",
		summary: "make an API key with your permissions or fewer; it is printed once", globals: serverGlobals,
		flags: apikeyCreateFlags},
	{name: "list", args: "[-all] [-render text|json]", summary: "list your API keys (-all: everyone's)",
		globals: renderGlobals, flags: apikeyListFlags},
	{name: "revoke", args: "KEYID", summary: "revoke an API key at once", globals: serverGlobals,
		positional: true, run: (*runner).apikeyRevoke},
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// lookupCommand returns the command of table named name, or nil.
func lookupCommand(table []*command, name string) *command {
	for _, c := range table {
		if c.name == name {
			return c
		}
	}
	return nil
}

// synopsis is the usage line of c, called as path: "mig results <actionid>
// ..." or, for a group, its verbs: "mig apikey create ... | list ... |
// revoke KEYID".
func (c *command) synopsis(path string) string {
	if c.verbs == nil {
		return strings.TrimSpace(path + " " + c.args)
	}
	var verbs []string
	if c.runs() {
		verbs = append(verbs, c.args)
	}
	for _, v := range c.verbs {
		verbs = append(verbs, strings.TrimSpace(v.name+" "+v.args))
	}
	return path + " " + strings.Join(verbs, " | ")
}

// runs reports whether c runs by itself, not only through a verb.
func (c *command) runs() bool { return c.run != nil || c.flags != nil }

// exec runs c, called as path ("mig apikey"), with args: it picks the verb
// of a group, parses the flags, refuses positional arguments c does not
// take, checks the global flags, and runs c.
func (c *command) exec(r *runner, path string, args []string) error {
	if c.verbs != nil && (!c.runs() || len(args) > 0 && !strings.HasPrefix(args[0], "-")) {
		line := c.synopsis(path)
		if len(args) == 0 {
			return usagef("usage: %s", line)
		}
		verb, rest := args[0], args[1:]
		if isHelp(verb) {
			fmt.Fprintf(r.stdout, "usage: %s\n\n", line)
			if c.summary != "" {
				fmt.Fprintf(r.stdout, "%s\n\n", c.summary)
			}
			fmt.Fprintf(r.stdout, "verbs:\n")
			writeCommands(r.stdout, path, c.verbs)
			return nil
		}
		v := lookupCommand(c.verbs, verb)
		if v == nil {
			return usagef("%s: unknown verb %q; usage: %s", path, verb, line)
		}
		return v.exec(r, path+" "+verb, rest)
	}
	fs := flag.NewFlagSet(path, flag.ContinueOnError)
	run := c.run
	if c.flags != nil {
		run = c.flags(fs)
	}
	g := &globals{}
	g.register(fs, c.globals)
	pos, err := r.parseFlags(fs, args, func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s\n\n", c.synopsis(path))
		if c.help != "" {
			fmt.Fprintf(w, "%s\n\n", c.help)
		}
		fmt.Fprintf(w, "flags:\n")
		fs.SetOutput(w)
		fs.PrintDefaults()
	})
	if err != nil {
		return err
	}
	if !c.positional && len(pos) > 0 {
		return usagef("%s: unexpected argument %q", path, pos[0])
	}
	if err := g.check(); err != nil {
		return err
	}
	return run(r, g, pos)
}

// writeCommands writes two lines per command of table (per verb of a
// group), in the style of flag.PrintDefaults: its synopsis, then its
// summary.
func writeCommands(w io.Writer, path string, table []*command) {
	for _, c := range table {
		p := strings.TrimSpace(path + " " + c.name)
		if c.verbs != nil {
			if c.runs() {
				fmt.Fprintf(w, "  %s\n    \t%s\n", strings.TrimSpace(p+" "+c.args), c.summary)
			}
			writeCommands(w, p, c.verbs)
			continue
		}
		fmt.Fprintf(w, "  %s\n    \t%s\n", strings.TrimSpace(p+" "+c.args), c.summary)
	}
}

// commandNames are the names of the subcommands, for the error naming an
// unknown one.
func commandNames() []string {
	var n []string
	for _, c := range commands {
		if !c.moduleVerbs {
			n = append(n, c.name)
		}
	}
	return n
}
