//go:build !unix

package module

import (
	"os"
	"os/exec"
)

// setProcessGroup does nothing on platforms without Unix process groups.
func setProcessGroup(cmd *exec.Cmd) {}

// killProcessGroup kills the child process itself: without Unix process
// groups, processes the child started are not reached.
func killProcessGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return os.ErrProcessDone
	}
	return cmd.Process.Kill()
}
