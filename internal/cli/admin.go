package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
)

// pageSize is the page size of listings.
const pageSize = 500

// maxPublicKeySize bounds the public key file of "investigator create".
const maxPublicKeySize = 1 << 20

// simpleUsage returns a usage function printing line and the flags of fs.
func simpleUsage(fs *flag.FlagSet, line string) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "usage: %s\n\nflags:\n", line)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
}

// resultsCmd runs "mig results ID": print the finished commands of an
// action and its summary.
func (r *runner) resultsCmd(args []string) error {
	fs := flag.NewFlagSet("mig results", flag.ContinueOnError)
	g := &globals{}
	g.register(fs, []string{flagConfig, flagShow, flagRender, flagVerbose})
	pos, err := r.parseFlags(fs, args, simpleUsage(fs, "mig results <actionid> [-show found|notfound|all] [-render text|json]"))
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("mig results: give one action id (got %d arguments)", len(pos))
	}
	id, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || id == 0 {
		return usagef("mig results: action id %q is not a positive number", pos[0])
	}
	if err := g.check(); err != nil {
		return err
	}
	cfg, err := r.loadConfig(g)
	if err != nil {
		return err
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	a, err := c.Action(r.ctx, id)
	if err != nil {
		return err
	}
	p := &printer{out: r.stdout, errw: r.stderr, show: g.show, render: g.render, verbose: g.verbose,
		ops: a.Operations, actionID: id}
	pending := 0
	var after uint64
	for {
		page, err := c.Commands(r.ctx, id, client.CommandsQuery{After: after, Limit: pageSize})
		if err != nil {
			return err
		}
		for _, cmd := range page.Commands {
			if !action.IsTerminal(cmd.Status) {
				pending++
				continue
			}
			if err := p.command(cmd); err != nil {
				return fmt.Errorf("printing results: %w", err)
			}
		}
		if page.Next == 0 || len(page.Commands) == 0 {
			break
		}
		after = page.Next
	}
	if err := p.flush(); err != nil {
		return fmt.Errorf("printing results: %w", err)
	}
	if pending > 0 {
		fmt.Fprintf(r.stderr, "action %d is %s: %d agents have not answered yet\n", id, a.Status, pending)
	}
	p.summary(a.Counters)
	return nil
}

