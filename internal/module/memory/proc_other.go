//go:build !linux

package memory

import (
	"context"
	"fmt"
	"runtime"
)

// scanProcesses reports that process memory cannot be read here.
func (r *Runner) scanProcesses(ctx context.Context, found func(Process, map[*search][]Hit), stats *Statistics) ([]string, error) {
	return nil, fmt.Errorf("memory module: not supported on %s", runtime.GOOS)
}
