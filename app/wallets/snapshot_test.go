package wallets_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// version returns how many events the wallet's stream holds, as svc's
// writer sees it.
func version(tb testing.TB, svc *wallets.Service, wallet string) uint64 {
	tb.Helper()
	var v uint64
	if err := svc.View(context.Background(), wallet, func(s *ledger.State) error {
		v = s.Version()
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return v
}

// fill opens wallet with accounts alice and bob and appends transfers
// between them (every third with an idempotency key) until the stream
// holds total events. Transfers are sent in concurrent waves so that the
// batcher appends them in few appends.
func fill(tb testing.TB, svc *wallets.Service, wallet string, total int) {
	tb.Helper()
	ctx := context.Background()
	meta := eventstore.Metadata{Actor: "test"}
	for _, c := range []ledger.Command{
		ledger.OpenWallet{Name: wallet, Coin: money.BTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "alice"},
		ledger.OpenAccount{Name: "bob"},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: money.New(money.BTC, 1_000_000_000)},
		ledger.ImportBalance{ID: "i-2", Account: "bob", Amount: money.New(money.BTC, 1_000_000_000)},
	} {
		if _, err := svc.Execute(ctx, meta, wallet, cmd(c)); err != nil {
			tb.Fatal(err)
		}
	}
	start := int(version(tb, svc, wallet))
	const wave = 512
	for from := start; from < total; from += wave {
		n := min(wave, total-from)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := from; i < from+n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := ledger.Transfer{ID: fmt.Sprintf("t-%d", i), From: "alice", To: "bob", Amount: money.New(money.BTC, int64(1+i%7))}
				if i%2 == 1 {
					t.From, t.To = t.To, t.From
				}
				if i%3 == 0 {
					t.Idempotency = ledger.Idempotency{Key: fmt.Sprintf("k-%d", i), RequestHash: "h"}
				}
				if _, err := svc.Execute(ctx, meta, wallet, cmd(t)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			tb.Fatal(err)
		}
	}
	if v := version(tb, svc, wallet); v != uint64(total) {
		tb.Fatalf("wallet %s holds %d events, want %d", wallet, v, total)
	}
}

// walletState returns a copy of the wallet's state as svc loads it.
func walletState(tb testing.TB, svc *wallets.Service, wallet string) *ledger.State {
	tb.Helper()
	var st *ledger.State
	if err := svc.View(context.Background(), wallet, func(s *ledger.State) error {
		st = s.Clone()
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return st
}

// TestWalletColdLoadReadsSnapshotPlusTail: a wallet of 5,000 events
// snapshotted every 1,000, then 37 more: a new service's cold load reads
// at most 1,000 events plus the tail, and holds the same state as a full
// fold (balances, idempotency keys, version).
func TestWalletColdLoadReadsSnapshotPlusTail(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	snaps, err := sqlite.OpenSnapshots(ctx, filepath.Join(t.TempDir(), "snapshots.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.Close()
	opts := wallets.Options{Snapshots: snaps, SnapshotEvery: 1000}
	svc := wallets.New(store, opts)
	fill(t, svc, "main", 5000)
	const tail = 37
	for i := range tail {
		c := ledger.Transfer{ID: fmt.Sprintf("tail-%d", i), From: "alice", To: "bob", Amount: money.New(money.BTC, 1),
			Idempotency: ledger.Idempotency{Key: fmt.Sprintf("tail-%d", i), RequestHash: "h"}}
		if _, err := svc.Execute(ctx, eventstore.Metadata{}, "main", cmd(c)); err != nil {
			t.Fatal(err)
		}
	}
	svc.Close()
	if snap, ok, err := snaps.Load(ctx, ledger.Stream("main")); err != nil || !ok || snap.Version != 4999 || snap.Schema != ledger.SnapshotSchema {
		t.Fatalf("snapshot at %d (%s), %v, %v; want one at revision 4999", snap.Version, snap.Schema, ok, err)
	}

	counting := &storetest.ReadCounter{Store: store}
	cold := wallets.New(counting, opts)
	defer cold.Close()
	got := walletState(t, cold, "main")
	if reads := counting.Read(); reads > 1000+tail || reads < tail {
		t.Fatalf("cold load read %d events; want at most 1,000 + the %d-event tail", reads, tail)
	}
	t.Logf("cold load read %d events of %d", counting.Read(), 5000+tail)

	full := wallets.New(store, wallets.Options{})
	defer full.Close()
	want := walletState(t, full, "main")
	if got.Version() != want.Version() || got.IdempotencyKeys() != want.IdempotencyKeys() {
		t.Fatalf("from snapshot: version %d, %d keys; full fold: %d, %d", got.Version(), got.IdempotencyKeys(), want.Version(), want.IdempotencyKeys())
	}
	for _, a := range []string{"alice", "bob", ledger.ImportAccount} {
		g, _ := got.Balance(a)
		w, _ := want.Balance(a)
		if g != w {
			t.Fatalf("%s: %+v from snapshot, %+v from a full fold", a, g, w)
		}
	}
	if err := got.Verify(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkColdLoad: the first command on a wallet of 100,500 events
// (the last snapshot at 100,000, every 1,000), by a new service, folding
// the whole stream ("full") or the snapshot and its 500-event tail.
func BenchmarkColdLoad(b *testing.B) {
	ctx := context.Background()
	const events = 100_500
	store := sqlitetest.Open(b)
	snaps, err := sqlite.OpenSnapshots(ctx, filepath.Join(b.TempDir(), "snapshots.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer snaps.Close()
	opts := wallets.Options{Snapshots: snaps, SnapshotEvery: 1000}
	svc := wallets.New(store, opts)
	fill(b, svc, "main", events-500) // the tail: 500 events after the last snapshot
	fill(b, svc, "other", 1000)      // another wallet, interleaved in the log
	for i := range 500 {
		c := ledger.Transfer{ID: fmt.Sprintf("tail-%d", i), From: "alice", To: "bob", Amount: money.New(money.BTC, 1)}
		if _, err := svc.Execute(ctx, eventstore.Metadata{}, "main", cmd(c)); err != nil {
			b.Fatal(err)
		}
	}
	svc.Close()
	if snap, ok, err := snaps.Load(ctx, ledger.Stream("main")); err != nil || !ok || snap.Version != events-501 {
		b.Fatalf("snapshot at %d, %v, %v; want one at revision %d", snap.Version, ok, err, events-501)
	}
	for _, bc := range []struct {
		name string
		opts wallets.Options
	}{
		{"full", wallets.Options{}},
		{"snapshot", opts},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				s := wallets.New(store, bc.opts)
				if v := version(b, s, "main"); v != events {
					b.Fatalf("version %d, want %d", v, events)
				}
				s.Close()
			}
		})
	}
}
