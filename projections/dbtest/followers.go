package dbtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
)

// TransientType is an event type Sums always fails on with an error
// wrapping projections.ErrTransient.
const TransientType = "test.transient"

// Sums is a test Follower: it sums test.credited amounts per account in
// memory and counts the events it handles. While Fail is set it fails on a
// PoisonType event; it always fails on a TransientType event, transiently.
// Version is 1 unless V is set.
type Sums struct {
	V       int
	Fail    atomic.Bool
	Handled atomic.Int64
	mu      sync.Mutex
	sums    map[string]int64
}

var _ projections.Follower = (*Sums)(nil)

// Name is "sums".
func (*Sums) Name() string { return "sums" }

// Version is V, or 1.
func (s *Sums) Version() int { return max(s.V, 1) }

// Handle adds a credit to its account.
func (s *Sums) Handle(_ context.Context, e eventstore.Event) error {
	s.Handled.Add(1)
	if e.Type == PoisonType && s.Fail.Load() {
		return ErrPoison
	}
	if e.Type == TransientType {
		return fmt.Errorf("%w: the event keeps failing", projections.ErrTransient)
	}
	if e.Type != balance.CreditedType {
		return nil
	}
	var c struct {
		Account string
		Amount  int64
	}
	if err := json.Unmarshal(e.Data, &c); err != nil {
		return err
	}
	s.mu.Lock()
	s.sums[c.Account] += c.Amount
	s.mu.Unlock()
	return nil
}

// Snapshot encodes the sums.
func (s *Sums) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return json.Marshal(s.sums)
}

// Restore replaces the sums.
func (s *Sums) Restore(data []byte) error {
	m := map[string]int64{}
	if data != nil {
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.sums = m
	s.mu.Unlock()
	return nil
}

// Totals returns a copy of the sums.
func (s *Sums) Totals() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.sums)
}

// Worker is a Sums with side effects: an operator may skip its events.
type Worker struct{ Sums }

// SideEffects marks Worker as a side-effect follower.
func (*Worker) SideEffects() {}

// wantSums is what Sums holds after AppendCredits calls of ns[i] credits
// of 1 each, spread over accounts accounts.
func wantSums(accounts int, ns ...int) map[string]int64 {
	out := map[string]int64{}
	for _, n := range ns {
		for i := 0; i < n; i++ {
			out[fmt.Sprintf("acct-%d", i%accounts)]++
		}
	}
	return out
}

// followerOptions: fast retries, a snapshot every 100 events.
func followerOptions() projections.Options {
	o := fastRetry()
	o.SnapshotEvery = 100
	return o
}

// testFollowerResumes checks that a follower restarts from the snapshot its
// last run left (it handles no event twice and none is lost) and that a
// snapshot of another version is dropped.
func testFollowerResumes(t *testing.T, newDB NewDB) {
	db, store := newDB(t), NewStore(t)
	AppendCredits(t, store, "wallet-a", 1234, 5, 50)
	first := &Sums{}
	r := projections.NewRunner(db, store, followerOptions(), projections.Follow(first))
	stop := start(t, r)
	head, err := store.Head(context.Background())
	must(t, err)
	must(t, r.CaughtUp(context.Background(), "sums"))
	if st := statusOf(t, r, "sums"); st.Kind != projections.KindFollower || !st.Ready || st.Skippable || st.Position != head {
		t.Errorf("follower status %+v, want a ready follower at %d", st, head)
	}
	must(t, stop()) // writes the last snapshot
	if n := first.Handled.Load(); n != 1234 {
		t.Fatalf("first run handled %d events, want 1234", n)
	}

	second := &Sums{}
	r = projections.NewRunner(db, store, followerOptions(), projections.Follow(second))
	stop = start(t, r)
	AppendCredits(t, store, "wallet-b", 66, 5, 7)
	must(t, r.CaughtUp(context.Background(), "sums"))
	must(t, stop())
	if n := second.Handled.Load(); n != 66 {
		t.Errorf("restart handled %d events, want only the 66 appended since (no re-read)", n)
	}
	if got, want := second.Totals(), wantSums(5, 1234, 66); !maps.Equal(got, want) {
		t.Errorf("after restart: %v, want %v", got, want)
	}

	// A new version of the follower drops the snapshot and reads it all.
	third := &Sums{V: 2}
	r = projections.NewRunner(db, store, followerOptions(), projections.Follow(third))
	stop = start(t, r)
	must(t, r.CaughtUp(context.Background(), "sums"))
	must(t, stop())
	if n := third.Handled.Load(); n != 1234+66 {
		t.Errorf("new version handled %d events, want all %d", n, 1234+66)
	}
	if got, want := third.Totals(), wantSums(5, 1234, 66); !maps.Equal(got, want) {
		t.Errorf("new version: %v, want %v", got, want)
	}
}

