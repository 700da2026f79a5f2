package wallet_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

func btc(units int64) money.Amount { return money.New(money.BTC, units) }

func TestCodecKnowsEveryLedgerEvent(t *testing.T) {
	c := wallet.Codec()
	for _, e := range ledger.Events() {
		if !c.Knows(e.EventType()) {
			t.Errorf("codec does not know %s (%T)", e.EventType(), e)
		}
	}
	if name := wallet.New().Name(); name != "wallet" {
		t.Errorf("projection name %q, want wallet", name)
	}
}

func TestMigrationsSameStepsPerDialect(t *testing.T) {
	p := wallet.New()
	if a, b := len(p.Migrations(projections.SQLite)), len(p.Migrations(projections.Postgres)); a != b || a == 0 {
		t.Errorf("sqlite has %d steps, postgres %d", a, b)
	}
}

func wantBalance(tb testing.TB, db projections.DB, w, account string, want wallet.Balance) {
	tb.Helper()
	a, err := wallet.GetAccount(context.Background(), db, w, account)
	if err != nil {
		tb.Fatalf("get %s/%s: %v", w, account, err)
	}
	if a.Balance != want {
		tb.Errorf("%s/%s balance %+v, want %+v", w, account, a.Balance, want)
	}
}

func wantNotFound(tb testing.TB, what string, err error) {
	tb.Helper()
	if !errors.Is(err, wallet.ErrNotFound) {
		tb.Errorf("%s: %v, want ErrNotFound", what, err)
	}
}

