package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/client"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/sign"

	_ "github.com/migplatform/mig/internal/module/file"
)

type testKey struct {
	priv, pub []byte
	fp        string
}

var (
	keysOnce sync.Once
	keys     [2]testKey
	keysErr  error
)

// investigatorKey returns generated key i (0: alice, 1: bob).
func investigatorKey(t *testing.T, i int) testKey {
	t.Helper()
	keysOnce.Do(func() {
		for j, name := range []string{"Alice", "Bob"} {
			k := &keys[j]
			k.priv, k.pub, k.fp, keysErr = sign.GenerateKey(name, strings.ToLower(name)+"@example.com")
			if keysErr != nil {
				return
			}
		}
	})
	if keysErr != nil {
		t.Fatalf("GenerateKey: %v", keysErr)
	}
	return keys[i]
}

// keyring returns a keyring with both investigators' keys.
func keyring(t *testing.T) *sign.Keyring {
	t.Helper()
	var b bytes.Buffer
	for i := range keys {
		b.Write(investigatorKey(t, i).pub)
	}
	kr, err := sign.ReadKeyring(&b)
	if err != nil {
		t.Fatalf("ReadKeyring: %v", err)
	}
	return kr
}

// writeConfig writes a client configuration for investigator key i that
// points at srv, and returns its path.
func writeConfig(t *testing.T, srv *httptest.Server, i int) string {
	t.Helper()
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "investigator.asc")
	if err := os.WriteFile(keyPath, investigatorKey(t, i).priv, 0o600); err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caPath, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"api":    map[string]string{"url": srv.URL + "/api/v1", "ca": caPath},
		"signer": map[string]string{"keyfile": keyPath},
		"targets": map[string]any{
			"default": "environment->>'os'='linux'",
			"macros":  map[string]string{"dbs": "name LIKE '%db%'"},
		},
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(dir, "migrc")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// untouchable is an API server that fails the test if it is contacted.
func untouchable(t *testing.T) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the server was contacted: %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// run runs Main and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runCtx(t.Context(), args...)
}

func runCtx(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	r := &runner{ctx: ctx, stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		now: time.Now, every: 5 * time.Millisecond, hostname: func() (string, error) { return "testhost", nil }}
	code := r.main(args)
	return code, out.String(), errb.String()
}

