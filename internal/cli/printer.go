package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Values of -show.
const (
	ShowFound    = "found"
	ShowNotFound = "notfound"
	ShowAll      = "all"
)

// Values of -render.
const (
	RenderText = "text"
	RenderJSON = "json"
)

// printer prints commands' results as they arrive, counts what was found,
// and writes the summary. Results go to out, buffered (thousands of lines
// cost a few writes, not a system call each) and flushed before anything
// goes to errw, by flush and by summary; failures, progress and the summary
// go to errw.
type printer struct {
	out, errw io.Writer
	buf       *bufio.Writer // out, buffered; made on first use
	show      string
	render    string
	verbose   bool
	ops       []action.Operation // the action's operations, to name result modules
	actionID  uint64
	progress  *progress // may be nil
	// signature is the verdict on the signature of the command being
	// printed (mig results), "" if not checked.
	signature string

	found int // commands whose results found something
}

// jsonLine is one line of -render json: one operation result of one
// command, or one failed command.
type jsonLine struct {
	Action        uint64          `json:"action"`
	Command       uint64          `json:"command"`
	AgentID       string          `json:"agentid"`
	Agent         string          `json:"agent"`
	Status        string          `json:"status"`
	Code          string          `json:"code,omitempty"`
	Error         string          `json:"error,omitempty"`
	Operation     *int            `json:"operation,omitempty"`
	Module        string          `json:"module,omitempty"`
	FoundAnything bool            `json:"foundanything"`
	Success       bool            `json:"success"`
	Elements      json.RawMessage `json:"elements,omitempty"`
	Statistics    json.RawMessage `json:"statistics,omitempty"`
	Errors        []string        `json:"errors,omitempty"`
	// Signature is the verdict on the agent's signature (mig results).
	Signature string `json:"signature,omitempty"`
}

func agentLabel(cmd action.Command) string {
	if cmd.AgentName != "" {
		return cmd.AgentName
	}
	if cmd.AgentID != "" {
		return cmd.AgentID
	}
	return fmt.Sprintf("command %d", cmd.ID)
}

// outBufSize is the buffer of a printer's results.
const outBufSize = 64 << 10

// stdout returns the buffered results writer.
func (p *printer) stdout() *bufio.Writer {
	if p.buf == nil {
		p.buf = bufio.NewWriterSize(p.out, outBufSize)
	}
	return p.buf
}

// flush writes the buffered results. A write error sticks: every later
// flush returns it too.
func (p *printer) flush() error {
	if p.buf == nil {
		return nil
	}
	return p.buf.Flush()
}

func (p *printer) moduleOf(i int) string {
	if i < len(p.ops) {
		return p.ops[i].Module
	}
	return ""
}

// command prints one finished command. The progress line, if any, is
// cleared and drawn again by its next update.
func (p *printer) command(cmd action.Command) error {
	if p.progress != nil {
		p.progress.clear()
	}
	name := agentLabel(cmd)
	found := false
	for _, r := range cmd.Results {
		if r.FoundAnything {
			found = true
		}
	}
	if found {
		p.found++
	}
	if cmd.Status != action.CmdSuccess {
		if err := p.flush(); err != nil {
			return err
		}
		msg := cmd.Error
		if msg == "" {
			msg = "no detail"
		}
		code := cmd.Code
		if code == "" {
			code = "no_code"
		}
		fmt.Fprintf(p.errw, "%s %s: %s: %s\n", name, cmd.Status, code, oneLine(msg))
		if p.render == RenderJSON && p.show == ShowAll {
			return p.writeJSON(jsonLine{Action: p.actionID, Command: cmd.ID, AgentID: cmd.AgentID, Agent: name,
				Status: cmd.Status, Code: cmd.Code, Error: cmd.Error})
		}
		return nil
	}
	for i, r := range cmd.Results {
		// A module that failed says why; warnings of one that worked are
		// shown on request.
		if r.Success && p.show != ShowAll && !p.verbose {
			continue
		}
		if len(r.Errors) > 0 {
			if err := p.flush(); err != nil {
				return err
			}
		}
		for _, e := range r.Errors {
			fmt.Fprintf(p.errw, "%s %s error: %s\n", name, p.moduleOf(i), oneLine(e))
		}
	}
	if p.render == RenderJSON {
		for i, r := range cmd.Results {
			if (r.FoundAnything && p.show == ShowNotFound) || (!r.FoundAnything && p.show == ShowFound) {
				continue
			}
			if err := p.writeJSON(jsonLine{Action: p.actionID, Command: cmd.ID, AgentID: cmd.AgentID, Agent: name,
				Status: cmd.Status, Operation: &i, Module: p.moduleOf(i), FoundAnything: r.FoundAnything,
				Success: r.Success, Elements: r.Elements, Statistics: r.Statistics, Errors: r.Errors}); err != nil {
				return err
			}
		}
		return nil
	}
	if !found {
		if p.show != ShowNotFound && p.show != ShowAll {
			return nil
		}
		if _, err := fmt.Fprintf(p.stdout(), "%s did not find anything\n", name); err != nil {
			return err
		}
		// Some modules answer with elements even when they found nothing
		// (scribe: every test false, each with its candidates): their
		// printers show them. Printers print nothing for a result without
		// anything found in it, so other modules add nothing here.
		for i, r := range cmd.Results {
			if !hasElements(r.Elements) {
				continue
			}
			m, ok := module.Lookup(p.moduleOf(i))
			if !ok {
				// Not built into this client: -render json shows the
				// elements; printing them here would say "found".
				continue
			}
			if err := m.PrintResult(p.stdout(), name, r); err != nil {
				return err
			}
		}
		return nil
	}
	if p.show == ShowNotFound {
		return nil
	}
	for i, r := range cmd.Results {
		if !r.FoundAnything {
			continue
		}
		if err := printResult(p.stdout(), p.moduleOf(i), name, r); err != nil {
			return err
		}
	}
	return nil
}

