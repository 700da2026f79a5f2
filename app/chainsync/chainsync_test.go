package chainsync_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/null"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

type fixture struct {
	t       *testing.T
	ctx     context.Context
	store   *sqlite.Store
	wallets *wallets.Service
	chain   *null.Chain
	backend chainsync.Backend
	reg     *chainsync.Registry
	sync    *chainsync.Syncer
}

// newFixture opens a store with wallet "w" of BTC (threshold 3) holding
// account "alice", bound to a simulated chain. backend wraps the chain
// when a test needs to inject faults.
func newFixture(t *testing.T, wrap func(*null.Chain) chainsync.Backend) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ws := wallets.New(store, wallets.Options{})
	t.Cleanup(func() { ws.Close(); store.Close() })
	f := &fixture{t: t, ctx: ctx, store: store, wallets: ws, chain: null.New("BTC")}
	f.backend = f.chain
	if wrap != nil {
		f.backend = wrap(f.chain)
	}
	idx := chainsync.NewIndex()
	caughtUp, _ := dbtest.RunFollower(t, store, filepath.Join(t.TempDir(), "readmodels.db"), idx, projections.Options{})
	f.reg = chainsync.NewRegistry(store, ws, idx, caughtUp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.sync = f.reg.Add("BTC", f.backend, chainsync.Options{Kind: "null"})
	f.do(ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: ledger.AllPermissions(), Confirmations: 3})
	f.do(ledger.OpenAccount{Name: "alice"})
	return f
}

func (f *fixture) do(cmd ledger.Command) wallets.Result {
	f.t.Helper()
	res, err := f.wallets.Execute(f.ctx, eventstore.Metadata{Actor: "test"}, "w", func(*ledger.State) (ledger.Command, error) { return cmd, nil })
	if err != nil {
		f.t.Fatalf("%T: %v", cmd, err)
	}
	return res
}