// testFollowerSkip checks that a poison event parks only the follower, that
// Skip records the skip in the log and resumes after it, that a replay from
// the start skips it too, and that read models cannot skip.
func testFollowerSkip(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	AppendCredits(t, store, "wallet-a", 30, 3, 10)
	w := &Worker{}
	w.Fail.Store(true)
	r := projections.NewRunner(db, store, followerOptions(), projections.Follow(w), balance.Balances{})
	stop := start(t, r)
	res, err := store.Append(ctx, "wallet-a", eventstore.Any, eventstore.EventData{Type: PoisonType, Data: []byte(`{}`)})
	must(t, err)
	poison := res.Position
	head := AppendCredits(t, store, "wallet-b", 20, 3, 5)
	wait(t, r, "balances", head) // the read model goes on

	st := waitParked(t, r, "sums")
	if st.ParkedAt != poison || !st.Skippable {
		t.Fatalf("parked follower: %+v, want parked at %d and skippable", st, poison)
	}
	if _, err := r.Skip(ctx, "balances", "user:admin"); !errors.Is(err, projections.ErrNotSkippable) {
		t.Errorf("Skip on a read model: %v, want ErrNotSkippable", err)
	}
	at, err := r.Skip(ctx, "sums", "user:admin")
	must(t, err)
	if at != poison {
		t.Errorf("skipped %d, want %d", at, poison)
	}
	must(t, r.CaughtUp(ctx, "sums"))
	if _, err := r.Skip(ctx, "sums", "user:admin"); !errors.Is(err, projections.ErrNotParked) {
		t.Errorf("Skip on a running follower: %v, want ErrNotParked", err)
	}
	must(t, stop())
	if got, want := w.Totals(), wantSums(3, 30, 20); !maps.Equal(got, want) {
		t.Errorf("after skip: %v, want %v", got, want)
	}
	skips, err := store.ReadStream(ctx, projections.SkipStreamPrefix+"sums", 0, 10)
	must(t, err)
	var rec projections.EventSkipped
	if len(skips) != 1 || skips[0].Type != projections.TypeEventSkipped || skips[0].Metadata.Actor != "user:admin" {
		t.Fatalf("skip records: %v, want one %s by user:admin", skips, projections.TypeEventSkipped)
	}
	must(t, json.Unmarshal(skips[0].Data, &rec))
	if rec.Position != poison || rec.Follower != "sums" || rec.Type != PoisonType || rec.Error == "" {
		t.Errorf("skip record %+v", rec)
	}

	// Replayed from the start (a new version), the skip holds: no park.
	again := &Worker{Sums: Sums{V: 2}}
	again.Fail.Store(true)
	r = projections.NewRunner(db, store, followerOptions(), projections.Follow(again))
	stop = start(t, r)
	must(t, r.CaughtUp(ctx, "sums"))
	must(t, stop())
	if got := again.Totals(); !maps.Equal(got, w.Totals()) {
		t.Errorf("replay: %v, want %v", got, w.Totals())
	}
}

// rollbackSnapshots is a DB whose transactions that wrote a follower's
// snapshot roll back, while Fail is above 0 (counting it down), with a
// transient error: the COMMIT failed, as when the server stops.
type rollbackSnapshots struct {
	projections.DB
	Fail atomic.Int32
}

// snapshotTx notes whether a transaction wrote to follower_snapshots.
type snapshotTx struct {
	projections.Tx
	wrote bool
}