// agentsCmd runs "mig agents [-t TARGET] [-render text|json]".
func (r *runner) agentsCmd(args []string) error {
	fs := flag.NewFlagSet("mig agents", flag.ContinueOnError)
	g := &globals{}
	g.register(fs, []string{flagConfig, flagTarget, flagRender, flagVerbose})
	pos, err := r.parseFlags(fs, args, simpleUsage(fs, "mig agents [-t TARGET] [-render text|json]"))
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("mig agents: unexpected argument %q", pos[0])
	}
	if err := g.check(); err != nil {
		return err
	}
	cfg, err := r.loadTargetConfig(g)
	if err != nil {
		return err
	}
	tgt := ""
	if g.isSet(flagTarget) {
		if tgt, err = resolveTarget(g.target, true, cfg); err != nil {
			return err
		}
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	var rows [][]string
	after := ""
	for {
		page, err := c.Agents(r.ctx, tgt, pageSize, after)
		if err != nil {
			return err
		}
		for _, ag := range page.Agents {
			if g.render == RenderJSON {
				if err := writeJSONLine(r.stdout, ag, "agent "+ag.ID); err != nil {
					return err
				}
				continue
			}
			rows = append(rows, []string{ag.ID, ag.Name, ag.Environment.OS, ag.Status,
				formatTime(ag.HeartbeatTime), ag.Version})
		}
		if page.Next == "" || len(page.Agents) == 0 {
			break
		}
		after = page.Next
	}
	if g.render == RenderJSON {
		return nil
	}
	if err := writeTable(r.stdout, []string{"ID", "NAME", "OS", "STATUS", "LAST HEARTBEAT", "VERSION"}, rows); err != nil {
		return err
	}
	fmt.Fprintf(r.stderr, "%d agents\n", len(rows))
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// dashboardCmd runs "mig dashboard".
func (r *runner) dashboardCmd(args []string) error {
	fs := flag.NewFlagSet("mig dashboard", flag.ContinueOnError)
	g := &globals{}
	g.register(fs, []string{flagConfig, flagRender, flagVerbose})
	pos, err := r.parseFlags(fs, args, simpleUsage(fs, "mig dashboard [-render text|json]"))
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("mig dashboard: unexpected argument %q", pos[0])
	}
	if err := g.check(); err != nil {
		return err
	}
	cfg, err := r.loadConfig(g)
	if err != nil {
		return err
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	d, err := c.Dashboard(r.ctx)
	if err != nil {
		return err
	}
	if g.render == RenderJSON {
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("encoding the dashboard: %w", err)
		}
		_, err = fmt.Fprintf(r.stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(r.stdout, "agents: %d online, %d idle, %d offline\n\n",
		d.Agents.Online, d.Agents.Idle, d.Agents.Offline)
	var rows [][]string
	for _, a := range d.Actions {
		rows = append(rows, []string{strconv.FormatUint(a.ID, 10), a.Name, a.Status,
			fmt.Sprintf("%d/%d", a.Counters.Done, a.Counters.Sent), strconv.Itoa(a.Counters.Success),
			formatTime(a.StartTime)})
	}
	return writeTable(r.stdout, []string{"ACTION", "NAME", "STATUS", "DONE/SENT", "SUCCESS", "STARTED"}, rows)
}

// investigatorCmd runs "mig investigator list | create | disable | enable".
func (r *runner) investigatorCmd(args []string) error {
	const usageLine = "mig investigator list | create -name NAME -pubkey FILE [-perm a,b] | disable ID | enable ID"
	if len(args) == 0 {
		return usagef("usage: %s", usageLine)
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("mig investigator "+verb, flag.ContinueOnError)
	g := &globals{}
	g.register(fs, []string{flagConfig, flagVerbose})
	var name, pubkey, perms string
	switch verb {
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(r.stdout, "usage: %s\n", usageLine)
		return nil
	case "list":
		g.register(fs, []string{flagRender})
	case "create":
		fs.StringVar(&name, "name", "", "the investigator's `name`")
		fs.StringVar(&pubkey, "pubkey", "", "`file` with the investigator's armored OpenPGP public key")
		fs.StringVar(&perms, "perm", "", "comma-separated `permissions` (action.create, action.read, agent.read, investigator.admin; default action.create,action.read,agent.read)")
	case "disable", "enable":
	default:
		return usagef("mig investigator: unknown verb %q; usage: %s", verb, usageLine)
	}
	pos, err := r.parseFlags(fs, args, simpleUsage(fs, usageLine))
	if err != nil {
		return err
	}
	if err := g.check(); err != nil {
		return err
	}
	var id int64
	switch verb {
	case "list", "create":
		if len(pos) > 0 {
			return usagef("mig investigator %s: unexpected argument %q", verb, pos[0])
		}
	default:
		if len(pos) != 1 {
			return usagef("mig investigator %s: give one investigator id", verb)
		}
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			return usagef("mig investigator %s: id %q is not a positive number", verb, pos[0])
		}
	}
	var key []byte
	var permList []string
	if verb == "create" {
		if strings.TrimSpace(name) == "" {
			return usagef("mig investigator create: -name is required")
		}
		if pubkey == "" {
			return usagef("mig investigator create: -pubkey FILE is required")
		}
		if key, err = readSmallFile(pubkey, maxPublicKeySize); err != nil {
			return asUsage(err)
		}
		permList = splitList(perms)
	}
	cfg, err := r.loadConfig(g)
	if err != nil {
		return err
	}
	c, err := client.New(cfg)
	if err != nil {
		return err
	}
	switch verb {
	case "list":
		invs, err := c.Investigators(r.ctx)
		if err != nil {
			return err
		}
		if g.render == RenderJSON {
			for _, inv := range invs {
				inv.PublicKey = ""
				if err := writeJSONLine(r.stdout, inv, fmt.Sprintf("investigator %d", inv.ID)); err != nil {
					return err
				}
			}
			return nil
		}
		var rows [][]string
		for _, inv := range invs {
			rows = append(rows, []string{strconv.FormatInt(inv.ID, 10), inv.Name, inv.Status,
				inv.Fingerprint, strings.Join(inv.Permissions, ",")})
		}
		return writeTable(r.stdout, []string{"ID", "NAME", "STATUS", "FINGERPRINT", "PERMISSIONS"}, rows)
	case "create":
		inv, err := c.CreateInvestigator(r.ctx, name, string(key), permList)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "investigator %d %q created, key %s, permissions %s\n",
			inv.ID, inv.Name, inv.Fingerprint, strings.Join(inv.Permissions, ","))
		return nil
	case "disable":
		if err := c.SetInvestigatorStatus(r.ctx, id, action.InvestigatorDisabled); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "investigator %d disabled\n", id)
		return nil
	default:
		if err := c.SetInvestigatorStatus(r.ctx, id, action.InvestigatorActive); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "investigator %d enabled\n", id)
		return nil
	}
}

// readSmallFile reads a file of at most max bytes.
func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// splitList splits a comma-separated flag value (-perm a,b) into its
// non-empty, trimmed items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// writeJSONLine writes v as one line of JSON (-render json of the listing
// verbs); what names v in an error.
func writeJSONLine(w io.Writer, v any, what string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