// TestRefusedBeforeSending checks that bad command lines are refused with
// exit code 2 and an error naming the bad value, without contacting the
// server.
func TestRefusedBeforeSending(t *testing.T) {
	cfg := writeConfig(t, untouchable(t), 0)
	dir := t.TempDir()
	file := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bigContent := strings.Repeat("a", action.MaxParametersSize)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"bad target", []string{"file", "-c", cfg, "-t", "name LIKE", "-path", "/etc", "-name", "x"}, 2, `bad target "name LIKE"`},
		{"bad target operator", []string{"file", "-c", cfg, "-t", "status=='online'", "-path", "/etc"}, 2, `status=='online'`},
		{"bad regex", []string{"file", "-c", cfg, "-path", "/etc", "-name", "^(pass"}, 2, "^(pass"},
		{"short md5", []string{"file", "-c", cfg, "-path", "/etc", "-md5", "abc123"}, 2, "abc123"},
		{"relative path", []string{"file", "-c", cfg, "-path", "etc", "-name", "x"}, 2, "etc"},
		{"bad show", []string{"file", "-c", cfg, "-path", "/etc", "-show", "some"}, 2, `-show "some"`},
		{"bad render", []string{"file", "-c", cfg, "-path", "/etc", "-render", "xml"}, 2, `-render "xml"`},
		{"bad expiration", []string{"file", "-c", cfg, "-path", "/etc", "-e", "-5s"}, 2, "-e -5s"},
		{"unknown flag", []string{"file", "-c", cfg, "-path", "/etc", "-colour", "red"}, 2, "-colour"},
		{"bad flag value", []string{"file", "-c", cfg, "-path", "/etc", "-maxdepth", "deep"}, 2, `invalid value "deep" for flag -maxdepth`},
		{"flag named for its parameter", []string{"netstat", "-c", cfg, "-lp", "70000"}, 2,
			"mig netstat: flag -lp: invalid netstat parameters: listeningport 70000 is out of range"},
		{"ping flag named", []string{"ping", "-d", "10.0.0.1", "-p", "tcp"}, 2, "mig ping: flag -dp: invalid ping parameters: destinationport 0"},
		{"stray argument", []string{"file", "-c", cfg, "-path", "/etc", "passwd"}, 2, `unexpected argument "passwd"`},
		{"unknown module", []string{"fiel", "-path", "/etc"}, 2, `unknown subcommand or module "fiel"`},
		{"unknown module lists modules", []string{"fiel"}, 2, "modules: " + strings.Join(module.Names(), ", ") + "\n"},
		{"results without id", []string{"results", "-c", cfg}, 2, "one action id"},
		{"results bad id", []string{"results", "-c", cfg, "x12"}, 2, `"x12"`},
		{"agents bad target", []string{"agents", "-c", cfg, "-t", "os='linux'"}, 2, `os='linux'`},
		{"action without file", []string{"action", "-c", cfg}, 2, "-i FILE"},
		{"investigator bad verb", []string{"investigator", "delete", "-c", cfg, "3"}, 2, `unknown verb "delete"`},
		{"investigator bad id", []string{"investigator", "disable", "-c", cfg, "x"}, 2, `id "x"`},
		{"no arguments", nil, 2, "no subcommand"},
		{"malformed action file", []string{"action", "-c", cfg, "-i", file("malformed.json", `{"name": "x", "operations": [`)}, 2, "malformed.json"},
		{"action file unknown module", []string{"action", "-c", cfg, "-i", file("unknown.json", `{"module": "nosuchmodule", "parameters": {}}`)}, 2, `unknown module "nosuchmodule"`},
		{"action file bad regex", []string{"action", "-c", cfg, "-i", file("regex.json",
			`{"module": "file", "parameters": {"searches": {"s": {"paths": ["/etc"], "contents": ["(?i)^loglevel (verbose$"]}}}}`)}, 2, "(?i)^loglevel (verbose$"},
		{"action file short sha256", []string{"action", "-c", cfg, "-i", file("short.json",
			`{"name": "iocs", "target": "environment->>'os' IN ('linux','darwin') AND mode='daemon'", "operations": [{"module": "file", "parameters": {"searches": {"iocs": {"paths": ["/usr/bin"], "sha256": ["e3b0c44298fc1c149afbf4c8996fb924"]}}}}]}`)}, 2, `"e3b0c44298fc1c149afbf4c8996fb924"`},
		{"action file bad target", []string{"action", "-c", cfg, "-i", file("target.json",
			`{"name": "t", "target": "environment->>'os' IN 'linux'", "operations": [{"module": "file", "parameters": {"searches": {"s": {"paths": ["/etc"]}}}}]}`)}, 2, `"environment->>'os' IN 'linux'"`},
		{"oversized action file", []string{"action", "-c", cfg, "-i", file("big.json",
			`{"module": "file", "parameters": {"searches": {"s": {"paths": ["/etc"], "contents": ["`+bigContent+`"]}}}}`)}, 2, "more than the limit"},
		{"oversized flag", []string{"file", "-c", cfg, "-path", "/etc", "-content", bigContent}, 2, "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code: got %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", stderr, tt.wantErr)
			}
			if stdout != "" {
				t.Errorf("stdout: got %q, want nothing", stdout)
			}
		})
	}
}

