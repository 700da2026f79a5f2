package custody_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/test/background"
)

var (
	tx1 = strings.Repeat("a1", 32)
	tx2 = strings.Repeat("b2", 32)
	tx3 = strings.Repeat("c3", 32)
	blk = strings.Repeat("0f", 32)
)

// TestCustody folds a deposit and withdrawal history into the read model on
// SQLite and Postgres and reads it back.
func TestCustody(t *testing.T) {
	for name, open := range map[string]func(testing.TB) projections.DB{"sqlite": dbtest.OpenSQLite, "postgres": dbtest.OpenPostgres} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := sqlitetest.Open(t)
			ws := wallets.New(store, wallets.Options{})
			defer ws.Close()
			var last uint64
			do := func(cmd ledger.Command) {
				t.Helper()
				res, err := ws.Execute(ctx, eventstore.Metadata{}, "w", func(*ledger.State) (ledger.Command, error) { return cmd, nil })
				if err != nil {
					t.Fatalf("%T: %v", cmd, err)
				}
				last = max(last, res.Position)
			}
			btc := func(u int64) money.Amount { return money.New(money.BTC, u) }
			do(ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: ledger.AllPermissions(), Confirmations: 2})
			do(ledger.OpenAccount{Name: "alice"})
			do(ledger.AssignAddress{Account: "alice", Address: "addr1"})
			do(ledger.ObserveDeposit{TxID: tx1, Address: "addr1", Amount: btc(500), Confirmations: 0})
			do(ledger.ObserveDeposit{TxID: tx1, Address: "addr1", Amount: btc(500), Confirmations: 2, BlockHash: blk})
			do(ledger.ObserveDeposit{TxID: tx2, Vout: 1, Address: "addr1", Amount: btc(300), Confirmations: 1, BlockHash: blk})
			do(ledger.ReverseDeposit{TxID: tx2, Vout: 1, Reason: ledger.ReasonReorg})
			do(ledger.RequestWithdrawal{ID: "wd1", Account: "alice", Address: "out", Amount: btc(200)})
			do(ledger.BeginBroadcast{ID: "wd1"})
			do(ledger.AbortBroadcast{ID: "wd1", Reason: "node down"})
			do(ledger.RecordBroadcast{ID: "wd1", TxID: tx3, Fee: btc(10)})
			do(ledger.ConfirmWithdrawal{ID: "wd1", Confirmations: 2})

			db := open(t)
			r := projections.NewRunner(db, store, projections.Options{}, custody.New())
			background.Run(t, true, r.Run)
			if err := r.WaitFor(ctx, "custody", last); err != nil {
				t.Fatal(err)
			}

			ds, err := custody.Deposits(ctx, db, "w", custody.DepositFilter{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 2 || ds[0].TxID != tx2 || ds[0].Status != ledger.DepositStatusReversed || ds[0].Reason != ledger.ReasonReorg ||
				ds[1].TxID != tx1 || ds[1].Status != ledger.DepositStatusConfirmed || ds[1].Confirmations != 2 || ds[1].ConfirmedAt.IsZero() ||
				ds[1].BlockHash != blk || ds[1].Amount != 500 || ds[1].Account != "alice" {
				t.Fatalf("deposits: %+v", ds)
			}
			confirmed, _ := custody.Deposits(ctx, db, "w", custody.DepositFilter{Status: ledger.DepositStatusConfirmed, Limit: 10})
			page2, _ := custody.Deposits(ctx, db, "w", custody.DepositFilter{Before: ds[0].SeenPosition, Limit: 10})
			other, _ := custody.Deposits(ctx, db, "w", custody.DepositFilter{Account: "bob", Limit: 10})
			if len(confirmed) != 1 || len(page2) != 1 || page2[0].TxID != tx1 || len(other) != 0 {
				t.Fatalf("filters: confirmed %+v, page 2 %+v, bob %+v", confirmed, page2, other)
			}
			w, err := custody.GetWithdrawal(ctx, db, "w", "wd1")
			if err != nil {
				t.Fatal(err)
			}
			if w.Status != ledger.WithdrawalStatusConfirmed || w.TxID != tx3 || w.Fee != 10 || w.Confirmations != 2 || w.Amount != 200 {
				t.Fatalf("withdrawal: %+v", w)
			}
			if _, err := custody.GetWithdrawal(ctx, db, "w", "nope"); err == nil {
				t.Fatal("found a withdrawal that does not exist")
			}
		})
	}
}
