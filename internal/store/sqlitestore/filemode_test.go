//go:build unix

package sqlitestore_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store/sqlitestore"
)

// TestNewDatabaseFilesPrivate checks that a new database and the -wal and
// -shm files SQLite makes next to it are 0600 after a write, even with a
// umask that takes nothing away (SQLite itself would make the database
// 0644 less the umask, and give the others the database's mode).
func TestNewDatabaseFilesPrivate(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	path := filepath.Join(t.TempDir(), "mig.db")
	s, err := sqlitestore.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.UpsertAgents(t.Context(), []action.Agent{{ID: "a1", Name: "n"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if m := fi.Mode().Perm(); m != 0o600 {
			t.Errorf("%s is mode %04o, want 0600", filepath.Base(p), m)
		}
	}
}
