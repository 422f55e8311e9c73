//go:build windows

package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// alive reports whether process pid exists.
func alive(pid int) bool {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	return code == 259 // STILL_ACTIVE
}

// terminate ends pid (Windows has no SIGTERM).
func terminate(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return fmt.Errorf("signal restart: %w", err)
	}
	return p.Kill()
}

// restartWindowsService stops and starts the service through the service
// control manager.
func restartWindowsService(ctx context.Context, name string) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("service manager: %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	defer s.Close()
	if st, err := s.Control(svc.Stop); err == nil {
		for st.State != svc.Stopped {
			select {
			case <-ctx.Done():
				return fmt.Errorf("service %s: not stopped: %w", name, ctx.Err())
			case <-time.After(300 * time.Millisecond):
			}
			if st, err = s.Query(); err != nil {
				return fmt.Errorf("service %s: %w", name, err)
			}
		}
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("service %s: start: %w", name, err)
	}
	return nil
}

// lock takes an exclusive lock on path, or fails at once.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	ol := new(windows.Overlapped)
	if err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (lock %s): %w", ErrLocked, path, errors.Join(err))
	}
	return func() { f.Close() }, nil
}