// printedAction runs mig with -p and returns the signed action it printed.
func printedAction(t *testing.T, args ...string) *action.Action {
	t.Helper()
	code, stdout, stderr := run(t, append(args, "-p")...)
	if code != 0 {
		t.Fatalf("mig %v: exit code %d, stderr %q", args, code, stderr)
	}
	a, err := action.ParseAction([]byte(stdout))
	if err != nil {
		t.Fatalf("mig %v -p printed %q: %v", args, stdout, err)
	}
	if _, err := sign.VerifyAction(a, keyring(t)); err != nil {
		t.Errorf("mig %v -p: signature does not verify: %v", args, err)
	}
	return a
}

// TestFlags checks global flags mixed with module flags, the target
// defaults and macros, and the action built from them.
func TestFlags(t *testing.T) {
	cfg := writeConfig(t, untouchable(t), 0)
	tests := []struct {
		name       string
		args       []string
		wantTarget string
		wantExpire time.Duration
		wantParams string
	}{
		{"globals first", []string{"file", "-c", cfg, "-t", "name='a'", "-e", "20s", "-path", "/etc", "-name", "^passwd$"},
			"name='a'", 20 * time.Second, `{"searches":{"s1":{"names":["^passwd$"],"paths":["/etc"]}}}`},
		{"globals mixed", []string{"file", "-path", "/etc", "-c", cfg, "-name", "^passwd$", "-e", "1m", "-t", "name='a'"},
			"name='a'", time.Minute, `{"searches":{"s1":{"names":["^passwd$"],"paths":["/etc"]}}}`},
		{"macro", []string{"file", "-c", cfg, "-t", "dbs", "-path", "/etc"},
			"name LIKE '%db%'", DefaultExpiration, `{"searches":{"s1":{"paths":["/etc"]}}}`},
		{"all", []string{"file", "-c", cfg, "-t", "all", "-path", "/etc"},
			"status='online'", DefaultExpiration, `{"searches":{"s1":{"paths":["/etc"]}}}`},
		{"config default", []string{"file", "-c", cfg, "-path", "/usr", "-path", "/bin", "-md5", "eefc66a1e978dc9d825f28702106d4d5", "-matchany"},
			"environment->>'os'='linux'", DefaultExpiration,
			`{"searches":{"s1":{"md5":["eefc66a1e978dc9d825f28702106d4d5"],"options":{"matchany":true},"paths":["/usr","/bin"]}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := printedAction(t, tt.args...)
			if a.Target != tt.wantTarget {
				t.Errorf("target: got %q, want %q", a.Target, tt.wantTarget)
			}
			if got := a.ExpireAfter.Sub(a.ValidFrom) - client.ClockSkew; got != tt.wantExpire {
				t.Errorf("expiration: got %s, want %s", got, tt.wantExpire)
			}
			if skew := time.Since(a.ValidFrom); skew < 9*time.Second || skew > time.Minute {
				t.Errorf("validfrom %s is %s before now, want about 10s", a.ValidFrom, skew)
			}
			if len(a.Operations) != 1 || a.Operations[0].Module != "file" {
				t.Fatalf("operations: got %+v, want one file operation", a.Operations)
			}
			canon, err := action.Canonical(a.Operations[0].Parameters)
			if err != nil {
				t.Fatal(err)
			}
			if string(canon) != tt.wantParams {
				t.Errorf("parameters: got %s, want %s", canon, tt.wantParams)
			}
			if a.ID == 0 || a.ID >= 1<<53 {
				t.Errorf("id: got %d, want in [1, 2^53)", a.ID)
			}
		})
	}
}

// TestLocal runs a module inside mig with -t local: no server, no config.
func TestLocal(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "passwd"), []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MIG_CONFIG", filepath.Join(dir, "does-not-exist"))

	code, stdout, stderr := run(t, "file", "-t", "local", "-path", dir, "-name", "^hosts$")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	want := regexp.MustCompile(`^testhost ` + regexp.QuoteMeta(filepath.Join(dir, "hosts")) +
		` \[lastmodified:[^,]+, mode:-rw-r--r--, size:20\] in search 's1'\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("stdout: got %q, want a line matching %s", stdout, want)
	}

	code, stdout, _ = run(t, "file", "-path", dir, "-t", "local", "-name", "^nothing$", "-show", "notfound")
	if code != 0 || stdout != "testhost did not find anything\n" {
		t.Errorf("-show notfound: got %d %q, want 0 %q", code, stdout, "testhost did not find anything\n")
	}

	code, stdout, _ = run(t, "file", "-path", dir, "-t", "local", "-name", "^hosts$", "-render", "json")
	var line jsonLine
	if err := json.Unmarshal([]byte(stdout), &line); code != 0 || err != nil {
		t.Fatalf("-render json: got %d %q (%v), want one JSON line", code, stdout, err)
	}
	if !line.FoundAnything || line.Agent != "testhost" || line.Module != "file" {
		t.Errorf("-render json: got %+v", line)
	}
}

// TestHelp checks the help of mig and of a module.
func TestHelp(t *testing.T) {
	code, stdout, _ := run(t, "help")
	for _, want := range []string{"file", "action", "results", "agents", "dashboard", "investigator", "-show"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("mig help: got %d %q, want it to mention %q", code, stdout, want)
		}
	}
	code, stdout, _ = run(t, "file", "-h")
	if code != 0 || !strings.Contains(stdout, "-maxdepth") || !strings.Contains(stdout, "global flags") {
		t.Errorf("mig file -h: got %d %q, want the module's flags and the global flags", code, stdout)
	}
	modPart, _, _ := strings.Cut(stdout, "global flags")
	if strings.Contains(modPart, "-render") {
		t.Errorf("mig file -h lists -render among the module's flags:\n%s", stdout)
	}
}

