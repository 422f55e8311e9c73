//go:build unix

package pkgdb_test

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/migplatform/mig/internal/pkgdb"
)

// TestInstalledFIFO plants FIFOs where the databases are expected: each is
// reported as not a regular file, none blocks the read.
func TestInstalledFIFO(t *testing.T) {
	for _, rel := range []string{pkgdb.RPMBerkeleyPaths[0], pkgdb.RPMNDBPaths[0], pkgdb.DpkgStatusPath} {
		t.Run(rel, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, rel)
			writeFile(t, path, "")
			if err := syscall.Unlink(path); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			_, err := pkgdb.Installed(t.Context(), root)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("Installed error = %v, want one naming %s as not a regular file", err, path)
			}
			if errors.Is(err, pkgdb.ErrNoDatabase) {
				t.Errorf("Installed error = %v: a FIFO is not the absence of a database", err)
			}
		})
	}
}