// TestLedger drives one wallet through imports, transfers, holds (released
// and expired) and a lock, checking the read model after each step with the
// runner live, then the history and point-in-time balances.
func TestLedger(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		db := newDB(t)
		l := newLedgers(store)
		r := startRunner(t, db, store, projections.Options{})
		at := func(m int) { clk.Set(t0.Add(time.Duration(m) * time.Minute)) }

		at(0)
		p1 := l.do(t, "main",
			ledger.OpenWallet{Name: "main", Coin: money.BTC, Confirmations: 3,
				Permissions: []ledger.Permission{ledger.PermLock, ledger.PermRead, ledger.PermTransfer, ledger.PermFreeze},
				IPAllowlist: []string{"10.1.2.3/8", "127.0.0.1"}},
			ledger.OpenAccount{Name: "alice"}, ledger.OpenAccount{Name: "bob"}, ledger.OpenAccount{Name: "carol"})
		r.waitFor(t, p1)
		w, err := wallet.GetWallet(ctx, db, "main")
		must(t, err)
		want := wallet.Wallet{Name: "main", Coin: "BTC", Exponent: 8, Confirmations: 3, Position: p1 - 3, Head: p1,
			Permissions: []string{"read", "transfer", "freeze", "lock"}, IPAllowlist: []string{"10.0.0.0/8", "127.0.0.1"}}
		if !reflect.DeepEqual(w, want) {
			t.Errorf("wallet %+v, want %+v", w, want)
		}
		wantBalance(t, db, "main", "alice", wallet.Balance{})
		if es, err := wallet.Entries(ctx, db, "main", "alice", 0, 10); err != nil || len(es) != 0 {
			t.Errorf("entries of a new account: %v, %v; want none", es, err)
		}

		at(1)
		p2 := l.do(t, "main", ledger.ImportBalance{ID: "imp-1", Account: "alice", Amount: btc(100_000), Reason: "opening"})
		at(2)
		p3 := l.do(t, "main", ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(30_000), Memo: "rent"})
		at(3)
		p4 := l.do(t, "main", ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(20_000), Reason: "review",
			ExpiresAt: t0.Add(10 * time.Minute), Now: t0.Add(3 * time.Minute)})
		at(4)
		p5 := l.do(t, "main", ledger.PlaceHold{ID: "h-2", Account: "bob", Amount: btc(10_000), Reason: "dispute"})
		r.waitFor(t, p5)
		wantBalance(t, db, "main", "alice", wallet.Balance{Available: 50_000, Held: 20_000})
		wantBalance(t, db, "main", "bob", wallet.Balance{Available: 20_000, Held: 10_000})
		h, err := wallet.GetHold(ctx, db, "main", "h-1")
		must(t, err)
		if want := (wallet.Hold{ID: "h-1", Wallet: "main", Account: "alice", Amount: 20_000, Reason: "review",
			ExpiresAt: t0.Add(10 * time.Minute), Status: wallet.HoldActive, Position: p4}); h != want {
			t.Errorf("hold %+v, want %+v", h, want)
		}
		// Holds move funds between buckets: only the total sums to zero.
		if sum, err := wallet.SumBalances(ctx, db, "main"); err != nil || sum != (wallet.Balance{Available: -30_000, Held: 30_000}) {
			t.Errorf("sum with holds %+v, %v; want available -30000, held 30000", sum, err)
		}

		at(5)
		p6 := l.do(t, "main", ledger.ReleaseHold{ID: "h-2", Reason: "resolved"})
		at(6)
		p7 := l.do(t, "main", ledger.LockWallet{Reason: "audit"})
		r.waitFor(t, p7)
		w, err = wallet.GetWallet(ctx, db, "main")
		must(t, err)
		if !w.Locked || w.Position != p7 {
			t.Errorf("after lock: locked %v at %d, want true at %d", w.Locked, w.Position, p7)
		}
		wantBalance(t, db, "main", "bob", wallet.Balance{Available: 30_000})

		at(11)
		p8 := l.do(t, "main", ledger.ExpireHold{ID: "h-1", Now: t0.Add(11 * time.Minute)})
		at(12)
		p10 := l.do(t, "main", ledger.UnlockWallet{}, ledger.Transfer{ID: "t-2", From: "bob", To: "carol", Amount: btc(5_000)})
		p9 := p10 - 1
		at(13)
		pSide := l.do(t, "side", ledger.OpenWallet{Name: "side", Coin: money.DOGE}, ledger.OpenAccount{Name: "alice"},
			ledger.ImportBalance{ID: "imp-1", Account: "alice", Amount: money.New(money.DOGE, 7)})
		r.waitFor(t, pSide)

		// Wallets.
		w, err = wallet.GetWallet(ctx, db, "main")
		must(t, err)
		if w.Locked || w.Position != p9 || w.Head != p10 {
			t.Errorf("after unlock: locked %v at %d, head %d; want false at %d, head %d", w.Locked, w.Position, w.Head, p9, p10)
		}
		ws, err := wallet.ListWallets(ctx, db)
		must(t, err)
		if len(ws) != 2 || ws[0].Name != "main" || ws[1].Name != "side" || ws[1].Coin != "DOGE" ||
			ws[1].Confirmations != ledger.DefaultConfirmations || len(ws[1].IPAllowlist) != 0 {
			t.Errorf("wallets %+v", ws)
		}
		_, err = wallet.GetWallet(ctx, db, "nope")
		wantNotFound(t, "get unknown wallet", err)

		// Accounts and balances.
		wantBalance(t, db, "main", "alice", wallet.Balance{Available: 70_000})
		wantBalance(t, db, "main", "bob", wallet.Balance{Available: 25_000})
		wantBalance(t, db, "main", "carol", wallet.Balance{Available: 5_000})
		wantBalance(t, db, "main", ledger.ImportAccount, wallet.Balance{Available: -100_000})
		wantBalance(t, db, "side", "alice", wallet.Balance{Available: 7})
		accts, err := wallet.ListAccounts(ctx, db, "main")
		must(t, err)
		var names []string
		for _, a := range accts {
			names = append(names, a.Name)
			if a.System || a.Wallet != "main" {
				t.Errorf("user account %+v", a)
			}
		}
		if strings.Join(names, ",") != "alice,bob,carol" {
			t.Errorf("accounts %v, want alice,bob,carol", names)
		}
		if accts[0].Position != p8 || accts[0].Balance.Total() != 70_000 {
			t.Errorf("alice %+v, want position %d, total 70000", accts[0], p8)
		}
		sys, err := wallet.ListSystemAccounts(ctx, db, "main")
		must(t, err)
		if len(sys) != 3 || sys[0].Name != ledger.ChainAccount || sys[1].Name != ledger.FeeAccount || sys[2].Name != ledger.ImportAccount ||
			!sys[2].System || sys[2].Position != p2 || sys[0].Position != p1-3 {
			t.Errorf("system accounts %+v", sys)
		}
		_, err = wallet.ListAccounts(ctx, db, "nope")
		wantNotFound(t, "list accounts of unknown wallet", err)
		_, err = wallet.GetAccount(ctx, db, "main", "dave")
		wantNotFound(t, "get unknown account", err)
		_, err = wallet.GetAccount(ctx, db, "nope", "alice")
		wantNotFound(t, "get account of unknown wallet", err)
		for _, name := range []string{"main", "side"} {
			sum, err := wallet.SumBalances(ctx, db, name)
			must(t, err)
			if sum != (wallet.Balance{}) {
				t.Errorf("%s: balances sum to %+v, want zero", name, sum)
			}
		}
		_, err = wallet.SumBalances(ctx, db, "nope")
		wantNotFound(t, "sum of unknown wallet", err)

		// Entries, newest first, paged.
		minute := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
		wantAlice := []wallet.Entry{
			{Position: p8, Revision: 10, Time: minute(11), Kind: wallet.KindHoldExpiry, Reference: "h-1",
				Delta: wallet.Balance{Available: 20_000, Held: -20_000}, After: wallet.Balance{Available: 70_000}},
			{Position: p4, Revision: 6, Time: minute(3), Kind: wallet.KindHold, Reference: "h-1", Memo: "review",
				Delta: wallet.Balance{Available: -20_000, Held: 20_000}, After: wallet.Balance{Available: 50_000, Held: 20_000}},
			{Position: p3, Revision: 5, Time: minute(2), Kind: wallet.KindTransferOut, Reference: "t-1", Counterparty: "bob", Memo: "rent",
				Delta: wallet.Balance{Available: -30_000}, After: wallet.Balance{Available: 70_000}},
			{Position: p2, Revision: 4, Time: minute(1), Kind: wallet.KindImport, Reference: "imp-1", Counterparty: ledger.ImportAccount, Memo: "opening",
				Delta: wallet.Balance{Available: 100_000}, After: wallet.Balance{Available: 100_000}},
		}
		var got []wallet.Entry
		before := uint64(0)
		for page := 0; ; page++ {
			es, err := wallet.Entries(ctx, db, "main", "alice", before, 3)
			must(t, err)
			if page == 0 && len(es) != 3 {
				t.Errorf("first page has %d entries, want 3", len(es))
			}
			if len(es) == 0 {
				break
			}
			got = append(got, es...)
			before = es[len(es)-1].Position
			if page > 5 {
				t.Fatal("paging does not end")
			}
		}
		if !reflect.DeepEqual(got, wantAlice) {
			t.Errorf("alice's entries\n got %+v\nwant %+v", got, wantAlice)
		}
		bob, err := wallet.Entries(ctx, db, "main", "bob", 0, 0)
		must(t, err)
		var kinds []string
		for _, e := range bob {
			kinds = append(kinds, e.Kind+":"+e.Reference+":"+e.Counterparty+":"+e.Memo)
		}
		if want := "transfer_out:t-2:carol:,hold_release:h-2::resolved,hold:h-2::dispute,transfer_in:t-1:alice:rent"; strings.Join(kinds, ",") != want {
			t.Errorf("bob's entries %v, want %s", kinds, want)
		}
		if bob[0].Position != p10 || bob[0].After != (wallet.Balance{Available: 25_000}) || bob[0].Time != minute(12) {
			t.Errorf("bob's newest entry %+v", bob[0])
		}
		imp, err := wallet.Entries(ctx, db, "main", ledger.ImportAccount, 0, 10)
		must(t, err)
		if len(imp) != 1 || imp[0].Kind != wallet.KindImport || imp[0].Counterparty != "alice" || imp[0].Delta.Available != -100_000 {
			t.Errorf("@import entries %+v", imp)
		}
		if es, err := wallet.Entries(ctx, db, "main", "alice", p2, 10); err != nil || len(es) != 0 {
			t.Errorf("entries before the first: %v, %v; want none", es, err)
		}
		_, err = wallet.Entries(ctx, db, "main", "dave", 0, 10)
		wantNotFound(t, "entries of unknown account", err)

		// Point in time.
		type pit struct {
			name    string
			get     func() (wallet.Balance, uint64, error)
			want    wallet.Balance
			wantPos uint64
		}
		byPos := func(acct string, p uint64) func() (wallet.Balance, uint64, error) {
			return func() (wallet.Balance, uint64, error) { return wallet.BalanceAtPosition(ctx, db, "main", acct, p) }
		}
		byTime := func(acct string, at time.Time) func() (wallet.Balance, uint64, error) {
			return func() (wallet.Balance, uint64, error) { return wallet.BalanceAtTime(ctx, db, "main", acct, at) }
		}
		for _, c := range []pit{
			{"position 0", byPos("alice", 0), wallet.Balance{}, 0},
			{"opened, no entry yet", byPos("alice", p1), wallet.Balance{}, 0},
			{"at the import", byPos("alice", p2), wallet.Balance{Available: 100_000}, p2},
			{"at the transfer", byPos("alice", p3), wallet.Balance{Available: 70_000}, p3},
			{"between entries", byPos("alice", p7), wallet.Balance{Available: 50_000, Held: 20_000}, p4},
			{"beyond the head", byPos("alice", math.MaxUint64), wallet.Balance{Available: 70_000}, p8},
			{"carol before her first entry", byPos("carol", p9), wallet.Balance{}, 0},
			{"carol at it", byPos("carol", p10), wallet.Balance{Available: 5_000}, p10},
			{"time before everything", byTime("alice", t0.Add(-time.Hour)), wallet.Balance{}, 0},
			{"time of opening", byTime("alice", t0), wallet.Balance{}, 0},
			{"time of the import", byTime("alice", minute(1)), wallet.Balance{Available: 100_000}, p2},
			{"just before the transfer", byTime("alice", minute(2).Add(-time.Microsecond)), wallet.Balance{Available: 100_000}, p2},
			{"during the hold", byTime("alice", minute(9)), wallet.Balance{Available: 50_000, Held: 20_000}, p4},
			{"after all", byTime("alice", minute(60)), wallet.Balance{Available: 70_000}, p8},
			{"bob at the release", byTime("bob", minute(5)), wallet.Balance{Available: 30_000}, p6},
		} {
			b, pos, err := c.get()
			if err != nil || b != c.want || pos != c.wantPos {
				t.Errorf("%s: %+v at %d, %v; want %+v at %d", c.name, b, pos, err, c.want, c.wantPos)
			}
		}
		_, _, err = wallet.BalanceAtPosition(ctx, db, "main", "dave", p3)
		wantNotFound(t, "balance at position of unknown account", err)
		_, _, err = wallet.BalanceAtTime(ctx, db, "nope", "alice", minute(3))
		wantNotFound(t, "balance at time in unknown wallet", err)

		// Transfers, imports, holds.
		tr, err := wallet.GetTransfer(ctx, db, "main", "t-1")
		must(t, err)
		if want := (wallet.Transfer{ID: "t-1", Wallet: "main", From: "alice", To: "bob", Amount: 30_000, Memo: "rent", Position: p3, Time: minute(2)}); tr != want {
			t.Errorf("transfer %+v, want %+v", tr, want)
		}
		tr, err = wallet.GetTransfer(ctx, db, "main", "t-2")
		must(t, err)
		if tr.Position != p10 || tr.From != "bob" || tr.To != "carol" || tr.Amount != 5_000 || tr.Memo != "" {
			t.Errorf("transfer t-2 %+v", tr)
		}
		_, err = wallet.GetTransfer(ctx, db, "side", "t-1")
		wantNotFound(t, "transfer of another wallet", err)
		_, err = wallet.GetTransfer(ctx, db, "main", "imp-1")
		wantNotFound(t, "an import as a transfer", err)
		im, err := wallet.GetImport(ctx, db, "main", "imp-1")
		must(t, err)
		if want := (wallet.Import{ID: "imp-1", Wallet: "main", Account: "alice", Amount: 100_000, Reason: "opening", Position: p2, Time: minute(1)}); im != want {
			t.Errorf("import %+v, want %+v", im, want)
		}
		if im, err := wallet.GetImport(ctx, db, "side", "imp-1"); err != nil || im.Amount != 7 {
			t.Errorf("side's import %+v, %v", im, err)
		}
		h, err = wallet.GetHold(ctx, db, "main", "h-1")
		must(t, err)
		if h.Status != wallet.HoldExpired || h.Position != p8 || h.Reason != "review" || !h.ExpiresAt.Equal(minute(10)) || h.Amount != 20_000 {
			t.Errorf("expired hold %+v", h)
		}
		h, err = wallet.GetHold(ctx, db, "main", "h-2")
		must(t, err)
		if want := (wallet.Hold{ID: "h-2", Wallet: "main", Account: "bob", Amount: 10_000, Reason: "dispute", Status: wallet.HoldReleased, Position: p6}); h != want {
			t.Errorf("released hold %+v, want %+v", h, want)
		}
		_, err = wallet.GetHold(ctx, db, "main", "h-3")
		wantNotFound(t, "unknown hold", err)
		must(t, r.stop())
	})
}

