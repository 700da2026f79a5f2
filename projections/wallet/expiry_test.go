package wallet_test

import (
	"context"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// TestExpiredHoldReadsAsReleased: from its expiry on, a hold reads as
// expired and its funds as available, before and after the ledger records
// the HoldExpired; the stored rows change only with the event, and a
// command_refused event changes no balance.
func TestExpiredHoldReadsAsReleased(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		clk := &clock{t: t0}
		store := openStore(t, clk)
		db := newDB(t)
		l := newLedgers(store)
		r := startRunner(t, db, store, projections.Options{})
		expires := t0.Add(10 * time.Minute)
		placed := l.do(t, "main",
			ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: ledger.AllPermissions()},
			ledger.OpenAccount{Name: "alice"}, ledger.OpenAccount{Name: "bob"},
			ledger.ImportBalance{ID: "imp-1", Account: "alice", Amount: btc(100_000)},
			ledger.ImportBalance{ID: "imp-2", Account: "bob", Amount: btc(100)},
			ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(20_000), ExpiresAt: expires, Now: t0},
			ledger.PlaceHold{ID: "h-2", Account: "alice", Amount: btc(5_000)},
			ledger.PlaceHold{ID: "h-3", Account: "bob", Amount: btc(100), ExpiresAt: expires.Add(time.Hour), Now: t0})
		refusal, ok := ledger.Refusal(ledger.Transfer{ID: "t-1", From: "bob", To: "alice", Amount: btc(1),
			Idempotency: ledger.Idempotency{Key: "k", RequestHash: "h"}}, ledger.ErrInsufficientFunds)
		if !ok {
			t.Fatal("no refusal")
		}
		placed = l.appendEvents(t, "main", refusal)
		r.waitFor(t, placed)

		check := func(when string, now time.Time, alice wallet.Balance, status string) {
			t.Helper()
			a, err := wallet.GetAccountAt(ctx, db, "main", "alice", now)
			must(t, err)
			if a.Balance != alice {
				t.Errorf("%s: alice %+v, want %+v", when, a.Balance, alice)
			}
			if b, _, err := wallet.CurrentBalance(ctx, db, "main", "alice", now); err != nil || b != alice {
				t.Errorf("%s: current balance of alice %+v %v, want %+v", when, b, err, alice)
			}
			as, err := wallet.ListAccountsAt(ctx, db, "main", now)
			must(t, err)
			for _, a := range as {
				if want := map[string]wallet.Balance{"alice": alice, "bob": {Held: 100}}[a.Name]; a.Balance != want {
					t.Errorf("%s: listed %s %+v, want %+v", when, a.Name, a.Balance, want)
				}
			}
			h, err := wallet.GetHoldAt(ctx, db, "main", "h-1", now)
			must(t, err)
			if h.Status != status {
				t.Errorf("%s: hold status %s, want %s", when, h.Status, status)
			}
			if h, err := wallet.GetHoldAt(ctx, db, "main", "h-2", now); err != nil || h.Status != wallet.HoldActive {
				t.Errorf("%s: hold without expiry %+v, %v", when, h, err)
			}
		}
		check("before expiry", expires.Add(-time.Microsecond), wallet.Balance{Available: 75_000, Held: 25_000}, wallet.HoldActive)
		check("at expiry", expires, wallet.Balance{Available: 95_000, Held: 5_000}, wallet.HoldExpired)
		check("stored", time.Time{}, wallet.Balance{Available: 75_000, Held: 25_000}, wallet.HoldActive)
		if due, err := wallet.ExpiredHeld(ctx, db, "main", "alice", expires); err != nil || due != 20_000 {
			t.Errorf("ExpiredHeld at expiry = %d, %v; want 20000", due, err)
		}

		recorded := l.do(t, "main", ledger.ExpireHold{ID: "h-1", Now: expires.Add(time.Second)})
		r.waitFor(t, recorded)
		check("recorded, read at expiry", expires, wallet.Balance{Available: 95_000, Held: 5_000}, wallet.HoldExpired)
		check("recorded, stored", time.Time{}, wallet.Balance{Available: 95_000, Held: 5_000}, wallet.HoldExpired)
		if h, err := wallet.GetHoldAt(ctx, db, "main", "h-1", time.Time{}); err != nil || h.Position != recorded {
			t.Errorf("recorded hold %+v, %v; want position %d", h, err, recorded)
		}
	})
}
