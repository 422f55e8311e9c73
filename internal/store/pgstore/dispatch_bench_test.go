package pgstore_test

import (
	"context"
	"testing"

	"github.com/migplatform/mig/internal/store"
	"github.com/migplatform/mig/internal/store/pgstore"
	"github.com/migplatform/mig/internal/store/pgstore/pgtest"
	"github.com/migplatform/mig/internal/store/storetest"
)

// BenchmarkDispatchCommands10000: see storetest.BenchmarkDispatchCommands.
func BenchmarkDispatchCommands10000(b *testing.B) {
	storetest.BenchmarkDispatchCommands(b, func(b *testing.B) store.Store {
		s, err := pgstore.Open(context.Background(), pgtest.Schema(b, 4), nil)
		if err != nil {
			b.Fatal(err)
		}
		return s
	})
}
