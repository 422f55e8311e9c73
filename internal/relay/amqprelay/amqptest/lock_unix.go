//go:build unix

package amqptest

import (
	"fmt"
	"os"
	"syscall"
)

func lock(exclusive bool) (func(), error) {
	f, err := os.OpenFile(LockFile, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock: %w", err)
	}
	return func() { f.Close() }, nil
}
