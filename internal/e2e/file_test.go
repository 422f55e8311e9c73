package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/sha3"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFileModule runs the file module's newer filters through the whole
// platform: mig, the server, the relay and the agent's module child
// process.
func TestFileModule(t *testing.T) {
	env, _, _ := devPlatform(t)
	dir, err := os.MkdirTemp("/tmp", "mig-e2e-file-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte("user=alice\ntoken=e2e-secret-7\n"))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	tool := []byte("#!/bin/sh\necho e2e\n")
	files := map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"app.log.gz": {gz.Bytes(), 0o644},
		"tool":       {tool, 0o755},
		"keys":       {[]byte("# keys\nssh-ed25519 AAAAgood alice\nssh-ed25519 AAAAevil mallory\n"), 0o600},
	}
	for name, f := range files {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	sum := sha3.Sum256(tool)
	tests := []struct {
		name string
		args []string
		want []string // each must be in stdout
	}{
		{"decompress", []string{"file", "-path", dir, "-content", "^token=e2e-secret-7$", "-decompress"},
			[]string{filepath.Join(dir, "app.log.gz") + " [lastmodified:"}},
		{"sha3, mode and size, matchany with checks", []string{"file", "-path", dir, "-sha3", hex.EncodeToString(sum[:]),
			"-mode", "^-rwx", "-size", ">1m", "-matchany"},
			[]string{filepath.Join(dir, "tool") + " [", "on checks mode='^-rwx' sha3='" + hex.EncodeToString(sum[:]) + "'"}},
		{"macroal with mismatch finds the rogue key", []string{"file", "-path", dir, "-name", "^keys$",
			"-content", "^(#.*|ssh-ed25519 AAAAgood .*)$", "-macroal", "-mismatch", "content"},
			[]string{filepath.Join(dir, "keys") + " [lastmodified:", "mode:-rw-------"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := run(t, env, tt.args...)
			if code != 0 {
				t.Fatalf("mig %q: exit %d\nstdout:\n%s\nstderr:\n%s", tt.args, code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("mig %q: stdout lacks %q\nstdout:\n%s\nstderr:\n%s", tt.args, w, out, errOut)
				}
			}
		})
	}
	t.Run("bad filters refused before sending", func(t *testing.T) {
		for _, tt := range []struct {
			args []string
			want string // in stderr
		}{
			{[]string{"file", "-path", dir, "-size", "10q"}, "10q"},
			{[]string{"file", "-path", dir, "-mtime", "90"}, "90"},
			{[]string{"file", "-path", dir, "-sha3", "abcd"}, "abcd"},
			{[]string{"file", "-path", dir, "-mismatch", "colour"}, "colour"},
			{[]string{"file", "-path", dir, "-md5", strings.Repeat("z", 32)}, strings.Repeat("z", 32)},
			{[]string{"file", "-path", dir, "-sha256", strings.Repeat("a", 128)}, strings.Repeat("a", 128)},
			{[]string{"file", "-path", dir, "-content", "a(b"}, "a(b"},
			{[]string{"file", "-path", dir, "-name", "!x)"}, "!x)"},
			{[]string{"file", "-path", dir, "-mode", "[rw"}, "[rw"},
			{[]string{"file", "-name", "^passwd$"}, "no paths"},
			{[]string{"file", "-path", "relative/dir"}, "relative/dir"},
			{[]string{"file", "-path", dir, "-colour", "red"}, "-colour"},
		} {
			_, errOut, code := run(t, env, tt.args...)
			if code == 0 || strings.Contains(errOut, "will be targeted") || !strings.Contains(errOut, tt.want) {
				t.Errorf("mig %q: exit %d, want an error naming %q before anything is sent; stderr:\n%s", tt.args, code, tt.want, errOut)
			}
		}
	})
}

// TestFileModuleExpiry runs a search that would read for hours (the hash
// of a 1 TiB sparse file) through a real mig-agent process, in an action
// that expires: the agent reports it as a timeout when it expires, and no
// module process is left running after that. The agent's CPU limit
// (maxprocs) reaches the module processes.
func TestFileModuleExpiry(t *testing.T) {
	env, srv, dir := devPlatform(t, "-no-agent")
	agentCfg := writeAgentConfigWith(t, dir, apiURLOf(t, srv), func(cfg map[string]any) { cfg["maxprocs"] = 3 })
	agent := start(t, nil, bins.agent, "-c", agentCfg)
	waitFor(t, 30*time.Second, "the agent to be online", func() bool {
		out, _, code := run(t, env, "agents", "-render", "json")
		return code == 0 && strings.Contains(out, `"online"`)
	})
	tree := t.TempDir()
	big, err := os.Create(filepath.Join(tree, "big"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(1 << 40); err != nil {
		big.Close()
		t.Skipf("no 1 TiB sparse file here: %v", err)
	}
	big.Close()
	mig := start(t, env, bins.mig, "file", "-e", "4s", "-path", tree, "-sha256", strings.Repeat("0", 64))
	// The module process runs (which also shows that moduleProcesses sees
	// it), then the action expires.
	waitFor(t, 30*time.Second, "the agent's file module process", func() bool {
		return len(moduleProcesses(t, agent.cmd.Process.Pid)) > 0
	})
	<-mig.done
	if out := mig.output(); !strings.Contains(out, "1 of 1 agents answered") || !strings.Contains(out, " 1 timeout") {
		t.Errorf("want the agent's answer, a timeout; mig printed:\n%s", out)
	}
	if pids := moduleProcesses(t, agent.cmd.Process.Pid); len(pids) > 0 {
		t.Errorf("module processes %v of the agent still run after it answered", pids)
	}

	// The agent's CPU limit reaches its module processes: the test module
	// reports the GOMAXPROCS it runs with, 3 here, which is neither the
	// default (half the CPUs) nor all the CPUs of a 2-CPU machine.
	op := filepath.Join(t.TempDir(), "procs.json")
	if err := os.WriteFile(op, []byte(`{"module":"testmodule","parameters":{"mode":"ok","marker":"procs"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, env, "action", "-i", op, "-render", "json")
	if code != 0 || !strings.Contains(out, `"maxprocs":3`) {
		t.Errorf("mig action -i (testmodule): exit %d, want the module to see maxprocs 3\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

// moduleProcesses returns the pids of the "mig-agent -m" processes whose
// parent is ppid.
func moduleProcesses(t *testing.T, ppid int) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so cut after
		// its closing parenthesis.
		i := bytes.LastIndexByte(stat, ')')
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(ppid) || fields[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte("\x00-m\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}
