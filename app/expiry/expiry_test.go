package expiry_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/expiry"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a fake clock the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// node is one running instance: a wallet service, and a scheduler over a
// store fed by a projection runner over the read-model database at a path.
type node struct {
	svc  *wallets.Service
	sch  *expiry.Scheduler
	stop func()
}

func start(t *testing.T, store eventstore.Store, readModels string, clk *clock) *node {
	t.Helper()
	svc := wallets.New(store, wallets.Options{})
	sch := expiry.New(svc, nil, expiry.Options{Now: clk.Now, MaxWait: 5 * time.Millisecond, Retry: 10 * time.Millisecond})
	caughtUp, stopRunner := dbtest.RunFollower(t, store, readModels, sch, projections.Options{SnapshotEvery: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx, caughtUp) }()
	var once sync.Once
	n := &node{svc: svc, sch: sch, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("scheduler: %v", err)
			}
			stopRunner()
			svc.Close()
		})
	}}
	t.Cleanup(n.stop)
	return n
}

func openStore(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

func do(t *testing.T, svc *wallets.Service, cmds ...ledger.Command) {
	t.Helper()
	for _, c := range cmds {
		if _, err := svc.Execute(context.Background(), eventstore.Metadata{Actor: "test"}, "main",
			func(*ledger.State) (ledger.Command, error) { return c, nil }); err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
}

func hold(id string, units int64, expires time.Time) ledger.PlaceHold {
	return ledger.PlaceHold{ID: id, Account: "alice", Amount: money.New(money.BTC, units), ExpiresAt: expires, Now: t0}
}

// expiries counts the HoldExpired events of the wallet per hold, and
// checks that each was appended by the scheduler.
func expiries(t *testing.T, store eventstore.Store) map[string]int {
	t.Helper()
	events, err := store.ReadStream(context.Background(), ledger.Stream("main"), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	codec := eventstore.NewCodecOf(ledger.Events()...)
	out := map[string]int{}
	for _, ev := range events {
		if ev.Type != ledger.TypeHoldExpired {
			continue
		}
		d, err := codec.Decode(ev)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Metadata.Actor != expiry.Actor {
			t.Errorf("hold_expired by %q, want %q", ev.Metadata.Actor, expiry.Actor)
		}
		out[d.(ledger.HoldExpired).ID]++
	}
	return out
}

// active reports whether the hold is still active in the wallet's state.
func active(t *testing.T, svc *wallets.Service, id string) bool {
	t.Helper()
	var ok bool
	if err := svc.View(context.Background(), "main", func(s *ledger.State) error {
		_, ok = s.Hold(id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func waitExpired(t *testing.T, svc *wallets.Service, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, id := range ids {
		for active(t, svc, id) {
			if time.Now().After(deadline) {
				t.Fatalf("hold %s not expired within 10s", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestSchedulerExpiresHoldsAcrossRestarts: holds expire when the clock
// passes their expiry, not before; holds without expiry or released stay
// as they are; a hold that expired while the service was down is expired
// at the next start; each hold is expired once. The restart is cold (a
// new read-model database: the log is read from 0) or from the
// scheduler's snapshot (the same database: the log is not read from 0).
func TestSchedulerExpiresHoldsAcrossRestarts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool
	}{{"cold", false}, {"from snapshot", true}} {
		t.Run(tc.name, func(t *testing.T) { testExpiresAcrossRestart(t, tc.snapshot) })
	}
}

func testExpiresAcrossRestart(t *testing.T, fromSnapshot bool) {
	path := filepath.Join(t.TempDir(), "events.db")
	readModels := filepath.Join(t.TempDir(), "readmodels.db")
	clk := &clock{t: t0}
	store := openStore(t, path)
	n := start(t, store, readModels, clk)
	do(t, n.svc,
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "alice"},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: money.New(money.BTC, 1000)},
		hold("h-1", 100, t0.Add(time.Minute)),
		hold("h-2", 200, t0.Add(10*time.Minute)),
		hold("h-3", 300, time.Time{}),
		hold("h-4", 50, t0.Add(time.Minute)),
		ledger.ReleaseHold{ID: "h-4"},
	)

	time.Sleep(50 * time.Millisecond) // ten looks at the clock: nothing is due
	if got := expiries(t, store); len(got) != 0 {
		t.Fatalf("expired before their time: %v", got)
	}

	clk.Set(t0.Add(2 * time.Minute))
	waitExpired(t, n.svc, "h-1")
	if !active(t, n.svc, "h-2") || !active(t, n.svc, "h-3") {
		t.Fatal("a hold not yet due was ended")
	}

	// Restart: h-2 falls due while nothing runs.
	n.stop()
	store.Close()
	clk.Set(t0.Add(11 * time.Minute))
	store = openStore(t, path)
	counter := &storetest.LogCounter{Store: store}
	if !fromSnapshot {
		readModels = filepath.Join(t.TempDir(), "readmodels.db")
	}
	n = start(t, counter, readModels, clk)
	waitExpired(t, n.svc, "h-2")
	if got := counter.FromStart(); fromSnapshot && got != 0 {
		t.Errorf("restart from the snapshot read the log from 0 %d times", got)
	}
	time.Sleep(50 * time.Millisecond) // let a second expiry show, if there were one
	if got := expiries(t, store); len(got) != 2 || got["h-1"] != 1 || got["h-2"] != 1 {
		t.Fatalf("expiries %v, want h-1 and h-2 once each", got)
	}
	if !active(t, n.svc, "h-3") {
		t.Fatal("the hold without expiry was ended")
	}
	var b ledger.Balance
	if err := n.svc.View(context.Background(), "main", func(s *ledger.State) error {
		b, _ = s.Balance("alice")
		return s.Verify()
	}); err != nil {
		t.Fatal(err)
	}
	if b != (ledger.Balance{Available: 700, Held: 300}) {
		t.Fatalf("alice %+v, want 700 available and 300 held", b)
	}
}

// TestTwoSchedulersExpireOnce: two instances (each its own wallet writer)
// race on the same holds; the decider lets each expire once.
func TestTwoSchedulersExpireOnce(t *testing.T) {
	clk := &clock{t: t0}
	store := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	a := start(t, store, filepath.Join(t.TempDir(), "a.db"), clk)
	start(t, store, filepath.Join(t.TempDir(), "b.db"), clk) // a second instance
	do(t, a.svc,
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "alice"},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: money.New(money.BTC, 1000)})
	var ids []string
	for i := range 20 {
		id := "h-" + string(rune('a'+i))
		ids = append(ids, id)
		do(t, a.svc, hold(id, 10, t0.Add(time.Minute)))
	}
	clk.Set(t0.Add(time.Minute))
	// Each writer's state is current only to its own last append: watch
	// the log.
	deadline := time.Now().Add(10 * time.Second)
	for len(expiries(t, store)) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("expired %v of %d holds within 10s", expiries(t, store), len(ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let late tries land, if any would
	got := expiries(t, store)
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("hold %s expired %d times", id, got[id])
		}
	}
}

// TestSchedulerSnapshotRoundTrip: for every cut of a log of holds placed,
// released and expired over two wallets, the scheduler fed up to the cut,
// snapshotted, restored into a new scheduler and fed the rest holds the
// same pending holds, due at the same times, as one fed the whole log;
// Restore(nil) empties it; a corrupt snapshot or an undecodable hold event
// is an error that changes nothing.
func TestSchedulerSnapshotRoundTrip(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "events.db"))
	svc := wallets.New(store, wallets.Options{})
	t.Cleanup(svc.Close)
	for _, w := range []string{"main", "other"} {
		if _, err := svc.Execute(context.Background(), eventstore.Metadata{Actor: "test"}, w, func(*ledger.State) (ledger.Command, error) {
			return ledger.OpenWallet{Name: w, Coin: money.BTC, Permissions: ledger.AllPermissions()}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	do(t, svc,
		ledger.OpenAccount{Name: "alice"},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: money.New(money.BTC, 1000)},
		hold("h-1", 100, t0.Add(time.Minute)),
		hold("h-2", 200, t0.Add(10*time.Minute)),
		hold("h-3", 300, time.Time{}),
		hold("h-4", 50, t0.Add(time.Minute)),
		ledger.ReleaseHold{ID: "h-4"},
		hold("h-5", 10, t0.Add(time.Second)),
		ledger.ExpireHold{ID: "h-5", Now: t0.Add(time.Hour)},
	)
	events, err := store.ReadAll(context.Background(), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	// The same hold ids in another wallet's stream are other holds.
	for _, ev := range events {
		if ev.Stream == ledger.Stream("main") && ev.Type == ledger.TypeHoldPlaced {
			ev.Stream, ev.Position = ledger.Stream("other"), ev.Position+10_000
			events = append(events, ev)
		}
	}
	fed := func(events []eventstore.Event) *expiry.Scheduler {
		s := expiry.New(nil, nil, expiry.Options{})
		for _, ev := range events {
			if err := s.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		return s
	}
	full := expiry.Pending(fed(events))
	want := map[string]time.Time{"main/h-1": t0.Add(time.Minute), "main/h-2": t0.Add(10 * time.Minute),
		"other/h-1": t0.Add(time.Minute), "other/h-2": t0.Add(10 * time.Minute), "other/h-4": t0.Add(time.Minute),
		"other/h-5": t0.Add(time.Second)}
	samePending(t, "full fold", full, want)
	for cut := 0; cut <= len(events); cut++ {
		before := fed(events[:cut])
		snap, err := before.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		after := expiry.New(nil, nil, expiry.Options{})
		if err := after.Restore(snap); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		samePending(t, fmt.Sprintf("cut %d restored", cut), expiry.Pending(after), expiry.Pending(before))
		for _, ev := range events[cut:] {
			if err := after.Handle(context.Background(), ev); err != nil {
				t.Fatal(err)
			}
		}
		samePending(t, fmt.Sprintf("cut %d restored and fed the rest", cut), expiry.Pending(after), full)
	}

	s := fed(events)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(snap[:len(snap)-1]); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	bad := eventstore.Event{Stream: ledger.Stream("main"), Type: ledger.TypeHoldPlaced, Data: []byte(`{"id":`), Position: 99_999}
	if err := s.Handle(context.Background(), bad); err == nil {
		t.Fatal("an undecodable hold event was handled")
	}
	samePending(t, "after failures", expiry.Pending(s), full)
	if err := s.Restore(nil); err != nil {
		t.Fatal(err)
	}
	samePending(t, "after Restore(nil)", expiry.Pending(s), map[string]time.Time{})
}

func samePending(t *testing.T, what string, got, want map[string]time.Time) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: pending %v, want %v", what, got, want)
	}
	for h, at := range want {
		if !got[h].Equal(at) {
			t.Fatalf("%s: pending %v, want %v", what, got, want)
		}
	}
}
