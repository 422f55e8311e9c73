//go:build !linux

package netstat

import (
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/module"
)

// TestUnsupported checks that searches this system cannot answer are
// reported as such, and that local interfaces are still searched.
func TestUnsupported(t *testing.T) {
	r, err := parse([]byte(`{"localip":["127.0.0.0/8","::1"],"neighbormac":["."],"connectedip":["10.0.0.0/8"],"searchnamespaces":true}`))
	if err != nil {
		t.Fatal(err)
	}
	res := r.Run(t.Context(), module.Env{})
	if res.Success {
		t.Errorf("result = %+v, want Success false", res)
	}
	all := strings.Join(res.Errors, "\n")
	for _, want := range []string{"neighbour tables", "sockets", "network namespaces", ErrNotSupported.Error()} {
		if !strings.Contains(all, want) {
			t.Errorf("errors %q do not mention %q", res.Errors, want)
		}
	}
	if !res.FoundAnything {
		t.Errorf("result = %+v, want the loopback address found", res)
	}
}
