package wallet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// BenchmarkCatchUp measures the wallet projection catching up from position
// 0 with one wallet of 1,000 accounts (opened and funded by imports) and
// 100,000 transfers between random accounts, into a fresh read-model
// database. The store is filled once, outside the timer; "sqlite" is the
// embedded event store (the real path), "memory" the projection side alone.
// Every event gets its own time (as when each command is its own append),
// the worst case for the time index. It reports events/s.
func BenchmarkCatchUp(b *testing.B) {
	const accounts, transfers = 1_000, 100_000
	for _, sc := range []struct {
		name string
		open func(testing.TB) eventstore.Store
	}{
		{"sqlite", func(tb testing.TB) eventstore.Store { return openStore(tb, &clock{t: t0}) }},
		{"memory", func(testing.TB) eventstore.Store { return dbtest.NewMemStore() }},
	} {
		b.Run("store="+sc.name, func(b *testing.B) {
			store := sc.open(b)
			head := fillTransfers(b, store, accounts, transfers)
			store = stamped{store}
			for _, d := range []struct {
				name string
				open dbtest.NewDB
			}{{"sqlite", dbtest.OpenSQLite}, {"postgres", dbtest.OpenPostgres}} {
				b.Run(fmt.Sprintf("db=%s/transfers=%d/accounts=%d", d.name, transfers, accounts), func(b *testing.B) {
					benchCatchUp(b, d.open, store, head)
				})
			}
		})
	}
}

// fillTransfers appends the benchmark's wallet to store, 1,000 events per
// append, and returns the head.
func fillTransfers(tb testing.TB, store eventstore.Store, accounts, transfers int) uint64 {
	tb.Helper()
	ctx := context.Background()
	codec := wallet.Codec()
	s := ledger.NewState()
	r := rand.New(rand.NewPCG(1, 2))
	var pending []ledger.Event
	var head uint64
	flush := func() {
		data, err := codec.Encode(eventstore.Metadata{}, pending)
		must(tb, err)
		res, err := store.Append(ctx, "wallet-bench", eventstore.ExpectRevision(s.Version()-uint64(len(pending))), data...)
		must(tb, err)
		head, pending = res.Position, pending[:0]
	}
	exec := func(c ledger.Command) {
		evs, err := ledger.Execute(s, c)
		if err != nil {
			tb.Fatal(err)
		}
		pending = append(pending, evs...)
		if len(pending) >= 1000 {
			flush()
		}
	}
	exec(ledger.OpenWallet{Name: "bench", Coin: btc(1).Asset(), Permissions: ledger.AllPermissions()})
	for i := range accounts {
		exec(ledger.OpenAccount{Name: fmt.Sprintf("acct-%d", i)})
		exec(ledger.ImportBalance{ID: fmt.Sprintf("imp-%d", i), Account: fmt.Sprintf("acct-%d", i), Amount: btc(1_000_000_000)})
	}
	for i := range transfers {
		from, to := r.IntN(accounts), r.IntN(accounts-1)
		if to >= from {
			to++
		}
		exec(ledger.Transfer{ID: fmt.Sprintf("t-%d", i), From: fmt.Sprintf("acct-%d", from), To: fmt.Sprintf("acct-%d", to),
			Amount: btc(1 + r.Int64N(1000)), Memo: "bench"})
	}
	if len(pending) > 0 {
		flush()
	}
	return head
}

func benchCatchUp(b *testing.B, newDB dbtest.NewDB, store eventstore.Store, head uint64) {
	var elapsed, applying time.Duration
	var batches int
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := newDB(b)
		timed := &timedProjection{Projection: wallet.New()}
		r := projections.NewRunner(db, store, projections.Options{}, timed)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		b.StartTimer()
		t0 := time.Now()
		go func() { done <- r.Run(ctx) }()
		if err := r.WaitFor(context.Background(), "wallet", head); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(t0)
		applying += timed.spent
		batches += timed.batches
		b.StopTimer()
		cancel()
		must(b, <-done)
		sum, err := wallet.SumBalances(context.Background(), db, "bench")
		must(b, err)
		var entries int64
		must(b, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM wallet_entries`).Scan(&entries))
		if sum.Total() != 0 || uint64(entries) != 2*(head-1-1000) {
			b.Fatalf("after catch-up: sum %+v, %d entries", sum, entries)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(head)*float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(applying)/float64(elapsed), "apply-share")
	b.ReportMetric(float64(batches)/float64(b.N), "batches")
}

// stamped gives every event its own time, a millisecond per position.
type stamped struct{ eventstore.Store }

func (s stamped) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	return s.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		return fn(ctx, restamp(events))
	})
}

func restamp(events []eventstore.Event) []eventstore.Event {
	out := make([]eventstore.Event, len(events))
	for i, e := range events {
		e.Created = t0.Add(time.Duration(e.Position) * time.Millisecond)
		out[i] = e
	}
	return out
}

// timedProjection measures the time spent in Apply (the rest is the
// runner's: reading the store, committing).
type timedProjection struct {
	*wallet.Projection
	spent   time.Duration
	batches int
}

func (p *timedProjection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	t := time.Now()
	err := p.Projection.Apply(ctx, tx, events)
	p.spent += time.Since(t)
	p.batches++
	return err
}

// BenchmarkApply measures Apply alone (and reports its CPU time per
// event, a figure less disturbed by other load on the machine): the benchmark wallet's events, read
// into memory once, applied in batches of 20,000 into a fresh SQLite
// database, every event with its own time.
func BenchmarkApply(b *testing.B) {
	store := openStore(b, &clock{t: t0})
	head := fillTransfers(b, store, 1_000, 100_000)
	events, err := store.ReadAll(context.Background(), 0, int(head))
	must(b, err)
	if uint64(len(events)) != head {
		b.Fatalf("read %d events, want %d", len(events), head)
	}
	events = restamp(events)
	p := wallet.New()
	var elapsed, cpu time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		db := dbtest.OpenSQLite(b)
		must(b, db.Migrate(context.Background(), p.Name(), p.Migrations(db.Dialect())))
		b.StartTimer()
		t, c := time.Now(), cpuTime()
		for start := 0; start < len(events); start += 20_000 {
			batch := events[start:min(start+20_000, len(events))]
			must(b, db.Update(context.Background(), func(tx projections.Tx) error { return p.Apply(context.Background(), tx, batch) }))
		}
		elapsed += time.Since(t)
		cpu += cpuTime() - c
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(len(events)*b.N), "cpu-µs/event")
	b.ReportMetric(float64(len(events))*float64(b.N)/elapsed.Seconds(), "events/s")
}

// cpuTime returns the CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
