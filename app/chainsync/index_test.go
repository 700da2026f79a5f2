package chainsync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/null"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// sameIndex fails unless got maps what want maps.
func sameIndex(t *testing.T, what string, got, want *chainsync.Index) {
	t.Helper()
	gc, ga, gw := chainsync.IndexContents(got)
	wc, wa, ww := chainsync.IndexContents(want)
	if !reflect.DeepEqual(gc, wc) || !reflect.DeepEqual(ga, wa) || !reflect.DeepEqual(gw, ww) {
		t.Fatalf("%s:\ncoins %v addresses %v withdrawals %v\nwant\ncoins %v addresses %v withdrawals %v", what, gc, ga, gw, wc, wa, ww)
	}
}

func fed(t *testing.T, events []eventstore.Event) *chainsync.Index {
	t.Helper()
	x := chainsync.NewIndex()
	for _, ev := range events {
		if err := x.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// TestIndexSnapshotRoundTrip: over a log with two wallets of two coins,
// addresses and a broadcast withdrawal, the index fed up to any cut,
// snapshotted, restored into a new index and fed the rest maps the same as
// one fed the whole log; Restore(nil) empties it; a corrupt snapshot or a
// malformed event is an error that changes nothing.
func TestIndexSnapshotRoundTrip(t *testing.T) {
	f, _ := funded(t)
	f.address()
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "ext1out", Amount: money.New(money.BTC, 30_000)})
	if err := f.sync.Broadcast(f.ctx); err != nil {
		t.Fatal(err)
	}
	meta := eventstore.Metadata{Actor: "test"}
	for _, cmd := range []ledger.Command{
		ledger.OpenWallet{Name: "l", Coin: money.LTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "bob"},
		ledger.AssignAddress{Account: "bob", Address: "ltc-address-1"},
	} {
		if _, err := f.wallets.Execute(f.ctx, meta, "l", func(*ledger.State) (ledger.Command, error) { return cmd, nil }); err != nil {
			t.Fatal(err)
		}
	}
	events, err := f.store.ReadAll(f.ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	full := fed(t, events)
	coins, addresses, withdrawals := chainsync.IndexContents(full)
	if len(coins) != 2 || len(addresses) != 3 || len(withdrawals) != 1 {
		t.Fatalf("full fold: coins %v addresses %v withdrawals %v", coins, addresses, withdrawals)
	}
	for cut := 0; cut <= len(events); cut++ {
		before := fed(t, events[:cut])
		snap, err := before.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		after := chainsync.NewIndex()
		if err := after.Restore(snap); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		sameIndex(t, fmt.Sprintf("cut %d restored", cut), after, before)
		for _, ev := range events[cut:] {
			if err := after.Handle(f.ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		sameIndex(t, fmt.Sprintf("cut %d restored and fed the rest", cut), after, full)
	}

	x := fed(t, events)
	snap, err := x.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := x.Restore(snap[:len(snap)-1]); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	bad := eventstore.Event{Stream: ledger.Stream("w"), Type: ledger.TypeAddressAssigned, Data: []byte(`{"address":`)}
	if err := x.Handle(f.ctx, bad); err == nil {
		t.Fatal("a malformed event was handled")
	}
	sameIndex(t, "after failures", x, full)
	if err := x.Restore(nil); err != nil {
		t.Fatal(err)
	}
	sameIndex(t, "after Restore(nil)", x, chainsync.NewIndex())
}

// TestJustAssignedAddressRoutesAtOnce: through a real runner on SQLite, a
// payment to an address assigned a moment ago is credited by the very next
// notification, and the address is listed at once.
func TestJustAssignedAddressRoutesAtOnce(t *testing.T) {
	f := newFixture(t, nil)
	for i := range 20 {
		a := f.address()
		f.notify(f.chain.Pay(a, 1000))
		if b := f.balance(); b.Pending != int64(i+1)*1000 {
			t.Fatalf("payment %d to a just-assigned address: %+v", i, b)
		}
		list, err := f.sync.Addresses(f.ctx)
		if err != nil || !slices.Contains(list, a) {
			t.Fatalf("addresses %v (%v) lack the one just assigned", list, err)
		}
	}
}

// countedIndex counts the events an index is handed that it wants.
type countedIndex struct {
	*chainsync.Index
	handled atomic.Int64
}

func (c *countedIndex) Handle(ctx context.Context, e eventstore.Event) error {
	if c.Wants(e) {
		c.handled.Add(1)
	}
	return c.Index.Handle(ctx, e)
}

// TestIndexRestartsFromItsSnapshot: a runner restarted over the same
// read-model database restores the index from its snapshot: it does not
// read the log from position 0 and handles no old event again, routes
// what it knew, and routes an address assigned after the restart at once.
func TestIndexRestartsFromItsSnapshot(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := wallets.New(store, wallets.Options{})
	t.Cleanup(func() { ws.Close(); store.Close() })
	counter := &storetest.LogCounter{Store: store}
	path := filepath.Join(t.TempDir(), "readmodels.db")
	opts := projections.Options{SnapshotEvery: 5}
	do := func(cmd ledger.Command) {
		t.Helper()
		if _, err := ws.Execute(ctx, eventstore.Metadata{Actor: "test"}, "w", func(*ledger.State) (ledger.Command, error) { return cmd, nil }); err != nil {
			t.Fatal(err)
		}
	}
	do(ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: ledger.AllPermissions(), Confirmations: 1})
	do(ledger.OpenAccount{Name: "alice"})
	chain := null.New("BTC")
	var assigned []string
	for range 12 {
		a, err := chain.NewAddress(ctx)
		if err != nil {
			t.Fatal(err)
		}
		do(ledger.AssignAddress{Account: "alice", Address: a})
		assigned = append(assigned, a)
	}

	first := &countedIndex{Index: chainsync.NewIndex()}
	caughtUp, stop := dbtest.RunFollower(t, counter, path, first, opts)
	wait(t, caughtUp)
	if got := first.handled.Load(); got != 13 {
		t.Fatalf("first run handled %d wallet events, want 13", got)
	}
	stop()

	counter.Reset()
	second := &countedIndex{Index: chainsync.NewIndex()}
	caughtUp, _ = dbtest.RunFollower(t, counter, path, second, opts)
	wait(t, caughtUp)
	sameIndex(t, "restored", second.Index, first.Index)
	if got := counter.FromStart(); got != 0 {
		t.Errorf("%d reads of the log from position 0 after the restart", got)
	}
	if got := second.handled.Load(); got != 0 {
		t.Errorf("after the restart %d old wallet events handled again", got)
	}

	reg := chainsync.NewRegistry(store, ws, second.Index, caughtUp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s := reg.Add("BTC", chain, chainsync.Options{Kind: "null"})
	late, err := s.NewAddress(ctx)
	if err != nil {
		t.Fatal(err)
	}
	do(ledger.AssignAddress{Account: "alice", Address: late})
	for _, a := range []string{assigned[0], late} {
		if _, err := s.Notify(ctx, chain.Pay(a, 500)); err != nil {
			t.Fatal(err)
		}
	}
	var b ledger.Balance
	if err := ws.View(ctx, "w", func(st *ledger.State) error { b, _ = st.Balance("alice"); return nil }); err != nil {
		t.Fatal(err)
	}
	if b.Pending != 1000 {
		t.Fatalf("after paying an old and a new address: %+v", b)
	}
	if got := second.handled.Load(); got != 1 {
		t.Errorf("after the restart %d wallet events handled, want the late address", got)
	}
}

func wait(t *testing.T, caughtUp func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := caughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}
