package cli

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/migplatform/mig"

// TestImportBoundary checks the dependency rule of the design: the mig
// command line reaches the server only through package client, so neither
// it nor anything it imports may depend on the server's packages.
func TestImportBoundary(t *testing.T) {
	forbidden := []string{"internal/api", "internal/store", "internal/scheduler", "internal/server", "internal/relay", "internal/agent"}
	root := filepath.Join("..", "..")
	seen := map[string]string{} // package -> the package that imported it first
	queue := []string{"cmd/mig", "internal/cli", "internal/client"}
	for _, p := range queue {
		seen[p] = "(start)"
	}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		for _, f := range forbidden {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				t.Errorf("%s is imported (by %s): the mig command line must reach the server only through internal/client", pkg, seen[pkg])
			}
		}
		entries, err := os.ReadDir(filepath.Join(root, pkg))
		if err != nil {
			t.Fatalf("reading %s: %v", pkg, err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, pkg, name), nil, parser.ImportsOnly)
			if err != nil {
				t.Fatalf("parsing %s/%s: %v", pkg, name, err)
			}
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				rel, ok := strings.CutPrefix(path, modulePath+"/")
				if !ok {
					continue
				}
				if _, done := seen[rel]; !done {
					seen[rel] = pkg
					queue = append(queue, rel)
				}
			}
		}
	}
	if _, ok := seen["internal/client"]; !ok {
		t.Errorf("internal/client is not reached; the walk is broken")
	}
}