// fakeAPI is an httptest stand-in for the MIG API of docs/API.md: it counts
// agents, verifies and stores actions, and answers for agents at once.
type fakeAPI struct {
	t       *testing.T
	kr      *sign.Keyring
	agents  int
	mu      sync.Mutex
	actions map[uint64]*action.Action
	cmds    map[uint64][]action.Command
	signers map[uint64][]string
	queries []string // queries of the agents and investigator status requests
	// answer makes agent i's command for an action.
	answer func(i int, a *action.Action) action.Command
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fail := func(status int, code, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "MIG-PGP ")
	if _, err := sign.VerifyToken(f.kr, tok, time.Now()); !ok || err != nil {
		fail(401, "unauthenticated", fmt.Sprint(err))
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/agents/count", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]int{"count": f.agents})
	})
	mux.HandleFunc("POST /api/v1/actions", func(w http.ResponseWriter, r *http.Request) {
		var a action.Action
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			fail(400, "bad_request", err.Error())
			return
		}
		fps, err := sign.VerifyAction(&a, f.kr)
		if err != nil {
			fail(400, "bad_signature", err.Error())
			return
		}
		if f.actions[a.ID] != nil {
			fail(409, "conflict", fmt.Sprintf("action id %d is already used", a.ID))
			return
		}
		f.actions[a.ID], f.signers[a.ID] = &a, fps
		for i := range f.agents {
			c := f.answer(i, &a)
			c.ID = uint64(i + 1)
			f.cmds[a.ID] = append(f.cmds[a.ID], c)
		}
		a.Status = action.StatusInFlight
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(a)
	})
	mux.HandleFunc("GET /api/v1/actions/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(r.PathValue("id"), 10, 64)
		a := f.actions[id]
		if a == nil {
			fail(404, "not_found", fmt.Sprintf("action %d not found", id))
			return
		}
		out := *a
		out.Status = action.StatusCompleted
		for _, c := range f.cmds[id] {
			out.Counters.Sent++
			if !action.IsTerminal(c.Status) {
				out.Counters.InFlight++
				out.Status = action.StatusInFlight
				continue
			}
			out.Counters.Done++
			switch c.Status {
			case action.CmdSuccess:
				out.Counters.Success++
			case action.CmdFailed:
				out.Counters.Failed++
			case action.CmdTimeout:
				out.Counters.TimeOut++
			case action.CmdExpired:
				out.Counters.Expired++
			}
		}
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /api/v1/actions/{id}/commands", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(r.PathValue("id"), 10, 64)
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		out := []action.Command{}
		for _, c := range f.cmds[id] {
			if c.ID > after {
				out = append(out, c)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"commands": out, "next": 0})
	})
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		// Two pages: the first ends with next "b".
		page := []action.Agent{{ID: "a", Name: "web1", Status: "online", Version: "1.0",
			Environment: action.Environment{OS: "linux"}, HeartbeatTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			{ID: "b", Name: "db1", Status: "idle", Version: "1.0", Environment: action.Environment{OS: "darwin"}}}
		next := "b"
		if r.URL.Query().Get("after") == "b" {
			page, next = []action.Agent{{ID: "c", Name: "mail", Status: "offline", Version: "0.9"}}, ""
		}
		f.queries = append(f.queries, r.URL.RawQuery)
		json.NewEncoder(w).Encode(map[string]any{"agents": page, "next": next})
	})
	mux.HandleFunc("GET /api/v1/investigators", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{"investigators": []action.Investigator{
			{ID: 1, Name: "Alice", Fingerprint: "AAAA", Status: "active", Permissions: []string{"action.create", "action.read"}}}})
	})
	mux.HandleFunc("POST /api/v1/investigators/{id}/status", func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		f.queries = append(f.queries, r.PathValue("id")+"="+body["status"])
		w.Write([]byte("{}"))
	})
	mux.HandleFunc("GET /api/v1/dashboard", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"agents":{"online":4,"idle":1,"offline":2},"actions":[{"id":77,"name":"file /etc","status":"completed","counters":{"sent":5,"done":5,"success":5}}]}`))
	})
	mux.ServeHTTP(w, r)
}

func newFakeAPI(t *testing.T, agents int, answer func(int, *action.Action) action.Command) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, kr: keyring(t), agents: agents, actions: map[uint64]*action.Action{},
		cmds: map[uint64][]action.Command{}, signers: map[uint64][]string{}, answer: answer}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

// fileAnswer makes agent i find /etc/passwd when i is even, fail when i is
// 3, and find nothing otherwise.
func fileAnswer(i int, a *action.Action) action.Command {
	name := fmt.Sprintf("host%d", i)
	switch {
	case i == 3:
		return action.Command{AgentID: name, AgentName: name, Status: action.CmdFailed,
			Code: action.CodeModuleFailed, Error: "module file: exit status 2"}
	case i%2 == 0:
		return action.Command{AgentID: name, AgentName: name, Status: action.CmdSuccess, Results: []action.Result{{
			FoundAnything: true, Success: true,
			Elements: json.RawMessage(`{"s1":[{"file":"/etc/passwd","fileinfo":{"size":1234,"mode":"-rw-r--r--","lastmodified":"2026-01-01 00:00:00 +0000 UTC"}}]}`)}}}
	}
	return action.Command{AgentID: name, AgentName: name, Status: action.CmdSuccess,
		Results: []action.Result{{Success: true}}}
}

// TestLaunch launches an action against the fake API and checks what mig
// prints while following it.
func TestLaunch(t *testing.T) {
	f, srv := newFakeAPI(t, 5, fileAnswer)
	cfg := writeConfig(t, srv, 0)
	code, stdout, stderr := run(t, "file", "-c", cfg, "-t", "all", "-path", "/etc", "-name", "^passwd$", "-show", "all")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	wantOut := "host0 /etc/passwd [lastmodified:2026-01-01 00:00:00 +0000 UTC, mode:-rw-r--r--, size:1234] in search 's1'\n" +
		"host1 did not find anything\n" +
		"host2 /etc/passwd [lastmodified:2026-01-01 00:00:00 +0000 UTC, mode:-rw-r--r--, size:1234] in search 's1'\n" +
		"host4 /etc/passwd [lastmodified:2026-01-01 00:00:00 +0000 UTC, mode:-rw-r--r--, size:1234] in search 's1'\n"
	if stdout != wantOut {
		t.Errorf("stdout:\ngot  %q\nwant %q", stdout, wantOut)
	}
	if len(f.actions) != 1 {
		t.Fatalf("got %d actions launched, want 1", len(f.actions))
	}
	var id uint64
	for id = range f.actions {
	}
	for _, want := range []string{
		"5 agents will be targeted\n",
		"host3 failed: module_failed: module file: exit status 2\n",
		fmt.Sprintf("5 of 5 agents answered: 4 success, 1 failed, 0 timeout, 0 expired, 0 cancelled; 3 found something (action %d)\n", id),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr: got %q, want it to contain %q", stderr, want)
		}
	}
	if got := f.actions[id].Target; got != "status='online'" {
		t.Errorf("launched target: got %q, want status='online'", got)
	}

	// mig results prints the same afterwards.
	code, stdout2, _ := run(t, "results", strconv.FormatUint(id, 10), "-c", cfg, "-show", "all")
	if code != 0 || stdout2 != wantOut {
		t.Errorf("mig results: got %d\n%q\nwant 0\n%q", code, stdout2, wantOut)
	}
}

// TestNoAgent checks that an action targeting nobody is not launched.
func TestNoAgent(t *testing.T) {
	f, srv := newFakeAPI(t, 0, fileAnswer)
	cfg := writeConfig(t, srv, 0)
	code, _, stderr := run(t, "file", "-c", cfg, "-path", "/etc")
	if code != 1 || !strings.Contains(stderr, "0 agents will be targeted") {
		t.Errorf("got exit code %d, stderr %q; want 1 and the preview", code, stderr)
	}
	if len(f.actions) != 0 {
		t.Errorf("an action was launched")
	}
}

// TestTwoInvestigators has alice sign an action file and bob add his
// signature and launch it.
func TestTwoInvestigators(t *testing.T) {
	f, srv := newFakeAPI(t, 2, fileAnswer)
	alice, bob := writeConfig(t, srv, 0), writeConfig(t, srv, 1)
	dir := t.TempDir()
	bare := filepath.Join(dir, "sshd-compliance.json")
	if err := os.WriteFile(bare, []byte(`{"module": "file", "parameters": {"searches": {"checkforverboselogging": {
		"paths": ["/etc/ssh/sshd_config"], "contents": ["(?i)^loglevel verbose$"]}}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(dir, "a.signed.json")
	code, stdout, stderr := run(t, "action", "-c", alice, "-i", bare, "-s", "-o", signed, "-t", "dbs")
	if code != 0 || stdout != "" {
		t.Fatalf("alice -s: exit code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	a, err := LoadActionFile(signed)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "sshd-compliance" || a.Target != "name LIKE '%db%'" || len(a.PGPSignatures) != 1 {
		t.Errorf("alice's file: got name %q target %q %d signatures", a.Name, a.Target, len(a.PGPSignatures))
	}

	// Alice cannot sign twice, and nobody can retarget a signed action.
	if code, _, stderr := run(t, "action", "-c", alice, "-i", signed, "-s"); code == 0 {
		t.Errorf("alice signing twice: exit code 0, want an error (stderr %q)", stderr)
	}
	if code, _, stderr := run(t, "action", "-c", bob, "-i", signed, "-t", "all"); code != 2 || !strings.Contains(stderr, "-t cannot change") {
		t.Errorf("retargeting a signed action: got %d %q, want 2", code, stderr)
	}

	code, _, stderr = run(t, "action", "-c", bob, "-i", signed)
	if code != 0 {
		t.Fatalf("bob launching: exit code %d, stderr %q", code, stderr)
	}
	got := f.signers[a.ID]
	want := []string{investigatorKey(t, 0).fp, investigatorKey(t, 1).fp}
	if len(got) != 2 || !(got[0] == want[0] && got[1] == want[1] || got[0] == want[1] && got[1] == want[0]) {
		t.Errorf("signers of the launched action: got %v, want %v", got, want)
	}
	if l := f.actions[a.ID]; l == nil || !l.ValidFrom.Equal(a.ValidFrom) || !l.ExpireAfter.Equal(a.ExpireAfter) {
		t.Errorf("bob's launch changed the action's times")
	}
}

// TestInterrupt checks that ending the context stops following and says how
// to get the results later.
func TestInterrupt(t *testing.T) {
	f, srv := newFakeAPI(t, 3, func(i int, a *action.Action) action.Command {
		if i == 0 {
			return fileAnswer(0, a)
		}
		return action.Command{AgentID: "slow", AgentName: "slow", Status: action.CmdSent}
	})
	cfg := writeConfig(t, srv, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	code, stdout, stderr := runCtx(ctx, "file", "-c", cfg, "-path", "/etc", "-name", "^passwd$")
	if code != ExitInterrupted {
		t.Errorf("exit code: got %d, want %d (stderr %q)", code, ExitInterrupted, stderr)
	}
	if len(f.actions) != 1 {
		t.Fatalf("got %d actions launched, want 1", len(f.actions))
	}
	var id uint64
	for id = range f.actions {
	}
	if want := fmt.Sprintf("mig results %d\n", id); !strings.Contains(stderr, want) {
		t.Errorf("stderr: got %q, want it to contain %q", stderr, want)
	}
	if !strings.HasPrefix(stdout, "host0 /etc/passwd ") {
		t.Errorf("stdout: got %q, want host0's result printed before the interrupt", stdout)
	}
}

// TestAdmin checks agents, dashboard and investigator subcommands.
func TestAdmin(t *testing.T) {
	f, srv := newFakeAPI(t, 0, fileAnswer)
	cfg := writeConfig(t, srv, 0)
	tests := []struct {
		args      []string
		wantOut   string
		wantQuery string
	}{
		{[]string{"agents", "-c", cfg, "-t", "dbs"},
			"ID  NAME  OS      STATUS   LAST HEARTBEAT        VERSION\n" +
				"a   web1  linux   online   2026-01-02T03:04:05Z  1.0\n" +
				"b   db1   darwin  idle     -                     1.0\n" +
				"c   mail          offline  -                     0.9\n",
			"limit=500&target=name+LIKE+%27%25db%25%27"},
		{[]string{"agents", "-c", cfg, "-render", "json"}, `{"id":"a","name":"web1"`, "limit=500"},
		{[]string{"dashboard", "-c", cfg},
			"agents: 4 online, 1 idle, 2 offline\n\n" +
				"ACTION  NAME       STATUS     DONE/SENT  SUCCESS  STARTED\n" +
				"77      file /etc  completed  5/5        5        -\n", ""},
		{[]string{"investigator", "list", "-c", cfg},
			"ID  NAME   STATUS  FINGERPRINT  PERMISSIONS\n1   Alice  active  AAAA         action.create,action.read\n", ""},
		{[]string{"investigator", "disable", "3", "-c", cfg}, "investigator 3 disabled\n", "3=disabled"},
		{[]string{"investigator", "enable", "-c", cfg, "4"}, "investigator 4 enabled\n", "4=active"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			f.mu.Lock()
			f.queries = nil
			f.mu.Unlock()
			code, stdout, stderr := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr)
			}
			if !strings.HasPrefix(stdout, tt.wantOut) {
				t.Errorf("stdout:\ngot  %q\nwant %q", stdout, tt.wantOut)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if tt.wantQuery != "" && (len(f.queries) == 0 || f.queries[0] != tt.wantQuery) {
				t.Errorf("requests: got %q, want the first to be %q", f.queries, tt.wantQuery)
			}
		})
	}
}

// TestLocalShowAllNotFound runs a scribe policy whose tests are all false
// with -t local: -show all and notfound print the agent that found nothing,
// then the false tests; -show found prints nothing.
func TestLocalShowAllNotFound(t *testing.T) {
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(notFoundPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MIG_CONFIG", filepath.Join(t.TempDir(), "does-not-exist"))
	const all = "testhost did not find anything\n" +
		"testhost [false] libnss3 too old\n" +
		"testhost [false] libnss3 is 3.17\n"
	for _, tt := range []struct{ show, want string }{
		{ShowAll, all},
		{ShowNotFound, all},
		{ShowFound, ""},
	} {
		code, stdout, stderr := run(t, "scribe", "-t", "local", "-show", tt.show, "-path", policy)
		if code != ExitOK || stdout != tt.want {
			t.Errorf("-show %s: exit %d, stdout %q (stderr %q); want %d, %q", tt.show, code, stdout, stderr, ExitOK, tt.want)
		}
	}
}

// parseCounter is a module that counts how often its parameters are
// parsed, registered for TestLocalParsesOnce.
type parseCounter struct{ parses *atomic.Int64 }

var parseCount = parseCounter{parses: new(atomic.Int64)}

func init() { module.Register(parseCount) }

func (parseCounter) Name() string    { return "parsecount" }
func (parseCounter) Summary() string { return "counts parameter parses, for tests" }

func (c parseCounter) ParseParameters(raw []byte) (module.Runner, error) {
	c.parses.Add(1)
	var p struct {
		Marker string `json:"marker"`
	}
	if err := json.Unmarshal(raw, &p); err != nil || p.Marker == "" {
		return nil, fmt.Errorf("parsecount parameters %s: want a marker", raw)
	}
	return parseCountRunner(p.Marker), nil
}

func (c parseCounter) SetFlags(fs *flag.FlagSet) module.BuildFunc {
	marker := fs.String("marker", "m", "returned as found")
	return func() (json.RawMessage, module.Runner, error) {
		return module.Build(c, map[string]string{"marker": *marker})
	}
}

func (parseCounter) PrintResult(w io.Writer, agent string, r action.Result) error {
	if !r.FoundAnything {
		return nil
	}
	_, err := fmt.Fprintf(w, "%s %s\n", agent, r.Elements)
	return err
}

type parseCountRunner string

func (m parseCountRunner) Run(context.Context, module.Env) action.Result {
	el, _ := json.Marshal(string(m))
	return action.Result{FoundAnything: true, Success: true, Elements: el}
}

// TestLocalParsesOnce checks that -t local runs what checking the
// parameters parsed, instead of parsing them again to run them: once per
// operation, from flags and from an action file.
func TestLocalParsesOnce(t *testing.T) {
	t.Setenv("MIG_CONFIG", filepath.Join(t.TempDir(), "does-not-exist"))
	parseCount.parses.Store(0)
	code, stdout, stderr := run(t, "parsecount", "-t", "local", "-marker", "flags")
	if code != ExitOK || stdout != "testhost \"flags\"\n" {
		t.Fatalf("mig parsecount: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := parseCount.parses.Load(); n != 1 {
		t.Errorf("mig parsecount -t local parsed the parameters %d times, want 1", n)
	}

	file := filepath.Join(t.TempDir(), "action.json")
	doc := `{"name": "two", "operations": [{"module": "parsecount", "parameters": {"marker": "one"}},
	  {"module": "parsecount", "parameters": {"marker": "two"}}]}`
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	parseCount.parses.Store(0)
	code, stdout, stderr = run(t, "action", "-t", "local", "-i", file)
	if code != ExitOK || stdout != "testhost \"one\"\ntesthost \"two\"\n" {
		t.Fatalf("mig action -t local: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := parseCount.parses.Load(); n != 2 {
		t.Errorf("mig action -t local with 2 operations parsed parameters %d times, want 2", n)
	}
}
