package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/sqlitestore"
	"github.com/migplatform/mig/internal/store/storetest"
)

// BenchmarkDispatchCommands10000: see storetest.BenchmarkDispatchCommands.
func BenchmarkDispatchCommands10000(b *testing.B) {
	storetest.BenchmarkDispatchCommands(b, func(b *testing.B) store.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "mig.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
