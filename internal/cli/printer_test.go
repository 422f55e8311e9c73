package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	_ "github.com/migplatform/mig/internal/module/all"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// sampleCommands are the answers of six agents to one file action.
func sampleCommands() []action.Command {
	found := json.RawMessage(`{"s1":[{"file":"/etc/passwd","fileinfo":{"size":2210,"mode":"-rw-r--r--","lastmodified":"2026-02-03 04:05:06 +0000 UTC"}}]}`)
	return []action.Command{
		{ID: 1, AgentID: "a1", AgentName: "web1.example.net", Status: action.CmdSuccess,
			Results: []action.Result{{FoundAnything: true, Success: true, Elements: found}}},
		{ID: 2, AgentID: "a2", AgentName: "web2.example.net", Status: action.CmdSuccess,
			Results: []action.Result{{Success: true}}},
		{ID: 3, AgentID: "a3", AgentName: "db1.example.net", Status: action.CmdFailed,
			Code: action.CodeBadSignature, Error: "signature 1 does not verify:\nunknown key"},
		{ID: 4, AgentID: "a4", AgentName: "db2.example.net", Status: action.CmdTimeout,
			Code: action.CodeModuleTimeout, Error: "module file did not finish in 5m0s"},
		{ID: 5, AgentID: "a5", AgentName: "", Status: action.CmdSuccess,
			Results: []action.Result{{Success: false, Errors: []string{"walk interrupted"}}}},
		{ID: 6, AgentID: "a6", AgentName: "mail.example.net", Status: action.CmdExpired,
			Code: action.CodeExpired, Error: "action expired before the agent came back"},
	}
}

