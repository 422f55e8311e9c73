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

// resultsCmd runs "mig results ID": print the finished commands of an
// action and its summary, verifying each result's signature against the
// agent keys pinned on this machine (pinFile, or ~/.mig/agentkeys with
// trust on first use). With requireSigned, only results signed by a pinned
// key are printed and any other fails the command.
func (r *runner) resultsCmd(g *globals, pos []string, pinFile string, requireSigned bool) error {
	if len(pos) != 1 {
		return usagef("mig results: give one action id (got %d arguments)", len(pos))
	}
	id, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || id == 0 {
		return usagef("mig results: action id %q is not a positive number", pos[0])
	}
	c, err := r.client(g)
	if err != nil {
		return err
	}
	a, err := c.Action(r.ctx, id)
	if err != nil {
		return err
	}
	v, err := newResultVerifier(r.stderr, pinFile, a)
	if err != nil {
		return err
	}
	p := &printer{out: r.stdout, errw: r.stderr, show: g.show, render: g.render, verbose: g.verbose,
		ops: a.Operations, actionID: id}
	// Warnings go to stderr after the results printed before them.
	v.beforeWarning = func() { _ = p.flush() }
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
			p.signature = v.check(cmd)
			if requireSigned && !trusted(p.signature) {
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
	return v.finish(requireSigned)
}

// agentsCmd runs "mig agents [-t TARGET] [-render text|json]".
func (r *runner) agentsCmd(g *globals, _ []string) error {
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
func (r *runner) dashboardCmd(g *globals, _ []string) error {
	c, err := r.client(g)
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

// client returns a client with the configuration of -c and the logger of
// -v.
func (r *runner) client(g *globals) (*client.Client, error) {
	cfg, err := r.loadConfig(g)
	if err != nil {
		return nil, err
	}
	return client.New(cfg)
}

// investigatorList runs "mig investigator list".
func (r *runner) investigatorList(g *globals, _ []string) error {
	c, err := r.client(g)
	if err != nil {
		return err
	}
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
}

// investigatorCreateFlags are the flags of "mig investigator create -name
// NAME -pubkey FILE [-perm a,b]", and its run.
func investigatorCreateFlags(fs *flag.FlagSet) runFunc {
	name := fs.String("name", "", "the investigator's `name`")
	pubkey := fs.String("pubkey", "", "`file` with the investigator's armored OpenPGP public key")
	perms := fs.String("perm", "", "comma-separated `permissions` (action.create, action.read, agent.read, investigator.admin; default action.create,action.read,agent.read)")
	return func(r *runner, g *globals, _ []string) error {
		if strings.TrimSpace(*name) == "" {
			return usagef("mig investigator create: -name is required")
		}
		if *pubkey == "" {
			return usagef("mig investigator create: -pubkey FILE is required")
		}
		key, err := readSmallFile(*pubkey, maxPublicKeySize)
		if err != nil {
			return asUsage(err)
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		inv, err := c.CreateInvestigator(r.ctx, *name, string(key), splitList(*perms))
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "investigator %d %q created, key %s, permissions %s\n",
			inv.ID, inv.Name, inv.Fingerprint, strings.Join(inv.Permissions, ","))
		return nil
	}
}

// investigatorStatusCmd is the run of "mig investigator disable ID" and
// "mig investigator enable ID" (verb): it sets the investigator's status.
func investigatorStatusCmd(verb, status string) runFunc {
	return func(r *runner, g *globals, pos []string) error {
		if len(pos) != 1 {
			return usagef("mig investigator %s: give one investigator id", verb)
		}
		id, err := strconv.ParseInt(pos[0], 10, 64)
		if err != nil || id <= 0 {
			return usagef("mig investigator %s: id %q is not a positive number", verb, pos[0])
		}
		c, err := r.client(g)
		if err != nil {
			return err
		}
		if err := c.SetInvestigatorStatus(r.ctx, id, status); err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "investigator %d %sd\n", id, verb)
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