// TestLedgerTimeNeverDecreases: should the store's clock step back, later
// events keep the wallet's latest time, so history and balance-at-time
// stay consistent with the order of events.
func TestLedgerTimeNeverDecreases(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		db := newDB(t)
		l := newLedgers(store)
		l.do(t, "w", ledger.OpenWallet{Name: "w", Coin: money.BTC}, ledger.OpenAccount{Name: "alice"})
		clk.Set(t0.Add(10 * time.Minute))
		p1 := l.do(t, "w", ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: btc(5)})
		clk.Set(t0.Add(5 * time.Minute)) // the clock steps back
		p2 := l.do(t, "w", ledger.ImportBalance{ID: "i-2", Account: "alice", Amount: btc(7)})
		clk.Set(t0.Add(20 * time.Minute))
		p3 := l.do(t, "w", ledger.ImportBalance{ID: "i-3", Account: "alice", Amount: btc(11)})
		r := startRunner(t, db, store, projections.Options{})
		r.waitFor(t, p3)

		es, err := wallet.Entries(ctx, db, "w", "alice", 0, 10)
		must(t, err)
		var times []time.Time
		for _, e := range es {
			times = append(times, e.Time)
		}
		if want := []time.Time{t0.Add(20 * time.Minute), t0.Add(10 * time.Minute), t0.Add(10 * time.Minute)}; !reflect.DeepEqual(times, want) {
			t.Errorf("entry times %v, want %v", times, want)
		}
		for _, c := range []struct {
			at   time.Duration
			want int64
			pos  uint64
		}{{7 * time.Minute, 0, 0}, {10 * time.Minute, 12, p2}, {19 * time.Minute, 12, p2}, {20 * time.Minute, 23, p3}} {
			b, pos, err := wallet.BalanceAtTime(ctx, db, "w", "alice", t0.Add(c.at))
			if err != nil || b.Available != c.want || pos != c.pos {
				t.Errorf("at +%v: %+v at %d, %v; want %d at %d", c.at, b, pos, err, c.want, c.pos)
			}
		}
		if im, err := wallet.GetImport(ctx, db, "w", "i-2"); err != nil || !im.Time.Equal(t0.Add(10*time.Minute)) {
			t.Errorf("import i-2 %+v, %v; want the time of i-1", im, err)
		}
		if b, pos, err := wallet.BalanceAtPosition(ctx, db, "w", "alice", p1); err != nil || b.Available != 5 || pos != p1 {
			t.Errorf("at position %d: %+v at %d, %v; want 5", p1, b, pos, err)
		}
	})
}

