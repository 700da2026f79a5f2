package wallet_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// TestHostileTextCatchesUp appends wallet events whose texts Postgres text
// refuses straight to the store, past the edge and the decider (the JSON is
// edited after encoding, as a log written before the edge refused them may
// hold): a transfer memo and a hold reason with NUL bytes and a string that
// looks like the Postgres layer's escape, an import reason with raw invalid
// UTF-8 (which the decoder turns into U+FFFD). On every read-model database
// the projection must catch up past them and keep running (later events,
// and a release that reloads the hold, are applied), and every text must
// read back as the event holds it.
func TestHostileTextCatchesUp(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, newDB dbtest.NewDB) {
		ctx := context.Background()
		store := openStore(t, &clock{t: t0})
		db := newDB(t)
		l := newLedgers(store)
		replace := func(placeholder, raw string) func([]byte) []byte {
			return func(data []byte) []byte { return bytes.ReplaceAll(data, []byte(placeholder), []byte(raw)) }
		}
		const (
			memo   = "a\x00b"
			reason = "\x00held \uFDD000\x00"
		)
		l.do(t, "main", ledger.OpenWallet{Name: "main", Coin: money.BTC}, ledger.OpenAccount{Name: "alice"}, ledger.OpenAccount{Name: "bob"})
		l.doEdited(t, "main", replace("REASON", "bad \xff\xfe bytes"),
			ledger.ImportBalance{ID: "imp-1", Account: "alice", Amount: btc(1000), Reason: "REASON"})
		l.doEdited(t, "main", replace("MEMO", `a\u0000b`),
			ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(300), Memo: "MEMO"})
		pHold := l.doEdited(t, "main", replace("REASON", `\u0000held \ufdd000\u0000`),
			ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(100), Reason: "REASON"})
		r := startRunner(t, db, store, projections.Options{})
		r.waitFor(t, pHold)
		pAfter := l.do(t, "main", ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(1), Memo: "after"},
			ledger.ReleaseHold{ID: "h-1", Reason: "done"})
		r.waitFor(t, pAfter)

		if tr, err := wallet.GetTransfer(ctx, db, "main", "t-1"); err != nil || tr.Memo != memo {
			t.Errorf("transfer t-1: memo %q, %v; want %q", tr.Memo, err, memo)
		}
		if im, err := wallet.GetImport(ctx, db, "main", "imp-1"); err != nil || im.Reason != "bad \uFFFD\uFFFD bytes" {
			t.Errorf("import imp-1: reason %q, %v; want the invalid bytes as U+FFFD", im.Reason, err)
		}
		h, err := wallet.GetHold(ctx, db, "main", "h-1")
		if err != nil || h.Reason != reason || h.Status != wallet.HoldReleased {
			t.Errorf("hold h-1: %+v, %v; want reason %q, released", h, err, reason)
		}
		es, err := wallet.Entries(ctx, db, "main", "alice", 0, 10)
		must(t, err)
		memos := map[string]bool{}
		for _, e := range es {
			memos[e.Memo] = true
		}
		if !memos[memo] || !memos[reason] || !memos["after"] {
			t.Errorf("alice's entries have memos %v; want %q, %q and %q among them", memos, memo, reason, "after")
		}
		wantBalance(t, db, "main", "alice", wallet.Balance{Available: 701})
	})
}
