// Package dbtest is the conformance suite of projections.DB and the Runner:
// every read-model database runs Run (and the benchmarks in Bench) against
// fresh databases of its kind. It uses the example projection of package balance
// and a Counter projection that proves exactly-once application. Test code
// only.
package dbtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
	"github.com/coinledger/coinledger/test/background"
)

// NewStore opens the embedded event store in a temporary directory, closed
// when tb ends. With COINLEDGER_TEST_EVENTSTORE=memory it returns a MemStore
// instead, to tell a projection failure from an event-store one.
func NewStore(tb testing.TB) eventstore.Store {
	tb.Helper()
	if os.Getenv("COINLEDGER_TEST_EVENTSTORE") == "memory" {
		return NewMemStore()
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// AppendCredits appends n test.credited events of 1 each to stream, spread
// over accounts accounts ("acct-0" ...), perAppend events per append, and
// returns the position of the last one.
func AppendCredits(tb testing.TB, s eventstore.Store, stream string, n, accounts, perAppend int) uint64 {
	tb.Helper()
	var last uint64
	batch := make([]eventstore.EventData, 0, perAppend)
	for i := 0; i < n; i++ {
		batch = append(batch, balance.Credit(fmt.Sprintf("acct-%d", i%accounts), 1))
		if len(batch) == perAppend || i == n-1 {
			res, err := s.Append(context.Background(), stream, eventstore.Any, batch...)
			if err != nil {
				tb.Fatalf("append %d credits to %s: %v", len(batch), stream, err)
			}
			last = res.Position
			batch = batch[:0]
		}
	}
	return last
}

// PoisonType is the event type a Counter fails on while Fail is set.
const PoisonType = "test.poison"

// ErrPoison is what a failing Counter returns.
var ErrPoison = errors.New("poison event")

// Counter is a projection that writes one row per event into
// counter(position PRIMARY KEY, stream, type) with Tx.Insert, so an event
// applied twice fails its transaction and a missing event leaves a gap. It
// records the size of every batch it is given (committed or not). While Fail
// is set it writes its rows and then fails a batch holding a PoisonType event.
// While Transient is above 0 it writes its rows and then fails the batch
// with an error wrapping projections.ErrTransient, counting Transient down.
type Counter struct {
	Fail      atomic.Bool
	Transient atomic.Int32
	mu        sync.Mutex
	batches   []int
}

var _ projections.Projection = (*Counter)(nil)

// Name is "counter".
func (*Counter) Name() string { return "counter" }

// Migrations creates the counter table.
func (*Counter) Migrations(projections.Dialect) []string {
	return []string{`CREATE TABLE counter (
		position BIGINT PRIMARY KEY,
		stream   TEXT NOT NULL,
		type     TEXT NOT NULL
	)`}
}

// Apply inserts one row per event.
func (c *Counter) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	c.mu.Lock()
	c.batches = append(c.batches, len(events))
	c.mu.Unlock()
	rows := make([][]any, len(events))
	poisoned := false
	for i, e := range events {
		rows[i] = []any{int64(e.Position), e.Stream, e.Type}
		poisoned = poisoned || e.Type == PoisonType
	}
	if err := tx.Insert(ctx, projections.Bulk{Table: "counter", Columns: []string{"position", "stream", "type"}}, rows); err != nil {
		return fmt.Errorf("counter: %w", err)
	}
	if poisoned && c.Fail.Load() {
		return ErrPoison
	}
	if takeOne(&c.Transient) {
		return fmt.Errorf("counter: %w: test failure", projections.ErrTransient)
	}
	return nil
}

// Batches returns the sizes of the batches Apply was given, in order.
func (c *Counter) Batches() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.batches...)
}

// CounterRows reports the counter table's row count and its lowest and
// highest position.
func CounterRows(ctx context.Context, db projections.DB) (count, lo, hi int64, err error) {
	err = db.QueryRow(ctx, `SELECT COUNT(*), CAST(COALESCE(MIN(position), 0) AS BIGINT), CAST(COALESCE(MAX(position), 0) AS BIGINT) FROM counter`).Scan(&count, &lo, &hi)
	return count, lo, hi, err
}

// start runs r in the background until the test ends or stop is called;
// stop cancels it and returns Run's result.
func start(tb testing.TB, r *projections.Runner) (stop func() error) {
	return background.Run(tb, false, r.Run)
}

// SmallBatches wraps a store so that Subscribe delivers batches of at most
// Size events, as a store with small pages (or a busy live tail) would.
type SmallBatches struct {
	eventstore.Store
	Size int
}

// Subscribe re-cuts the wrapped store's batches.
func (s SmallBatches) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	return s.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		for len(events) > 0 {
			n := min(s.Size, len(events))
			if err := fn(ctx, events[:n:n]); err != nil {
				return err
			}
			events = events[n:]
		}
		return nil
	})
}

// eventually polls cond every few milliseconds until it holds (true) or
// timeout passes (false).
func eventually(timeout time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// takeOne counts n down by one if it is above zero and reports whether it
// did: the test doubles' "fail the next n times".
func takeOne(n *atomic.Int32) bool {
	for v := n.Load(); v > 0; v = n.Load() {
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
	return false
}
