//go:build !linux

package agentdestroy

import (
	"context"
	"fmt"
	"runtime"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/module"
)

// Run reports that the module cannot work on this platform.
func (r *Runner) Run(ctx context.Context, _ module.Env) action.Result {
	return module.FailResult(fmt.Sprintf("agentdestroy: not supported on %s", runtime.GOOS))
}