func printAll(t *testing.T, show, render string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	p := &printer{out: &out, errw: &errb, show: show, render: render, actionID: 1234567,
		ops: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	for _, c := range sampleCommands() {
		if err := p.command(c); err != nil {
			t.Fatalf("printing command %d: %v", c.ID, err)
		}
	}
	p.summary(action.Counters{Sent: 7, Done: 6, InFlight: 1, Success: 3, Failed: 1, TimeOut: 1, Expired: 1})
	return out.String(), errb.String()
}

func TestPrinterGolden(t *testing.T) {
	tests := []struct{ show, render string }{
		{ShowFound, RenderText},
		{ShowNotFound, RenderText},
		{ShowAll, RenderText},
		{ShowFound, RenderJSON},
	}
	for _, tt := range tests {
		t.Run(tt.show+"-"+tt.render, func(t *testing.T) {
			out, errs := printAll(t, tt.show, tt.render)
			golden(t, tt.show+"-"+tt.render+".stdout.golden", out)
			golden(t, tt.show+"-"+tt.render+".stderr.golden", errs)
		})
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		n       action.Counters
		elapsed time.Duration
		want    string
	}{
		{action.Counters{Sent: 120, Done: 37, Success: 35, Failed: 1, TimeOut: 1}, 4210 * time.Millisecond,
			"[  37/120 ] success 35, failed 1, timeout 1, expired 0 — 4.2s"},
		{action.Counters{Sent: 9, Done: 9, Success: 8, Expired: 1}, 65 * time.Second,
			"[ 9/9 ] success 8, failed 0, timeout 0, expired 1 — 1m5s"},
	}
	for _, tt := range tests {
		if got := progressLine(tt.n, tt.elapsed); got != tt.want {
			t.Errorf("progressLine(%+v, %s):\ngot  %q\nwant %q", tt.n, tt.elapsed, got, tt.want)
		}
	}
}

// TestProgressNotTerminal checks that off a terminal the progress line is
// printed as new lines, at most every interval.
func TestProgressNotTerminal(t *testing.T) {
	var b bytes.Buffer
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	pr := newProgress(&b, start)
	pr.now = func() time.Time { return now }
	steps := []struct {
		after time.Duration
		done  int
	}{{0, 0}, {time.Second, 1}, {6 * time.Second, 2}, {7 * time.Second, 3}, {20 * time.Second, 3}, {30 * time.Second, 3}}
	for _, s := range steps {
		now = start.Add(s.after)
		pr.update(action.Counters{Sent: 3, Done: s.done, Success: s.done})
	}
	want := "[ 0/3 ] success 0, failed 0, timeout 0, expired 0 — 0s\n" +
		"[ 2/3 ] success 2, failed 0, timeout 0, expired 0 — 6s\n" +
		"[ 3/3 ] success 3, failed 0, timeout 0, expired 0 — 20s\n"
	if got := b.String(); got != want {
		t.Errorf("progress output:\ngot  %q\nwant %q", got, want)
	}
	if strings.Contains(b.String(), "\r") {
		t.Errorf("progress redraws in place on a non-terminal")
	}
}

func TestParseActionFile(t *testing.T) {
	const unsigned = `{
  "name": "Shellshock IOCs (nginx and more)",
  "target": "environment->>'os' IN ('linux','darwin') AND mode='daemon'",
  "description": {"author": "Julien Vehent", "email": "ulfr@mozilla.com", "revision": 201410301},
  "threat": {"level": "high", "family": "malware"},
  "operations": [
    {"module": "file", "parameters": {"searches": {"iocs": {"paths": ["/usr/bin", "/tmp"],
      "sha256": ["73b0d95541c84965fa42c3e257bb349957b3be626dec9d55efcc6e"]}}}}
  ],
  "syntaxversion": 2
}`
	const bare = `{
  "module": "file",
  "parameters": {
    "searches": {
      "checkforverboselogging": {"paths": ["/etc/ssh/sshd_config"], "contents": ["(?i)^loglevel verbose$"]}
    }
  }
}`
	tests := []struct {
		name     string
		file     string
		data     string
		wantErr  string
		wantName string
		wantOps  int
	}{
		{"MIG action without signatures", "shellshock.json", unsigned, "", "Shellshock IOCs (nginx and more)", 1},
		{"bare operation", "/tmp/compliance/sshd.json", bare, "", "sshd", 1},
		{"malformed", "bad.json", "{\n  \"name\": \"x\",\n  \"target\" \"y\"\n}", "bad.json:3:12: invalid character", "", 0},
		{"truncated", "cut.json", `{"name": "x", `, "cut.json:1:", "", 0},
		{"not an object", "list.json", `[1, 2]`, "list.json:1:", "", 0},
		{"null", "null.json", `null`, "null.json: not a JSON object", "", 0},
		{"unknown action field", "u.json", `{"name":"x","target":"t","operations":[],"colour":1}`, `u.json: invalid action: json: unknown field "colour"`, "", 0},
		{"unknown operation field", "o.json", `{"module":"file","parameters":{},"bogus_field":true}`, `o.json: operation: o.json: json: unknown field "bogus_field"`, "", 0},
		{"bare without parameters", "p.json", `{"module":"file"}`, "p.json: operation file has no parameters", "", 0},
		{"empty", "e.json", ``, "e.json:1:1: unexpected end of JSON input", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseActionFile(tt.file, []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrActionFile) {
					t.Errorf("error %v does not wrap ErrActionFile", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if a.Name != tt.wantName || len(a.Operations) != tt.wantOps || a.SyntaxVersion != 2 {
				t.Errorf("got name %q, %d operations, syntax %d; want %q, %d, 2", a.Name, len(a.Operations), a.SyntaxVersion, tt.wantName, tt.wantOps)
			}
		})
	}
}

func FuzzParseActionFile(f *testing.F) {
	f.Add([]byte(`{"module":"file","parameters":{"searches":{"s":{"paths":["/etc"]}}}}`))
	f.Add([]byte(`{"name":"n","target":"status='online'","validfrom":"2026-01-01T00:00:00Z","expireafter":"2026-01-01T00:05:00Z","operations":[{"module":"file","parameters":{}}],"pgpsignatures":["x"],"syntaxversion":2}`))
	f.Add([]byte(`{"module":"file","operations":[]}`))
	f.Add([]byte("{\n\"name\": \"x\"\n"))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseActionFile("fuzz.json", data)
		if err != nil {
			if !errors.Is(err, ErrActionFile) || !strings.Contains(err.Error(), "fuzz.json") {
				t.Fatalf("error %v does not wrap ErrActionFile or name the file", err)
			}
			return
		}
		if a == nil || a.SyntaxVersion == 0 {
			t.Fatalf("got action %v without a syntax version and no error", a)
		}
		// What loads must encode and validate without panicking.
		_, _ = a.Encoding()
		_ = a.Validate()
	})
}