func (f *fixture) address() string {
	f.t.Helper()
	a, err := f.sync.NewAddress(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	f.do(ledger.AssignAddress{Account: "alice", Address: a})
	return a
}

func (f *fixture) notify(txid string) {
	f.t.Helper()
	if _, err := f.sync.Notify(f.ctx, txid); err != nil {
		f.t.Fatalf("notify %s: %v", txid, err)
	}
}

func (f *fixture) balance() ledger.Balance {
	f.t.Helper()
	var b ledger.Balance
	if err := f.wallets.View(f.ctx, "w", func(st *ledger.State) error { b, _ = st.Balance("alice"); return nil }); err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fixture) withdrawal(id string) ledger.Withdrawal {
	f.t.Helper()
	var w ledger.Withdrawal
	if err := f.wallets.View(f.ctx, "w", func(st *ledger.State) error { w, _ = st.Withdrawal(id); return nil }); err != nil {
		f.t.Fatal(err)
	}
	return w
}

func (f *fixture) debt() int64 {
	var d int64
	_ = f.wallets.View(f.ctx, "w", func(st *ledger.State) error { d = st.Debt("alice"); return nil })
	return d
}

func TestRepeatedNotificationsCreditOnce(t *testing.T) {
	f := newFixture(t, nil)
	txid := f.chain.Pay(f.address(), 50_000)
	for range 5 {
		f.notify(txid)
	}
	if b := f.balance(); b.Pending != 50_000 || b.Available != 0 {
		t.Fatalf("after 5 notifications in the mempool: %+v", b)
	}
	f.chain.Mine(3)
	for range 5 {
		f.notify(txid)
	}
	if b := f.balance(); b.Pending != 0 || b.Available != 50_000 {
		t.Fatalf("after 3 blocks and 5 notifications: %+v", b)
	}
}

func TestConfirmationsFollowBlocks(t *testing.T) {
	f := newFixture(t, nil)
	txid := f.chain.Pay(f.address(), 10_000)
	f.notify(txid)
	for i := 1; i <= 3; i++ {
		f.chain.Mine(1)
		if _, err := f.sync.Refresh(f.ctx); err != nil {
			t.Fatal(err)
		}
		b := f.balance()
		if confirmed := i >= 3; confirmed != (b.Available == 10_000) {
			t.Fatalf("after %d blocks: %+v", i, b)
		}
	}
}

func TestLostNotificationFoundByRescan(t *testing.T) {
	f := newFixture(t, nil)
	addr := f.address()
	if n, err := f.sync.Rescan(f.ctx); err != nil || n != 0 {
		t.Fatalf("first rescan: %d %v", n, err)
	}
	f.chain.Pay(addr, 7_000) // nobody notifies
	f.chain.Mine(3)
	if n, err := f.sync.Rescan(f.ctx); err != nil || n != 1 {
		t.Fatalf("rescan: %d txids, %v", n, err)
	}
	if b := f.balance(); b.Available != 7_000 {
		t.Fatalf("after rescan: %+v", b)
	}
	// The checkpoint moved: the next rescan looks only at newer blocks.
	if n, err := f.sync.Rescan(f.ctx); err != nil || n != 0 {
		t.Fatalf("rescan again: %d txids, %v", n, err)
	}
}

func TestReorgReversesDeposit(t *testing.T) {
	f := newFixture(t, nil)
	addr := f.address()
	seen := f.chain.Pay(addr, 4_000)
	f.chain.Mine(1)
	f.notify(seen) // 1 confirmation: pending
	f.chain.Reorg(1, false)
	if _, err := f.sync.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	if b := f.balance(); b.Pending != 0 || b.Available != 0 {
		t.Fatalf("pending deposit reorged out: %+v", b)
	}

	// A confirmed deposit that was spent meanwhile: the reversal takes what
	// is available and records the rest as debt.
	credited := f.chain.Pay(addr, 9_000)
	f.chain.Mine(3)
	f.notify(credited)
	f.do(ledger.OpenAccount{Name: "bob"})
	f.do(ledger.Transfer{ID: "t1", From: "alice", To: "bob", Amount: money.New(money.BTC, 6_000)})
	f.chain.Reorg(3, false)
	f.notify(credited)
	if b, d := f.balance(), f.debt(); b.Available != 0 || d != 6_000 {
		t.Fatalf("after reversing a spent deposit: %+v, debt %d", b, d)
	}
	f.notify(credited) // repeated: nothing more
	if d := f.debt(); d != 6_000 {
		t.Fatalf("debt %d after a repeated notification", d)
	}
}

func TestDoubleSpendReversesDeposit(t *testing.T) {
	f := newFixture(t, nil)
	txid := f.chain.Pay(f.address(), 3_000)
	f.notify(txid)
	if err := f.chain.DoubleSpend(txid); err != nil {
		t.Fatal(err)
	}
	f.notify(txid)
	if b := f.balance(); b.Pending != 0 {
		t.Fatalf("after double spend: %+v", b)
	}
}

func TestRescanUnknownCoinAddress(t *testing.T) {
	f := newFixture(t, nil)
	stranger, _ := f.chain.NewAddress(f.ctx) // the node's, but of no wallet
	f.notify(f.chain.Pay(stranger, 1_000))
	if b := f.balance(); b.Total() != 0 {
		t.Fatalf("credited a payment to an address of no wallet: %+v", b)
	}
}

// faulty makes the chain's sends fail the way a test asks.
type faulty struct {
	*null.Chain
	sendErr error // returned instead of sending, once
	sends   int   // sends that reached the chain
}

func (b *faulty) Send(ctx context.Context, address string, amount int64, subtractFee bool) (chainsync.Sent, error) {
	if err := b.sendErr; err != nil {
		b.sendErr = nil
		return chainsync.Sent{}, err
	}
	b.sends++
	return b.Chain.Send(ctx, address, amount, subtractFee)
}

// funded credits alice with 100,000 confirmed and gives the node's wallet
// the coins to send.
func funded(t *testing.T) (*fixture, *faulty) {
	var fb *faulty
	f := newFixture(t, func(c *null.Chain) chainsync.Backend { fb = &faulty{Chain: c}; return fb })
	txid := f.chain.Pay(f.address(), 100_000)
	f.chain.Mine(3)
	f.notify(txid)
	return f, fb
}

func TestWithdrawalBroadcastAndConfirm(t *testing.T) {
	f, fb := funded(t)
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "ext1out", Amount: money.New(money.BTC, 30_000)})
	if err := f.sync.Broadcast(f.ctx); err != nil {
		t.Fatal(err)
	}
	w := f.withdrawal("w1")
	if w.Status != ledger.WithdrawalStatusBroadcast || w.Fee != null.DefaultFee || fb.sends != 1 {
		t.Fatalf("after broadcast: %+v, %d sends", w, fb.sends)
	}
	if b := f.balance(); b.Available != 100_000-30_000-null.DefaultFee || b.Held != 0 {
		t.Fatalf("balance after broadcast: %+v", b)
	}
	if err := f.sync.Broadcast(f.ctx); err != nil || fb.sends != 1 {
		t.Fatalf("second round: %v, %d sends", err, fb.sends)
	}
	f.chain.Mine(3)
	if _, err := f.sync.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	if w := f.withdrawal("w1"); w.Status != ledger.WithdrawalStatusConfirmed {
		t.Fatalf("after 3 blocks: %+v", w)
	}
}