// TestIgnoresOtherStreams appends events of other streams, of unknown
// types, to streams that only look like wallet streams and to a wallet
// stream without WalletOpened: none of them shows in the read model.
func TestIgnoresOtherStreams(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		db := newDB(t)
		l := newLedgers(store)
		opened := `{"wallet":"ghost","coin":"BTC","exponent":8,"permissions":["read"],"confirmations":1}`
		credit := `{"id":"x","postings":[{"account":"@chain","bucket":"available","amount":-5},{"account":"alice","bucket":"available","amount":5}]}`
		foreign := []struct{ stream, typ, data string }{
			{"user-ghost", ledger.TypeWalletOpened, opened},
			{"wallets-ghost", ledger.TypeWalletOpened, opened},
			{"wallet", ledger.TypeWalletOpened, opened},
			{"wallet-", ledger.TypeWalletOpened, opened},
			{"wallet-ghost", "ledger.something_new", credit},
			{"wallet-ghost", ledger.TypeBalanceImported, `{"id":"i","account":"alice","amount":5,"postings":[{"account":"@import","bucket":"available","amount":-5},{"account":"alice","bucket":"available","amount":5}]}`},
			{"wallet-ghost", ledger.TypeWalletLocked, `{}`},
			{"wallet-ghost", "test.credited", credit},
			{"alert-1", ledger.TypeFundsTransferred, credit},
		}
		for _, f := range foreign {
			_, err := store.Append(ctx, f.stream, eventstore.Any, eventstore.EventData{Type: f.typ, Data: []byte(f.data)})
			must(t, err)
		}
		l.do(t, "real", ledger.OpenWallet{Name: "real", Coin: money.BTC}, ledger.OpenAccount{Name: "alice"},
			ledger.ImportBalance{ID: "i", Account: "alice", Amount: btc(9)})
		for _, f := range foreign[:2] {
			_, err := store.Append(ctx, f.stream, eventstore.Any, eventstore.EventData{Type: f.typ, Data: []byte(f.data)})
			must(t, err)
		}
		r := startRunner(t, db, store, projections.Options{})
		r.waitHead(t, store)
		ws, err := wallet.ListWallets(ctx, db)
		must(t, err)
		if len(ws) != 1 || ws[0].Name != "real" {
			t.Errorf("wallets %+v, want only real", ws)
		}
		_, err = wallet.GetAccount(ctx, db, "ghost", "alice")
		wantNotFound(t, "account of a ghost wallet", err)
		_, err = wallet.GetImport(ctx, db, "ghost", "i")
		wantNotFound(t, "import of a ghost wallet", err)
		wantBalance(t, db, "real", "alice", wallet.Balance{Available: 9})
		d := dump(t, db)
		if n := len(d["wallet_entries"]); n != 2 {
			t.Errorf("%d entries, want 2: %v", n, d["wallet_entries"])
		}
		if n := len(d["wallet_accounts"]); n != 4 {
			t.Errorf("%d accounts, want 4: %v", n, d["wallet_accounts"])
		}
	})
}

