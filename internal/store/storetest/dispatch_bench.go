package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/migplatform/mig/internal/action"
	"github.com/migplatform/mig/internal/store"
)

// BenchmarkDispatchCommands stores the commands of one action to 10,000
// agents in batches of 1,000 under a dispatch lease, as Scheduler.Dispatch
// does: "runs" with consecutive command IDs from a random base per batch
// (what the scheduler does), "random" with a random ID per command (what it
// did before). open returns an empty store; the benchmark closes it.
func BenchmarkDispatchCommands(b *testing.B, open func(b *testing.B) store.Store) {
	for _, ids := range []string{"runs", "random"} {
		b.Run(ids, func(b *testing.B) {
			ctx := context.Background()
			s := open(b)
			defer s.Close()
			const n, batch = 10000, 1000
			cmds := make([]action.Command, batch)
			aid := uint64(0)
			for b.Loop() {
				aid++
				now := time.Now()
				a := &action.Action{ID: aid, Name: "bench", Target: "TRUE", ValidFrom: now, ExpireAfter: now.Add(time.Hour)}
				if err := s.CreateAction(ctx, a); err != nil {
					b.Fatal(err)
				}
				l := store.DispatchLease{ActionID: aid, Owner: fmt.Sprint("bench/", aid), Expires: now.Add(time.Minute)}
				if err := s.AcquireDispatch(ctx, l, now); err != nil {
					b.Fatal(err)
				}
				for start := 0; start < n; start += batch {
					base := rand.Uint64N(1<<52) + 1
					for i := range cmds {
						id := base + uint64(i)
						if ids == "random" {
							id = rand.Uint64N(1<<53-1) + 1
						}
						cmds[i] = action.Command{ID: id, Action: action.Action{ID: aid}, AgentID: fmt.Sprintf("%032x", start+i),
							AgentName: fmt.Sprintf("host-%05d.example.net", start+i), StartTime: now}
					}
					if err := s.DispatchCommands(ctx, l, cmds); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/10k")
		})
	}
}
