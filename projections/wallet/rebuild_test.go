package wallet_test

import (
	"context"
	"reflect"
	"slices"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// TestRebuildIdentical projects a random workload twice: once live, one
// event per transaction, with restarts while events keep coming; once as a
// catch-up from position 0 into a fresh database in large batches. The
// tables must be identical, agree with the decider's own state, and every
// account's entries must chain up to its balance.
func TestRebuildIdentical(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		l := newLedgers(store)
		w := newWorkload(l, clk, 7)
		wallets := []string{"alpha", "beta"}
		for _, name := range wallets {
			w.open(t, name, 5)
		}
		for range 600 {
			w.step(t, wallets)
		}

		// Live, with restarts: one event per batch, then small batches.
		live := newDB(t)
		r := startRunner(t, live, smallBatches{Store: store, size: 1}, projections.Options{MaxBatch: 1})
		mid, err := store.Head(ctx)
		must(t, err)
		r.waitFor(t, mid/2)
		must(t, r.stop())
		r = startRunner(t, live, smallBatches{Store: store, size: 3}, projections.Options{MaxBatch: 5})
		for i := range 600 {
			w.step(t, wallets)
			if i == 200 {
				must(t, r.stop())
				r = startRunner(t, live, store, projections.Options{})
			}
		}
		r.waitHead(t, store)
		must(t, r.stop())

		// Rebuild from 0, in batches large enough to decode in parallel.
		rebuilt := newDB(t)
		sizes := &batchSizes{Projection: wallet.New()}
		r = startRunnerWith(t, rebuilt, store, projections.Options{}, sizes)
		r.waitHead(t, store)
		must(t, r.stop())
		// Two decoders need 2*parallelMin (1024) events in a batch.
		if n := sizes.largest(); n < 1024 {
			t.Errorf("the rebuild's largest batch has %d events, want at least 1024", n)
		}

		a, b := dump(t, live), dump(t, rebuilt)
		for _, tbl := range tables {
			if !reflect.DeepEqual(a[tbl.name], b[tbl.name]) {
				t.Errorf("%s differs between the live build (%d rows) and the rebuild (%d rows)", tbl.name, len(a[tbl.name]), len(b[tbl.name]))
			}
		}
		if n := len(a["wallet_entries"]); n < 500 {
			t.Errorf("only %d entries: the workload is too small to mean much", n)
		}
		if n := len(a["wallet_holds"]); n < 10 {
			t.Errorf("only %d holds", n)
		}
		t.Logf("%d entries, %d transfers, %d holds", len(a["wallet_entries"]), len(a["wallet_transfers"]), len(a["wallet_holds"]))

		for _, name := range wallets {
			checkAgainstState(t, live, name, l.states[name])
		}
	})
}

// checkAgainstState compares a wallet's read model with the decider's
// state and checks that each account's entries chain from zero to its
// balance.
func checkAgainstState(t *testing.T, db projections.DB, name string, s *ledger.State) {
	t.Helper()
	ctx := context.Background()
	if err := s.Verify(); err != nil {
		t.Fatalf("the decider's state is unsound: %v", err)
	}
	w, err := wallet.GetWallet(ctx, db, name)
	must(t, err)
	if w.Locked != s.Locked() {
		t.Errorf("%s: locked %v, decider says %v", name, w.Locked, s.Locked())
	}
	users, err := wallet.ListAccounts(ctx, db, name)
	must(t, err)
	system, err := wallet.ListSystemAccounts(ctx, db, name)
	must(t, err)
	var names []string
	for _, a := range users {
		names = append(names, a.Name)
	}
	if !slices.Equal(names, s.Accounts()) {
		t.Errorf("%s: accounts %v, decider has %v", name, names, s.Accounts())
	}
	for _, a := range append(users, system...) {
		want, ok := s.Balance(a.Name)
		if !ok || a.Balance != (wallet.Balance(want)) {
			t.Errorf("%s/%s: balance %+v, decider says %+v", name, a.Name, a.Balance, want)
		}
		// Page through the history, oldest last.
		var entries []wallet.Entry
		before := uint64(0)
		for {
			page, err := wallet.Entries(ctx, db, name, a.Name, before, 7)
			must(t, err)
			if len(page) == 0 {
				break
			}
			entries = append(entries, page...)
			before = page[len(page)-1].Position
		}
		var run wallet.Balance
		for i := len(entries) - 1; i >= 0; i-- {
			e := entries[i]
			run = wallet.Balance{Available: run.Available + e.Delta.Available, Pending: run.Pending + e.Delta.Pending, Held: run.Held + e.Delta.Held}
			if e.After != run {
				t.Fatalf("%s/%s: entry at %d has balance after %+v, the deltas sum to %+v", name, a.Name, e.Position, e.After, run)
			}
			if i < len(entries)-1 && e.Position <= entries[i+1].Position {
				t.Fatalf("%s/%s: entries not newest first at %d", name, a.Name, e.Position)
			}
			if got, pos, err := wallet.BalanceAtPosition(ctx, db, name, a.Name, e.Position); err != nil || got != run || pos != e.Position {
				t.Fatalf("%s/%s at %d: %+v at %d, %v; want %+v", name, a.Name, e.Position, got, pos, err, run)
			}
		}
		if run != a.Balance {
			t.Errorf("%s/%s: entries sum to %+v, balance is %+v", name, a.Name, run, a.Balance)
		}
		if len(entries) > 0 && entries[0].Position != a.Position {
			t.Errorf("%s/%s: position %d, newest entry at %d", name, a.Name, a.Position, entries[0].Position)
		}
	}
	for _, h := range s.Holds() {
		got, err := wallet.GetHold(ctx, db, name, h.ID)
		must(t, err)
		if got.Status != wallet.HoldActive || got.Account != h.Account || got.Amount != h.Amount || got.Reason != h.Reason || !got.ExpiresAt.Equal(h.ExpiresAt) {
			t.Errorf("%s: hold %+v, decider has active %+v", name, got, h)
		}
	}
	var active int64
	must(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM wallet_holds WHERE wallet = ? AND status = ?`, name, wallet.HoldActive).Scan(&active))
	if active != int64(len(s.Holds())) {
		t.Errorf("%s: %d active holds, decider has %d", name, active, len(s.Holds()))
	}
	sum, err := wallet.SumBalances(ctx, db, name)
	must(t, err)
	if sum.Total() != 0 {
		t.Errorf("%s: balances sum to %+v", name, sum)
	}
}