func TestWithdrawalNodeDownIsRetriedNotResent(t *testing.T) {
	f, fb := funded(t)
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "ext1out", Amount: money.New(money.BTC, 30_000)})

	f.chain.SetDown(true) // down before the send: nothing recorded, nothing sent
	if err := f.sync.Broadcast(f.ctx); !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("broadcast while down: %v", err)
	}
	if w := f.withdrawal("w1"); w.Status != ledger.WithdrawalStatusRequested || fb.sends != 0 {
		t.Fatalf("after an outage: %+v, %d sends", w, fb.sends)
	}
	f.chain.SetDown(false)

	// Down at the send itself (refused: it never got there): back to requested.
	fb.sendErr = chainsync.ErrUnavailable
	if err := f.sync.Broadcast(f.ctx); !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("broadcast refused: %v", err)
	}
	if w := f.withdrawal("w1"); w.Status != ledger.WithdrawalStatusRequested || fb.sends != 0 {
		t.Fatalf("after a refused send: %+v", w)
	}
	if err := f.sync.Broadcast(f.ctx); err != nil {
		t.Fatal(err)
	}
	if w := f.withdrawal("w1"); w.Status != ledger.WithdrawalStatusBroadcast || fb.sends != 1 {
		t.Fatalf("after the node came back: %+v, %d sends", w, fb.sends)
	}
}

func TestWithdrawalAmbiguousOutcomeIsNeverResent(t *testing.T) {
	f, fb := funded(t)
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "ext1out", Amount: money.New(money.BTC, 30_000)})
	fb.sendErr = chainsync.ErrAmbiguous
	if err := f.sync.Broadcast(f.ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := f.sync.Broadcast(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	w := f.withdrawal("w1")
	if w.Status != ledger.WithdrawalStatusUnknown || fb.sends != 0 {
		t.Fatalf("ambiguous send: %+v, %d sends", w, fb.sends)
	}
	if b := f.balance(); b.Held != 30_000 {
		t.Fatalf("funds of an unknown withdrawal: %+v, want held", b)
	}
}

func TestWithdrawalRejectedReleasesFunds(t *testing.T) {
	f, fb := funded(t)
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "bad.address", Amount: money.New(money.BTC, 30_000)})
	if err := f.sync.Broadcast(f.ctx); err != nil {
		t.Fatal(err)
	}
	if w := f.withdrawal("w1"); w.Status != ledger.WithdrawalStatusFailed || fb.sends != 1 {
		t.Fatalf("rejected send: %+v", w)
	}
	if b := f.balance(); b.Available != 100_000 || b.Held != 0 {
		t.Fatalf("after a rejected send: %+v", b)
	}
}

func TestInterruptedBroadcastMarkedUnknownOnStart(t *testing.T) {
	f, fb := funded(t)
	f.do(ledger.RequestWithdrawal{ID: "w1", Account: "alice", Address: "ext1out", Amount: money.New(money.BTC, 30_000)})
	f.do(ledger.BeginBroadcast{ID: "w1"}) // a crash right after
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { f.reg.Run(ctx); close(done) }()
	deadline := 0
	for f.withdrawal("w1").Status != ledger.WithdrawalStatusUnknown {
		if deadline++; deadline > 500 {
			t.Fatalf("not marked unknown: %+v", f.withdrawal("w1"))
		}
		waitABit()
	}
	cancel()
	<-done
	if fb.sends != 0 {
		t.Fatalf("%d sends of an interrupted broadcast", fb.sends)
	}
}

func waitABit() { time.Sleep(10 * time.Millisecond) }

// TestConcurrentNotificationsCreditOnce: the same txids notified from many
// goroutines at once (several channels, the block poller, a rescan)
// credit each deposit once.
func TestConcurrentNotificationsCreditOnce(t *testing.T) {
	f := newFixture(t, nil)
	addr := f.address()
	var txids []string
	for i := range 5 {
		txids = append(txids, f.chain.Pay(addr, int64(1000*(i+1))))
	}
	f.chain.Mine(3)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range txids {
				if _, err := f.sync.Notify(f.ctx, txids[(i+g)%len(txids)]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		if _, err := f.sync.Refresh(f.ctx); err != nil {
			errs <- err
		}
	})
	wg.Go(func() {
		if _, err := f.sync.Rescan(f.ctx); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b := f.balance(); b.Available != 15_000 || b.Pending != 0 {
		t.Fatalf("after concurrent notifications: %+v, want 15000 available", b)
	}
}
