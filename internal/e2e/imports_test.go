package e2e

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportBoundaries checks the dependency direction the design makes a
// rule: the wire types import only the standard library (and the leaf
// helpers, which import only the standard library themselves), the agent never
// reaches the server's store, API or scheduler, and the investigator's
// command line talks to the server only through the client.
func TestImportBoundaries(t *testing.T) {
	const mod = "github.com/migplatform/mig/"
	rules := []struct {
		pkg       string
		forbidden []string
		stdOnly   bool
		leaves    []string // packages of this module allowed despite stdOnly
	}{
		{pkg: "internal/action", stdOnly: true, leaves: []string{"internal/strictjson"}},
		{pkg: "internal/strictjson", stdOnly: true},
		{pkg: "internal/atomicfile", stdOnly: true},
		{pkg: "internal/cmdflag", stdOnly: true},
		{pkg: "internal/version", stdOnly: true},
		{pkg: "internal/secfile", stdOnly: true},
		{pkg: "cmd/mig-agent", forbidden: []string{"internal/store", "internal/api", "internal/scheduler", "internal/server", "internal/client", "internal/cli"}},
		{pkg: "internal/agent", forbidden: []string{"internal/store", "internal/api", "internal/scheduler", "internal/server"}},
		{pkg: "internal/packed", stdOnly: true},
		{pkg: "cmd/mig-loader", forbidden: []string{"internal/store", "internal/api", "internal/scheduler", "internal/server", "internal/client", "internal/cli", "internal/agent", "internal/relay", "internal/module"}},
		{pkg: "internal/manifest", forbidden: []string{"internal/store", "internal/api", "internal/scheduler", "internal/server", "internal/client", "internal/agent", "internal/relay"}},
		{pkg: "cmd/mig", forbidden: []string{"internal/store", "internal/api", "internal/scheduler", "internal/server", "internal/agent", "internal/relay"}},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+r.pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", r.pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == mod+r.pkg {
				continue
			}
			if r.stdOnly && !slices.Contains(r.leaves, strings.TrimPrefix(dep, mod)) {
				t.Errorf("%s imports %s; it may import only the standard library", r.pkg, dep)
			}
			for _, f := range r.forbidden {
				if dep == mod+f || strings.HasPrefix(dep, mod+f+"/") {
					t.Errorf("%s depends on %s, which the design forbids", r.pkg, dep)
				}
			}
		}
	}
}