// printResult prints one operation result with its module's printer, or as
// JSON when the module is not built into this client.
func printResult(w io.Writer, modName, agent string, r action.Result) error {
	if m, ok := module.Lookup(modName); ok {
		return m.PrintResult(w, agent, r)
	}
	el := strings.TrimSpace(string(r.Elements))
	if el == "" {
		el = "{}"
	}
	_, err := fmt.Fprintf(w, "%s %s found: %s\n", agent, modName, el)
	return err
}

// hasElements reports whether a result's elements hold anything: not
// absent, null, {} or [].
func hasElements(el json.RawMessage) bool {
	switch strings.TrimSpace(string(el)) {
	case "", "null", "{}", "[]":
		return false
	}
	return true
}

func (p *printer) writeJSON(l jsonLine) error {
	l.Signature = p.signature
	b, err := json.Marshal(l)
	if err != nil {
		return fmt.Errorf("encoding the result of command %d: %w", l.Command, err)
	}
	b = append(b, '\n')
	_, err = p.stdout().Write(b)
	return err
}

// summary flushes the results and writes the final counts of an action.
// A failed flush is returned by the next flush.
func (p *printer) summary(n action.Counters) {
	_ = p.flush()
	if p.progress != nil {
		p.progress.clear()
	}
	fmt.Fprintf(p.errw, "%d of %d agents answered: %d success, %d failed, %d timeout, %d expired, %d cancelled; %d found something (action %d)\n",
		n.Done, n.Sent, n.Success, n.Failed, n.TimeOut, n.Expired, n.Cancelled, p.found, p.actionID)
}

// oneLine keeps a message from an agent on one line of output.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// progress draws the live progress line of a followed action on w: redrawn
// in place on a terminal, otherwise a new line every interval.
type progress struct {
	w        io.Writer
	terminal bool
	start    time.Time
	now      func() time.Time
	interval time.Duration
	last     time.Time
	line     string // the line shown, on a terminal
	lastN    action.Counters
	drawn    bool
}

func newProgress(w io.Writer, start time.Time) *progress {
	return &progress{w: w, terminal: isTerminal(w), start: start, now: time.Now, interval: 5 * time.Second}
}

// isTerminal reports whether w is a character device.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine formats the counters and the elapsed time.
func progressLine(n action.Counters, elapsed time.Duration) string {
	width := len(fmt.Sprint(n.Sent))
	return fmt.Sprintf("[ %*d/%d ] success %d, failed %d, timeout %d, expired %d — %s",
		width, n.Done, n.Sent, n.Success, n.Failed, n.TimeOut, n.Expired, elapsed.Round(100*time.Millisecond))
}

// update shows new counters.
func (pr *progress) update(n action.Counters) {
	now := pr.now()
	line := progressLine(n, now.Sub(pr.start))
	if pr.terminal {
		pr.line = line
		fmt.Fprintf(pr.w, "\r\x1b[K%s", line)
		pr.drawn = true
		return
	}
	if pr.last.IsZero() || (now.Sub(pr.last) >= pr.interval && n != pr.lastN) {
		fmt.Fprintln(pr.w, line)
		pr.last, pr.lastN = now, n
	}
}

// clear erases the progress line on a terminal so other output can be
// written.
func (pr *progress) clear() {
	if pr.terminal && pr.drawn {
		fmt.Fprint(pr.w, "\r\x1b[K")
		pr.drawn = false
	}
}