// recorder is one log shared by a printer's two writers: it keeps what each
// write said and to which stream, and how many writes each stream got.
type recorder struct {
	log    strings.Builder
	writes map[string]int
}

type stream struct {
	r    *recorder
	name string
}

func (s stream) Write(p []byte) (int, error) {
	s.r.writes[s.name]++
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line != "" {
			s.r.log.WriteString(s.name + ": " + line)
		}
	}
	return len(p), nil
}

// TestPrinterBuffersResults checks that many results reach stdout in a few
// writes, and that what goes to stderr still comes after the results
// printed before it.
func TestPrinterBuffersResults(t *testing.T) {
	rec := &recorder{writes: map[string]int{}}
	p := &printer{out: stream{rec, "out"}, errw: stream{rec, "err"}, show: ShowAll, render: RenderText,
		actionID: 1, ops: []action.Operation{{Module: "file", Parameters: json.RawMessage(`{}`)}}}
	const n = 2000
	var want strings.Builder
	for i := 1; i <= n; i++ {
		cmd := action.Command{ID: uint64(i), AgentID: "a", AgentName: "host" + strconv.Itoa(i), Status: action.CmdSuccess,
			Results: []action.Result{{Success: true}}}
		line := "out: host" + strconv.Itoa(i) + " did not find anything\n"
		if i == n/2 {
			cmd.Status, cmd.Code, cmd.Error, cmd.Results = action.CmdFailed, action.CodeExpired, "too late", nil
			line = "err: host" + strconv.Itoa(i) + " failed: expired: too late\n"
		}
		want.WriteString(line)
		if err := p.command(cmd); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	p.summary(action.Counters{Sent: n, Done: n, Success: n - 1, Failed: 1})
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	got := rec.log.String()
	summary := got[strings.LastIndex(got, "err: "):]
	if got = strings.TrimSuffix(got, summary); got != want.String() {
		t.Errorf("output in the wrong order or incomplete (%d bytes, want %d)", len(got), want.Len())
	}
	if !strings.HasPrefix(summary, "err: 2000 of 2000 agents answered") {
		t.Errorf("summary = %q, want it last", summary)
	}
	// About 70 KiB of results: a write per buffer, plus one before the
	// failure's line on stderr.
	if w := rec.writes["out"]; w > 6 {
		t.Errorf("%d results took %d writes to stdout, want a few", n, w)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestPrinterWriteError(t *testing.T) {
	var errb bytes.Buffer
	p := &printer{out: failWriter{}, errw: &errb, show: ShowAll, render: RenderText}
	_ = p.command(action.Command{ID: 1, AgentName: "h", Status: action.CmdSuccess, Results: []action.Result{{Success: true}}})
	p.summary(action.Counters{Sent: 1, Done: 1, Success: 1})
	if err := p.flush(); err == nil {
		t.Errorf("flush after a failed write = nil, want the write error")
	}
}

// notFoundPolicy is a scribe policy whose every test is false on every
// machine (raw objects only).
const notFoundPolicy = `{
  "objects": [{"object": "nss", "raw": {"identifiers": [{"identifier": "libnss3:amd64", "value": "2:3.87.1-1"}]}}],
  "tests": [
    {"test": "libnss3 too old", "object": "nss", "evr": {"operation": "<", "value": "2:3.19.2"}},
    {"test": "libnss3 is 3.17", "object": "nss", "evr": {"operation": "=", "value": "2:3.17.2-1"}}
  ]
}`

// notFoundCommands are answers that found nothing, each with the elements
// its module returns then: the modules that run anywhere are run here, the
// others (network, other processes) are given the elements they return.
func notFoundCommands(t *testing.T) ([]action.Operation, []action.Command) {
	t.Helper()
	dir := t.TempDir()
	policy, err := json.Marshal(map[string]json.RawMessage{"scribedoc": json.RawMessage(notFoundPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	human, err := json.Marshal(map[string]any{"scribedoc": json.RawMessage(notFoundPolicy), "human": true})
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := json.Marshal([]string{dir})
	ops := []action.Operation{
		{Module: "file", Parameters: json.RawMessage(`{"searches":{"s1":{"paths":` + string(paths) + `,"names":["^nothing$"]}}}`)},
		{Module: "scribe", Parameters: policy},
		{Module: "scribe", Parameters: human},
		{Module: "memory", Parameters: json.RawMessage(`{"searches":{"s1":{"names":["^no-such-process-name$"]}}}`)},
		{Module: "netstat", Parameters: json.RawMessage(`{"connectedip":["192.0.2.77"]}`)},
		{Module: "sshkey", Parameters: json.RawMessage(`{"paths":` + string(paths) + `}`)},
	}
	var cmds []action.Command
	for i, op := range ops {
		res, err := module.RunLocal(t.Context(), op.Module, op.Parameters, module.Env{})
		if err != nil {
			t.Fatalf("running %s: %v", op.Module, err)
		}
		if res.FoundAnything || !res.Success || !hasElements(res.Elements) {
			t.Fatalf("%s found %v, success %v, elements %s (%v): want nothing found and elements",
				op.Module, res.FoundAnything, res.Success, res.Elements, res.Errors)
		}
		cmds = append(cmds, action.Command{ID: uint64(i + 1), AgentID: "a", AgentName: op.Module + ".example.net",
			Status: action.CmdSuccess, Results: []action.Result{res}})
	}
	given := []struct{ module, elements string }{
		{"timedrift", `{"localtime":"2026-02-03T04:05:06.000000007Z","hasdrift":false,"alloweddrift":"10s","drift":"1ms","drifts":["pool.ntp.org: 1ms"]}`},
		{"ping", `{"destination":"10.22.75.57","address":"10.22.75.57","protocol":"icmp","count":3,"timeout":5,"reached":0,"probes":[{"seq":1,"result":"no reply"}]}`},
		{"agentdestroy", `{"pid":0,"version":"1.2.3","stopped":false}`},
		{"elsewhere", `{"rows":[1,2]}`}, // a module this client does not have
	}
	for _, g := range given {
		ops = append(ops, action.Operation{Module: g.module, Parameters: json.RawMessage(`{}`)})
		cmds = append(cmds, action.Command{ID: uint64(len(cmds) + 1), AgentID: "a", AgentName: g.module + ".example.net",
			Status: action.CmdSuccess, Results: []action.Result{{Success: true, Elements: json.RawMessage(g.elements)}}})
	}
	return ops, cmds
}

// TestPrinterNotFoundElements checks that a command that found nothing
// prints, after "did not find anything", what its module prints of the
// elements it returned anyway (scribe's false tests) with -show all and
// notfound, and only that: the other modules' empty answers add nothing.
func TestPrinterNotFoundElements(t *testing.T) {
	ops, cmds := notFoundCommands(t)
	for _, show := range []string{ShowAll, ShowNotFound, ShowFound} {
		t.Run(show, func(t *testing.T) {
			var out, errb bytes.Buffer
			for _, c := range cmds {
				// Each command is printed with its own operation, as one
				// action per module.
				op := ops[c.ID-1]
				p := &printer{out: &out, errw: &errb, show: show, render: RenderText, actionID: c.ID,
					ops: []action.Operation{op}}
				if err := p.command(c); err != nil {
					t.Fatalf("printing the %s command: %v", op.Module, err)
				}
				if err := p.flush(); err != nil {
					t.Fatal(err)
				}
			}
			// stderr has the warnings of the modules run here (memory
			// cannot read every process everywhere): not compared.
			golden(t, "notfound-elements-"+show+"-text.stdout.golden", out.String())
		})
	}
}

// TestPrinterNotFoundSeveralOperations checks a command of two operations
// that both found nothing: only the one whose module prints its elements
// adds lines, under the agent's single "did not find anything".
func TestPrinterNotFoundSeveralOperations(t *testing.T) {
	ops, cmds := notFoundCommands(t)
	cmd := action.Command{ID: 1, AgentID: "a", AgentName: "host", Status: action.CmdSuccess,
		Results: []action.Result{cmds[0].Results[0], cmds[1].Results[0]}}
	var out, errb bytes.Buffer
	p := &printer{out: &out, errw: &errb, show: ShowAll, render: RenderText, ops: ops[:2]}
	if err := p.command(cmd); err != nil {
		t.Fatal(err)
	}
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	want := "host did not find anything\n" +
		"host [false] libnss3 too old\n" +
		"host [false] libnss3 is 3.17\n"
	if got := out.String(); got != want {
		t.Errorf("stdout:\ngot  %q\nwant %q", got, want)
	}
}
