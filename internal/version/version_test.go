package version_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migplatform/mig/internal/version"
)

// TestVariableNamesVersion builds a program that prints version.Version
// with -ldflags -X Variable=..., so that a rename of the package or the
// variable cannot leave Variable (and every release build, and the
// agentdestroy module's check) pointing at nothing.
func TestVariableNamesVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	if version.Version != version.Unset {
		t.Errorf("Version = %q in a build without -X, want %q", version.Version, version.Unset)
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "printversion")
	cmd := exec.Command("go", "build", "-ldflags", "-X "+version.Variable+"=1.2.3-test", "-o", exe, "./testdata/printversion")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("%s: %v", exe, err)
	}
	if got := strings.TrimSpace(string(out)); got != "1.2.3-test" {
		t.Errorf("built with -X %s=1.2.3-test, it prints %q", version.Variable, got)
	}
}