// depositCredited stands for a movement event the ledger may gain later:
// the projection must file it under a kind derived from its type.
type depositCredited struct{ ledger.FundsTransferred }

func (depositCredited) EventType() string { return "ledger.deposit_credited" }

func TestUnknownMovementKind(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		l := newLedgers(store)
		l.do(t, "w", ledger.OpenWallet{Name: "w", Coin: money.BTC}, ledger.OpenAccount{Name: "alice"})
		res, err := store.Append(ctx, "wallet-w", eventstore.Any, eventstore.EventData{Type: "ledger.deposit_credited",
			Data: []byte(`{"id":"dep-1","reason":"txid:0","postings":[{"account":"@chain","bucket":"available","amount":-500},{"account":"alice","bucket":"pending","amount":500}]}`)})
		must(t, err)

		codec := wallet.Codec()
		eventstore.Register[depositCredited](codec)
		db := newDB(t)
		r := projections.NewRunner(db, store, projections.Options{}, wallet.NewWithCodec(codec))
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		waitCtx, cancelWait := context.WithTimeout(ctx, time.Minute)
		defer cancelWait()
		must(t, r.WaitFor(waitCtx, "wallet", res.Position))
		cancel()
		must(t, <-done)
		wantBalance(t, db, "w", "alice", wallet.Balance{Pending: 500})
		es, err := wallet.Entries(ctx, db, "w", "alice", 0, 10)
		must(t, err)
		if len(es) != 1 || es[0].Kind != "deposit_credited" || es[0].Reference != "dep-1" || es[0].Counterparty != ledger.ChainAccount ||
			es[0].Memo != "txid:0" || es[0].Delta != (wallet.Balance{Pending: 500}) || es[0].After != (wallet.Balance{Pending: 500}) {
			t.Errorf("entries %+v", es)
		}
		if sum, err := wallet.SumBalances(ctx, db, "w"); err != nil || sum.Total() != 0 || sum.Pending != 500 {
			t.Errorf("sum %+v, %v", sum, err)
		}

		// The released codec does not know the type: the event is ignored.
		db2 := newDB(t)
		r2 := startRunner(t, db2, store, projections.Options{})
		r2.waitFor(t, res.Position)
		wantBalance(t, db2, "w", "alice", wallet.Balance{})
	})
}