func (t *snapshotTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	t.wrote = t.wrote || strings.Contains(query, "follower_snapshots")
	return t.Tx.Exec(ctx, query, args...)
}

func (db *rollbackSnapshots) Update(ctx context.Context, fn func(projections.Tx) error) error {
	return db.DB.Update(ctx, func(tx projections.Tx) error {
		st := &snapshotTx{Tx: tx}
		if err := fn(st); err != nil || !st.wrote {
			return err
		}
		if takeOne(&db.Fail) {
			return fmt.Errorf("commit: %w: snapshot rolled back (test)", projections.ErrTransient)
		}
		return nil
	})
}

// testFollowerSnapshotRolledBack checks that a follower's snapshot whose
// transaction failed is written again: the runner does not take it for
// saved, so the snapshot at exit holds every event handled and a restart
// reads none of them again.
func testFollowerSnapshotRolledBack(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := &rollbackSnapshots{DB: newDB(t)}, NewStore(t)
	opts := fastRetry()
	opts.SnapshotEvery = 1_000_000 // only the quiet flush and the exit write snapshots
	db.Fail.Store(1)               // the first snapshot (the quiet flush) rolls back
	first := &Sums{}
	r := projections.NewRunner(db, store, opts, projections.Follow(first))
	stop := start(t, r)
	head := AppendCredits(t, store, "wallet-a", 50, 5, 10)
	must(t, r.WaitFor(ctx, "sums", head))
	if !eventually(30*time.Second, func() bool { return db.Fail.Load() == 0 }) {
		t.Fatal("no snapshot written within 30s of the log going quiet")
	}
	must(t, stop())
	var pos int64
	err := db.QueryRow(ctx, `SELECT position FROM follower_snapshots WHERE name = ?`, "sums").Scan(&pos)
	if err != nil || uint64(pos) != head {
		t.Errorf("snapshot after a rolled-back one: at %d (%v), want %d", pos, err, head)
	}

	second := &Sums{}
	r = projections.NewRunner(db, store, opts, projections.Follow(second))
	stop = start(t, r)
	must(t, r.CaughtUp(ctx, "sums"))
	must(t, stop())
	if n := second.Handled.Load(); n != 0 {
		t.Errorf("restart handled %d events again, want 0: the snapshot was behind", n)
	}
	if got, want := second.Totals(), wantSums(5, 50); !maps.Equal(got, want) {
		t.Errorf("after restart: %v, want %v", got, want)
	}
}

// testFollowerTransientParkNamesTheEvent checks that a follower whose
// event keeps failing with a transient error parks at that event, not at
// the first of the batch it came in, so that a skip gets past it.
func testFollowerTransientParkNamesTheEvent(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	AppendCredits(t, store, "wallet-a", 30, 3, 30)
	res, err := store.Append(ctx, "wallet-a", eventstore.Any, eventstore.EventData{Type: TransientType, Data: []byte(`{}`)})
	must(t, err)
	w := &Worker{}
	opts := followerOptions()
	opts.ParkAfter = 2
	r := projections.NewRunner(db, store, opts, projections.Follow(w)) // one catch-up batch of 31
	stop := start(t, r)
	st := waitParked(t, r, "sums")
	if st.ParkedAt != res.Position || st.Position != res.Position-1 {
		t.Fatalf("parked %+v, want at %d (the failing event) with the 30 credits before it handled", st, res.Position)
	}
	at, err := r.Skip(ctx, "sums", "user:admin")
	must(t, err)
	must(t, r.CaughtUp(ctx, "sums"))
	must(t, stop())
	if got, want := w.Totals(), wantSums(3, 30); at != res.Position || !maps.Equal(got, want) {
		t.Errorf("skipped %d, sums %v; want %d, %v", at, got, res.Position, want)
	}
}

// waitParked waits until projection name parks and returns its status.
func waitParked(tb testing.TB, r *projections.Runner, name string) projections.Status {
	tb.Helper()
	var st projections.Status
	if !eventually(60*time.Second, func() bool {
		st = statusOf(tb, r, name)
		return st.State == projections.StateParked
	}) {
		tb.Fatalf("%s: %+v, want parked", name, st)
	}
	return st
}
