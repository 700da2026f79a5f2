package dbtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
)

// BenchCatchUp measures a runner catching up from position 0 to the head of
// an event store (filled once, outside the timer) into a fresh database, with
// the balance.Balances projection folding per batch and, as the baseline, writing
// once per event. The stores are the embedded SQLite event store (the real
// path) and a MemStore (the projection side alone). It reports events/s.
func BenchCatchUp(b *testing.B, newDB NewDB) {
	const events, accounts = 200_000, 10_000
	for _, sc := range []struct {
		name string
		open func(testing.TB) eventstore.Store
	}{
		{"memory", func(testing.TB) eventstore.Store { return NewMemStore() }},
		{"sqlite", NewStore},
	} {
		b.Run("store="+sc.name, func(b *testing.B) {
			store := sc.open(b)
			head := AppendCredits(b, store, "bench", events, accounts, 2000)
			for _, pc := range []struct {
				name string
				p    projections.Projection
			}{
				{"fold", balance.Balances{}},
				{"per-event", balance.Balances{PerEvent: true}},
			} {
				b.Run(fmt.Sprintf("%s/events=%d/accounts=%d", pc.name, events, accounts), func(b *testing.B) {
					benchCatchUp(b, newDB, store, pc.p, head, events/accounts)
				})
			}
		})
	}
}

func benchCatchUp(b *testing.B, newDB NewDB, store eventstore.Store, p projections.Projection, head uint64, perAccount int64) {
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := newDB(b)
		r := projections.NewRunner(db, store, projections.Options{}, p)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		t0 := time.Now()
		go func() { done <- r.Run(ctx) }()
		if err := r.WaitFor(context.Background(), p.Name(), head); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		b.StopTimer()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		if got, err := balance.Balance(context.Background(), db, "acct-0"); err != nil || got != perAccount {
			b.Fatalf("acct-0 has %d, %v; want %d", got, err, perAccount)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(head)*float64(b.N)/elapsed.Seconds(), "events/s")
}
