//go:build !windows

package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
)

// alive reports whether process pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// terminate sends SIGTERM to pid.
func terminate(pid int) error {
	if pid <= 1 {
		return fmt.Errorf("signal restart: pid %d is not an agent's", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal restart: SIGTERM to %d: %w", pid, err)
	}
	return nil
}

func restartWindowsService(context.Context, string) error {
	return errors.New("restart windows is only for Windows")
}

// lock takes an exclusive lock on path, or fails at once.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (lock %s): %w", ErrLocked, path, err)
	}
	return func() { f.Close() }, nil
}
