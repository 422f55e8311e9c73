package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportBoundaries checks the dependency-direction rule: the agent and
// its binary never depend on the server's packages, nor on the NATS server
// (whose init starts a timer that wakes every process linking it each
// second; the agent's side of the relay is natsconn).
func TestImportBoundaries(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/migplatform/mig/internal/agent", "github.com/migplatform/mig/cmd/mig-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{"internal/store", "internal/api", "internal/scheduler", "internal/client", "internal/server"}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/nats-io/nats-server") {
			t.Errorf("the agent depends on %s", pkg)
		}
		for _, f := range forbidden {
			if p := "github.com/migplatform/mig/" + f; pkg == p || strings.HasPrefix(pkg, p+"/") {
				t.Errorf("the agent depends on %s", pkg)
			}
		}
	}
}
