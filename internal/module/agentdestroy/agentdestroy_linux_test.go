package agentdestroy

import (
	"bufio"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/module"
)

const dummyPackage = "github.com/migplatform/mig/internal/module/agentdestroy/testdata/dummyagent"

// buildDummy builds the dummy agent as dir/name with the given version.
func buildDummy(t *testing.T, name, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.CommandContext(t.Context(), "go", "build", "-o", out,
		"-ldflags", "-X "+VersionVariable+"="+version, "./testdata/dummyagent")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// startDummy starts a dummy agent and returns it once it is ready.
func startDummy(t *testing.T, exe string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	if l, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || l != "ready\n" {
		t.Fatalf("dummy said %q, %v", l, err)
	}
	return cmd
}

func runner(t *testing.T, pid int, version string) *Runner {
	t.Helper()
	r, err := ParseParameters(fmt.Appendf(nil, `{"pid":%d,"version":%q}`, pid, version))
	if err != nil {
		t.Fatal(err)
	}
	r.mainPackage = dummyPackage
	r.grace = 300 * time.Millisecond
	return r
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited.
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestStopDummyAgent(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the dummy agent")
	}
	const version = "9.9.9-test"
	agent := buildDummy(t, "mig-agent", version)
	other := buildDummy(t, "not-an-agent", version)

	refused := []struct {
		name    string
		exe     string
		version string
		real    bool // check against the real MainPackage
		want    error
		wantMsg string
	}{
		{"wrong version", agent, "1.0.0", false, ErrNotAgent, `version "9.9.9-test", want "1.0.0"`},
		{"not the agent's main package", agent, version, true, ErrNotAgent, `main package "` + dummyPackage + `"`},
		{"not named mig-agent", other, version, false, ErrNotAgent, "is not mig-agent"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			cmd := startDummy(t, tc.exe)
			r := runner(t, cmd.Process.Pid, tc.version)
			if tc.real {
				r.mainPackage = MainPackage
			}
			res := r.Run(t.Context(), module.Env{})
			if res.Success || res.FoundAnything || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], tc.wantMsg) {
				t.Errorf("result %+v, want a failure containing %q", res, tc.wantMsg)
			}
			if !alive(cmd.Process.Pid) {
				t.Error("the process was stopped")
			}
		})
	}
	for _, tc := range []struct {
		name, arg, signal string
	}{
		{"stops on SIGTERM", "", "SIGTERM"},
		{"SIGKILL when SIGTERM is ignored", "-stubborn", "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.arg != "" {
				args = append(args, tc.arg)
			}
			cmd := startDummy(t, agent, args...)
			res := runner(t, cmd.Process.Pid, version).Run(t.Context(), module.Env{})
			if !res.Success || !res.FoundAnything {
				t.Fatalf("result %+v, want success", res)
			}
			var el Elements
			if err := json.Unmarshal(res.Elements, &el); err != nil {
				t.Fatal(err)
			}
			if want := (Elements{PID: cmd.Process.Pid, Version: version, Stopped: true, Signal: tc.signal}); el != want {
				t.Errorf("elements %+v, want %+v", el, want)
			}
			// The dummy exits cleanly on SIGTERM, as the agent does; SIGKILL kills it.
			err := cmd.Wait()
			var ee *exec.ExitError
			switch tc.signal {
			case "SIGTERM":
				if err != nil {
					t.Errorf("dummy exited with %v, want a clean exit on SIGTERM", err)
				}
			case "SIGKILL":
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Errorf("dummy exited with %v, want killed by SIGKILL", err)
				}
			}
		})
	}
}

func TestRefusesItself(t *testing.T) {
	for _, pid := range []int{os.Getpid(), os.Getppid()} {
		r := runner(t, pid, "dev")
		res := r.Run(t.Context(), module.Env{})
		if res.Success || len(res.Errors) != 1 || !strings.Contains(res.Errors[0], ErrSelf.Error()) {
			t.Errorf("pid %d: result %+v, want a refusal", pid, res)
		}
	}
	// A pid that does not exist.
	res := runner(t, 1<<22, "dev").Run(t.Context(), module.Env{})
	if res.Success || len(res.Errors) != 1 {
		t.Errorf("missing pid: result %+v, want a failure", res)
	}
}

func TestBuildVersion(t *testing.T) {
	for _, tc := range []struct{ ldflags, want string }{
		{"", "dev"},
		{"-s -w", "dev"},
		{"-X " + VersionVariable + "=1.2.3", "1.2.3"},
		{"-s -X=" + VersionVariable + "=2.0.0 -w", "2.0.0"},
		{"-X 'github.com/other/pkg.Version=5' -X '" + VersionVariable + "=3.1-rc1'", "3.1-rc1"},
		{"-X github.com/other/pkg.Version=5", "dev"},
	} {
		info := &buildinfo.BuildInfo{}
		if tc.ldflags != "" {
			info.Settings = append(info.Settings, debugSetting("-ldflags", tc.ldflags))
		}
		if got := BuildVersion(info); got != tc.want {
			t.Errorf("BuildVersion(%q) = %q, want %q", tc.ldflags, got, tc.want)
		}
	}
}
