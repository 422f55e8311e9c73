package e2e

import (
	"crypto/rand"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestMemoryOutputPrivacy runs a process that holds a secret shaped like an
// AWS key in its environment (so in its memory), and asks the real agent,
// through mig-server -dev and mig, for processes whose memory matches the
// key's regex. The process is found, and the secret itself appears neither
// in what mig prints nor in the JSON results: the memory module returns
// pids, names and the filters that matched, never memory.
func TestMemoryOutputPrivacy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the memory module scans processes on Linux")
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [16]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	secret := "AKIA" + string(b[:])
	holder := exec.Command("sleep", "300")
	holder.Env = []string{"MIG_E2E_SECRET=" + secret}
	must(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	pid := fmt.Sprint(holder.Process.Pid)

	env, _, _ := devPlatform(t)
	atk := attack(t, "privacy", "memory module returns process memory")
	for _, render := range []string{"text", "json"} {
		args := []string{"memory", "-name", "^sleep$", "-content", "AKIA[0-9A-Z]{16}"}
		if render == "json" {
			args = append(args, "-render", "json")
		}
		out, errOut, code := run(t, env, args...)
		if strings.Contains(out, secret) || strings.Contains(errOut, secret) {
			atk.executed("mig memory (%s) printed the secret held in process memory:\n%s", render, out)
		}
		if code != 0 || !strings.Contains(out, pid) {
			t.Fatalf("mig memory (%s): exit %d, want process %s found\nstdout:\n%s\nstderr:\n%s", render, code, pid, out, errOut)
		}
	}
	atk.refused()
}