// TestUndecodableEventParksProjection: a ledger event that does not decode
// parks the projection at that event (Status names it), so the read model
// never skips a movement silently, and Run keeps running.
func TestUndecodableEventParksProjection(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		store := openStore(t, &clock{t: t0})
		l := newLedgers(store)
		l.do(t, "w", ledger.OpenWallet{Name: "w", Coin: money.BTC}, ledger.OpenAccount{Name: "alice"})
		bad, err := store.Append(ctx, "wallet-w", eventstore.Any, eventstore.EventData{Type: ledger.TypeFundsTransferred, Data: []byte(`{"amount":"lots"}`)})
		must(t, err)
		db := newDB(t)
		r := startRunner(t, db, store, projections.Options{RetryMin: time.Millisecond})
		waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := r.WaitFor(waitCtx, "wallet", bad.Position); !errors.Is(err, projections.ErrParked) ||
			!strings.Contains(err.Error(), ledger.TypeFundsTransferred) {
			t.Fatalf("WaitFor: %v, want ErrParked with a decode error naming the event", err)
		}
		st, err := r.Status(ctx)
		must(t, err)
		if st[0].State != projections.StateParked || st[0].ParkedAt != bad.Position || !st[0].Running {
			t.Errorf("status %+v, want parked at %d while running", st[0], bad.Position)
		}
		// Nothing of the failed event was committed; the events before it were.
		cp, err := projections.StoredCheckpoint(ctx, db, "wallet")
		must(t, err)
		if cp != bad.Position-1 {
			t.Errorf("checkpoint %d, want %d (just before the bad event)", cp, bad.Position-1)
		}
	})
}
