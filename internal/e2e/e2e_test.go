// Package e2e holds the end-to-end tests: they build the real binaries
// (mig-server, mig-agent with the test module, mig) and run investigations
// through a real relay, store and agent process.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var bins struct {
	dir, server, agent, mig string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mig-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.server = filepath.Join(dir, "mig-server")
	bins.agent = filepath.Join(dir, "mig-agent")
	bins.mig = filepath.Join(dir, "mig")
	builds := [][]string{
		{"build", "-tags", "migtest", "-o", bins.server, "github.com/migplatform/mig/cmd/mig-server"},
		{"build", "-tags", "migtest", "-o", bins.agent, "github.com/migplatform/mig/cmd/mig-agent"},
		{"build", "-tags", "migtest", "-o", bins.mig, "github.com/migplatform/mig/cmd/mig"},
	}
	for _, args := range builds {
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n", strings.Join(args, " "), err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if err := reportTakeover(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a background process whose output is kept for the test log.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("output of %s %s:\n%s", filepath.Base(name), strings.Join(args, " "), p.output())
		}
	})
	return p
}

func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// run runs mig with env and returns stdout, stderr and the exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.mig, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("")
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("mig %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// devPlatform runs "mig-server -dev" on free ports with HOME in a temp dir and
// waits until its local agent is online. It returns the environment for mig.
func devPlatform(t *testing.T, extra ...string) (env []string, p *proc, dir string) {
	t.Helper()
	home := t.TempDir()
	dir = filepath.Join(home, ".mig", "dev")
	env = []string{"HOME=" + home, "MIG_CONFIG="}
	args := append([]string{"-dev", "-api", freeAddr(t), "-relay", freeAddr(t)}, extra...)
	p = start(t, env, bins.server, args...)
	waitFor(t, 30*time.Second, "mig-server -dev to print its API address", func() bool {
		return strings.Contains(p.output(), "API:")
	})
	if !containsArg(extra, "-no-agent") {
		waitFor(t, 30*time.Second, "the local agent to be online", func() bool {
			out, _, code := run(t, env, "agents", "-render", "json")
			return code == 0 && strings.Contains(out, `"online"`)
		})
	}
	return env, p, dir
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

func TestDevQuickStart(t *testing.T) {
	env, _, _ := devPlatform(t)

	t.Run("passwd", func(t *testing.T) {
		out, errOut, code := run(t, env, "file", "-path", "/etc", "-name", "^passwd$")
		if code != 0 || !strings.Contains(out, "/etc/passwd [lastmodified:") {
			t.Fatalf("mig file exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		if !strings.Contains(errOut, "1 agents will be targeted") && !strings.Contains(errOut, "1 agent will be targeted") {
			t.Errorf("no target preview on stderr:\n%s", errOut)
		}
	})

	t.Run("seed6-elasticsearch-cmdline", func(t *testing.T) {
		// A process whose command line carries the marker, as a real
		// elasticsearch would.
		marker := exec.Command("bash", "-c", "exec -a elasticsearch-test-marker sleep 120")
		if err := marker.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = marker.Process.Kill(); _ = marker.Wait() })
		want := fmt.Sprintf("/proc/%d/cmdline", marker.Process.Pid)
		out, errOut, code := run(t, env, "file", "-path", "/proc", "-name", "^cmdline$", "-maxdepth", "2", "-content", "[e]lasticsearch")
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("want %s in the results; exit %d\nstdout:\n%s\nstderr:\n%s", want, code, out, errOut)
		}
	})

	t.Run("seed1-boto", func(t *testing.T) {
		dir, err := os.MkdirTemp("/tmp", "mig-e2e-boto-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		boto := filepath.Join(dir, ".boto")
		if err := os.WriteFile(boto, []byte("[Credentials]\naws_access_key_id = abcdef123456\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, env, "file", "-path", "/", "-name", `^\.boto$`, "-content", "abcdef123456")
		if code != 0 || !strings.Contains(out, boto) {
			t.Fatalf("want %s in the results; exit %d\nstdout:\n%s\nstderr:\n%s", boto, code, out, errOut)
		}
	})

	t.Run("bad-input-refused-before-sending", func(t *testing.T) {
		cases := [][]string{
			{"file", "-path", "/etc", "-md5", "abc"},
			{"file", "-path", "/etc", "-name", "(unclosed"},
			{"file", "-t", "name = ", "-path", "/etc"},
			{"nosuchmodule"},
		}
		for _, args := range cases {
			_, errOut, code := run(t, env, args...)
			if code == 0 || strings.Contains(errOut, "will be targeted") {
				t.Errorf("mig %q: exit %d, stderr:\n%s", args, code, errOut)
			}
		}
	})

	t.Run("action-file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "compliance.json")
		op := `{"module": "file", "parameters": {"searches": {
			"passwd": {"paths": ["/etc"], "names": ["^passwd$"], "contents": ["^root:"]},
			"nosuch": {"paths": ["/etc"], "names": ["^no-such-file-here$"]}}}}`
		if err := os.WriteFile(f, []byte(op), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run(t, env, "action", "-i", f)
		if code != 0 || !strings.Contains(out, "in search 'passwd'") {
			t.Fatalf("mig action -i: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
}

func TestLocalWithoutServer(t *testing.T) {
	env := []string{"HOME=" + t.TempDir(), "MIG_CONFIG="}
	out, errOut, code := run(t, env, "file", "-t", "local", "-path", "/etc", "-name", "^hosts$")
	if code != 0 || !strings.Contains(out, "/etc/hosts") {
		t.Fatalf("mig file -t local: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// TestServerRestartLosesNoResult kills mig-server while an agent is running
// a command, then starts it again: the result is kept by the agent and
// stored once the server is back.
func TestServerRestartLosesNoResult(t *testing.T) {
	apiAddr, relayAddr := freeAddr(t), freeAddr(t)
	home := t.TempDir()
	env := []string{"HOME=" + home, "MIG_CONFIG="}
	args := []string{"-dev", "-no-agent", "-api", apiAddr, "-relay", relayAddr}
	srv := start(t, env, bins.server, args...)
	waitFor(t, 30*time.Second, "mig-server", func() bool { return strings.Contains(srv.output(), "API:") })
	dir := filepath.Join(home, ".mig", "dev")

	// Two agents, so that several results are in flight at once.
	for _, name := range []string{"restart-a", "restart-b"} {
		agentCfg := writeAgentConfigWith(t, dir, "https://"+apiAddr+"/api/v1", func(c map[string]any) { c["name"] = name })
		start(t, nil, bins.agent, "-c", agentCfg)
	}
	waitFor(t, 30*time.Second, "both agents to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Count(out, `"online"`) == 2
	})

	// Launch an action whose module runs for 4 seconds, and kill the server
	// while it runs.
	f := filepath.Join(t.TempDir(), "sleep.json")
	os.WriteFile(f, []byte(`{"name":"sleepy","target":"status='online'","operations":[{"module":"testmodule","parameters":{"mode":"sleep","duration":"4s","marker":"survived"}}]}`), 0o600)
	signed := filepath.Join(t.TempDir(), "signed.json")
	if _, errOut, code := run(t, env, "action", "-i", f, "-s", "-o", signed); code != 0 {
		t.Fatalf("sign: %s", errOut)
	}
	launch := start(t, env, bins.mig, "action", "-i", signed)
	waitFor(t, 20*time.Second, "the commands to be dispatched", func() bool {
		return strings.Contains(launch.output(), "2 agents will be targeted") && strings.Contains(srv.output(), "action dispatched")
	})
	srv.kill()
	launch.kill()
	time.Sleep(5 * time.Second) // the module finishes while the server is down

	srv2 := start(t, env, bins.server, args...)
	waitFor(t, 30*time.Second, "mig-server restart", func() bool { return strings.Contains(srv2.output(), "API:") })
	id := actionID(t, signed)
	waitFor(t, 60*time.Second, "both results to be stored", func() bool {
		out, _, _ := run(t, env, "results", id, "-render", "json")
		n := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `"survived"`) {
				n++
			}
		}
		return n == 2
	})
	// The counters add up: both agents in success, nothing else.
	out, errOut, code := run(t, env, "results", id)
	if n := checkSummary(t, errOut); code != 0 || n.Done != 2 || n.Success != 2 {
		t.Errorf("mig results %s after the restart: exit %d, want 2 of 2 success\nstdout:\n%s\nstderr:\n%s", id, code, out, errOut)
	}
}

func actionID(t *testing.T, signedFile string) string {
	t.Helper()
	b, err := os.ReadFile(signedFile)
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		ID uint64 `json:"id"`
	}
	if err := json.Unmarshal(b, &a); err != nil || a.ID == 0 {
		t.Fatalf("signed action has no id: %v\n%s", err, b)
	}
	return fmt.Sprint(a.ID)
}

// writeAgentConfig writes a mig-agent config that enrolls with the dev
// platform in dir and trusts its investigator.
func writeAgentConfig(t *testing.T, dir, apiURL string) string {
	t.Helper()
	return writeAgentConfigWith(t, dir, apiURL, nil)
}

// writeAgentConfigWith is writeAgentConfig with edit applied to the
// configuration before it is written (to set a name, a keyring, an ACL).
func writeAgentConfigWith(t *testing.T, dir, apiURL string, edit func(cfg map[string]any)) string {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(dir, "enrollment-token"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(filepath.Join(dir, "investigator.pub.asc"))
	if err != nil {
		t.Fatal(err)
	}
	fp := fingerprintOf(t, pub)
	acl := fmt.Sprintf(`{"default":{"minimumweight":1,"investigators":{"dev":{"fingerprint":%q,"weight":1}}}}`, fp)
	cfg := map[string]any{
		"server":          apiURL,
		"ca":              filepath.Join(dir, "ca.pem"),
		"enrollmenttoken": strings.TrimSpace(string(token)),
		"statedir":        filepath.Join(t.TempDir(), "agent-state"),
		"keyringdata":     string(pub),
		"acldata":         acl,
		"heartbeat":       "2s",
		"moduleexe":       bins.agent,
		"tags":            map[string]string{"operator": "IT"},
	}
	if edit != nil {
		edit(cfg)
	}
	b, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var fpRE = regexp.MustCompile(`[0-9A-F]{40}`)

// fingerprintOf asks gpg for the fingerprint of an armored public key.
func fingerprintOf(t *testing.T, pub []byte) string {
	t.Helper()
	cmd := exec.Command("gpg", "--with-colons", "--show-keys")
	cmd.Env = append(os.Environ(), "GNUPGHOME="+t.TempDir())
	cmd.Stdin = bytes.NewReader(pub)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpg --show-keys: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "fpr:") {
			if m := fpRE.FindString(sc.Text()); m != "" {
				return m
			}
		}
	}
	t.Fatalf("no fingerprint in gpg output:\n%s", out)
	return ""
}

var _ = io.Discard
