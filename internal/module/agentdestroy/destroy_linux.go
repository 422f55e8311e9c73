package agentdestroy

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
	"github.com/migplatform/mig/internal/version"
)

// Run checks the process and stops it.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	el := Elements{PID: r.p.PID, Version: r.p.Version}
	fail := func(err error) action.Result {
		res := module.FailResult(err.Error())
		res.Elements, _ = json.Marshal(el)
		return res
	}
	pid := r.p.PID
	if pid == os.Getpid() || pid == os.Getppid() {
		return fail(fmt.Errorf("agentdestroy: pid %d: %w", pid, ErrSelf))
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fail(fmt.Errorf("agentdestroy: pid %d: %w", pid, err))
	}
	defer unix.Close(fd)
	if err := r.check(pid); err != nil {
		return fail(fmt.Errorf("agentdestroy: pid %d: %w", pid, err))
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				el.Stopped = true
				break
			}
			return fail(fmt.Errorf("agentdestroy: pid %d: %s: %w", pid, unix.SignalName(sig), err))
		}
		el.Signal = unix.SignalName(sig)
		exited, err := waitExit(ctx, fd, r.grace)
		if err != nil {
			return fail(fmt.Errorf("agentdestroy: pid %d: %w", pid, err))
		}
		if exited {
			el.Stopped = true
			break
		}
	}
	if !el.Stopped {
		return fail(fmt.Errorf("agentdestroy: pid %d did not exit after SIGKILL", pid))
	}
	res := action.Result{Success: true, FoundAnything: true}
	res.Elements, _ = json.Marshal(el)
	return res
}

// waitExit waits until the process of the pidfd exits (the pidfd becomes
// readable), up to d or until ctx ends.
func waitExit(ctx context.Context, fd int, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(min(left, 100*time.Millisecond)/time.Millisecond)+1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		if n > 0 {
			return true, nil
		}
	}
}

// check verifies that pid is a mig-agent of the requested version.
func (r *Runner) check(pid int) error {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return err
	}
	argv0, _, _ := strings.Cut(string(cmdline), "\x00")
	if !strings.HasPrefix(filepath.Base(argv0), "mig-agent") {
		return fmt.Errorf("%w: command %q is not mig-agent", ErrNotAgent, argv0)
	}
	info, err := buildinfo.ReadFile(filepath.Join(dir, "exe"))
	if err != nil {
		return fmt.Errorf("%w: executable: %w", ErrNotAgent, err)
	}
	if info.Path != r.mainPackage {
		return fmt.Errorf("%w: main package %q, want %q", ErrNotAgent, info.Path, r.mainPackage)
	}
	if v := BuildVersion(info); v != r.p.Version {
		return fmt.Errorf("%w: version %q, want %q", ErrNotAgent, v, r.p.Version)
	}
	return nil
}

// BuildVersion returns the agent version a binary was built with: the value
// its -ldflags gave VersionVariable with -X, or version.Unset (the
// variable's default, "dev") when they did not.
func BuildVersion(info *buildinfo.BuildInfo) string {
	v := version.Unset
	for _, s := range info.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		fields := strings.Fields(s.Value)
		for i := 0; i < len(fields); i++ {
			f := strings.Trim(fields[i], `'"`)
			var def string
			switch {
			case f == "-X" || f == "--X":
				if i+1 < len(fields) {
					i++
					def = strings.Trim(fields[i], `'"`)
				}
			case strings.HasPrefix(f, "-X="):
				def = f[3:]
			case strings.HasPrefix(f, "--X="):
				def = f[4:]
			}
			if name, val, ok := strings.Cut(def, "="); ok && name == VersionVariable {
				v = val
			}
		}
	}
	return v
}
