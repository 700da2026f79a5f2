package ledger_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

func withdrawalHold(account string, units int64) []ledger.Posting {
	return []ledger.Posting{
		{Account: account, Bucket: ledger.Available, Amount: -units},
		{Account: account, Bucket: ledger.Held, Amount: units},
	}
}

func requested(id, account string, units int64) ledger.WithdrawalRequested {
	return ledger.WithdrawalRequested{ID: id, Account: account, Address: addrOut, Amount: units, Postings: withdrawalHold(account, units)}
}

func requestedSubtracting(id, account string, units int64) ledger.WithdrawalRequested {
	e := requested(id, account, units)
	e.SubtractFee = true
	return e
}

func started(id, account string) ledger.WithdrawalBroadcastStarted {
	return ledger.WithdrawalBroadcastStarted{ID: id, Account: account}
}

// broadcast: the account pays paid of fee from available.
func broadcast(id, account string, units int64, txid string, fee, paid int64) ledger.WithdrawalBroadcast {
	ps := []ledger.Posting{
		{Account: account, Bucket: ledger.Held, Amount: -units},
		{Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: units},
	}
	if paid > 0 {
		ps = append(ps,
			ledger.Posting{Account: account, Bucket: ledger.Available, Amount: -paid},
			ledger.Posting{Account: ledger.FeeAccount, Bucket: ledger.Available, Amount: paid})
	}
	return ledger.WithdrawalBroadcast{ID: id, Account: account, Address: addrOut, Amount: units, TxID: txid, Fee: fee,
		FeeShortfall: fee - paid, Postings: ps}
}

// broadcastSubtracting: the fee comes out of the amount.
func broadcastSubtracting(id, account string, units int64, txid string, fee int64) ledger.WithdrawalBroadcast {
	ps := []ledger.Posting{
		{Account: account, Bucket: ledger.Held, Amount: -units},
		{Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: units - fee},
	}
	if fee > 0 {
		ps = append(ps, ledger.Posting{Account: ledger.FeeAccount, Bucket: ledger.Available, Amount: fee})
	}
	return ledger.WithdrawalBroadcast{ID: id, Account: account, Address: addrOut, Amount: units, TxID: txid, Fee: fee,
		SubtractFee: true, Postings: ps}
}

func unknown(id, account string, units int64, reason string) ledger.WithdrawalUnknown {
	return ledger.WithdrawalUnknown{ID: id, Account: account, Amount: units, Reason: reason}
}

func failed(id, account string, units int64, reason string) ledger.WithdrawalFailed {
	return ledger.WithdrawalFailed{ID: id, Account: account, Amount: units, Reason: reason, Postings: heldBack(account, units)}
}

func withdrawalConfirmed(id, account, txid string, conf int) ledger.WithdrawalConfirmed {
	return ledger.WithdrawalConfirmed{ID: id, Account: account, TxID: txid, Confirmations: conf}
}

func withdraw(id, account string, units int64) ledger.RequestWithdrawal {
	return ledger.RequestWithdrawal{ID: id, Account: account, Address: addrOut, Amount: btc(units)}
}

func record(id, txid string, fee int64) ledger.RecordBroadcast {
	return ledger.RecordBroadcast{ID: id, TxID: txid, Fee: btc(fee)}
}

func TestRequestWithdrawal(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	keyed := withKeyEvent(w1, key("k", "h"))
	subtracting := ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Address: addrOut, Amount: btc(40_000), SubtractFee: true}
	run(t, []scenario{
		{name: "holds the amount", given: funded(), when: withdraw("w-1", "alice", 40_000), then: []ledger.Event{w1}},
		{name: "fee out of the amount", given: funded(), when: subtracting, then: []ledger.Event{requestedSubtracting("w-1", "alice", 40_000)}},
		{name: "idempotency recorded", given: funded(), when: withKey(withdraw("w-1", "alice", 40_000), key("k", "h")), then: []ledger.Event{keyed}},
		{name: "whole balance", given: funded(), when: withdraw("w-1", "alice", 100_000_000), then: []ledger.Event{requested("w-1", "alice", 100_000_000)}},
		{name: "one satoshi too many", given: funded(), when: withdraw("w-1", "alice", 100_000_001), err: []error{ledger.ErrInsufficientFunds}},
		{name: "held funds are not spendable", given: funded(holdPlaced("h-1", "alice", 60_000_000, t0.AddDate(1, 0, 0))), when: withdraw("w-1", "alice", 50_000_000),
			err: []error{ledger.ErrInsufficientFunds}},
		{name: "funds of a pending withdrawal are not spendable", given: funded(requested("w-1", "alice", 60_000_000)), when: withdraw("w-2", "alice", 50_000_000),
			err: []error{ledger.ErrInsufficientFunds}},
		{name: "pending deposits are not spendable", given: withAddresses(depositSeen(txA, 0, addrB, "bob", 5000, 1, blk1)), when: withdraw("w-1", "bob", 1),
			err: []error{ledger.ErrInsufficientFunds}},
		{name: "locked", given: funded(locked), when: withdraw("w-1", "alice", 1), err: []error{ledger.ErrWalletLocked}},
		{name: "id in use", given: funded(w1), when: withdraw("w-1", "alice", 1), err: []error{ledger.ErrWithdrawalExists}},
		{name: "id of a failed withdrawal is not reused", given: funded(w1, failed("w-1", "alice", 40_000, "")), when: withdraw("w-1", "alice", 1),
			err: []error{ledger.ErrWithdrawalExists}},
		{name: "unknown account", given: funded(), when: withdraw("w-1", "carol", 1), err: []error{ledger.ErrAccountNotFound}},
		{name: "system account", given: funded(), when: withdraw("w-1", ledger.FeeAccount, 1), err: []error{ledger.ErrValidation}},
		{name: "no address", given: funded(), when: ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Amount: btc(1)}, err: []error{ledger.ErrValidation}},
		{name: "bad address", given: funded(), when: ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Address: "x;y", Amount: btc(1)}, err: []error{ledger.ErrValidation}},
		{name: "zero", given: funded(), when: withdraw("w-1", "alice", 0), err: []error{ledger.ErrValidation, money.ErrZero}},
		{name: "negative", given: funded(), when: withdraw("w-1", "alice", -1), err: []error{ledger.ErrValidation, money.ErrNegative}},
		{name: "other coin", given: funded(), when: ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Address: addrOut, Amount: money.New(money.DOGE, 1)},
			err: []error{ledger.ErrValidation, money.ErrAssetMismatch}},
		{name: "bad id", given: funded(), when: withdraw("w 1", "alice", 1), err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: withdraw("w-1", "alice", 1), err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestBeginBroadcast(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	run(t, []scenario{
		{name: "requested", given: funded(w1), when: ledger.BeginBroadcast{ID: "w-1"}, then: []ledger.Event{started("w-1", "alice")}},
		{name: "idempotency recorded", given: funded(w1), when: ledger.BeginBroadcast{ID: "w-1", Idempotency: key("k", "h")},
			then: []ledger.Event{withKeyEvent(started("w-1", "alice"), key("k", "h"))}},
		{name: "repeat: nothing", given: funded(w1, started("w-1", "alice")), when: ledger.BeginBroadcast{ID: "w-1"}, then: nil},
		{name: "locked", given: funded(w1, locked), when: ledger.BeginBroadcast{ID: "w-1"}, err: []error{ledger.ErrWalletLocked}},
		{name: "unknown", given: funded(w1, unknown("w-1", "alice", 40_000, "")), when: ledger.BeginBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "broadcast", given: funded(w1, broadcast("w-1", "alice", 40_000, txB, 0, 0)), when: ledger.BeginBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "failed", given: funded(w1, failed("w-1", "alice", 40_000, "")), when: ledger.BeginBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "not found", given: funded(w1), when: ledger.BeginBroadcast{ID: "w-2"}, err: []error{ledger.ErrWithdrawalNotFound}},
		{name: "no wallet", when: ledger.BeginBroadcast{ID: "w-1"}, err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestRecordBroadcast(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	all := requested("w-1", "alice", 100_000_000)
	most := requested("w-1", "alice", 100_000_000-200)
	sub := requestedSubtracting("w-1", "alice", 40_000)
	b1 := broadcast("w-1", "alice", 40_000, txB, 300, 300)
	run(t, []scenario{
		{name: "amount to @chain, fee from available to @fees", given: funded(w1), when: record("w-1", txB, 300), then: []ledger.Event{b1}},
		{name: "idempotency recorded", given: funded(w1), when: withKey(record("w-1", txB, 300), key("k", "h")), then: []ledger.Event{withKeyEvent(b1, key("k", "h"))}},
		{name: "from broadcasting", given: funded(w1, started("w-1", "alice")), when: record("w-1", txB, 300), then: []ledger.Event{b1}},
		{name: "from unknown: an operator resolves it", given: funded(w1, started("w-1", "alice"), unknown("w-1", "alice", 40_000, "timeout")),
			when: record("w-1", txB, 300), then: []ledger.Event{b1}},
		{name: "while locked: the transaction is out", given: funded(w1, started("w-1", "alice"), locked), when: record("w-1", txB, 300), then: []ledger.Event{b1}},
		{name: "no fee", given: funded(w1), when: record("w-1", txB, 0), then: []ledger.Event{broadcast("w-1", "alice", 40_000, txB, 0, 0)}},
		{name: "fee partly covered: shortfall", given: funded(most), when: record("w-1", txB, 500),
			then: []ledger.Event{broadcast("w-1", "alice", 100_000_000-200, txB, 500, 200)}},
		{name: "fee not covered at all: shortfall", given: funded(all), when: record("w-1", txB, 500),
			then: []ledger.Event{broadcast("w-1", "alice", 100_000_000, txB, 500, 0)}},
		{name: "fee out of the amount", given: funded(sub), when: record("w-1", txB, 300), then: []ledger.Event{broadcastSubtracting("w-1", "alice", 40_000, txB, 300)}},
		{name: "fee out of the whole balance", given: funded(requestedSubtracting("w-1", "alice", 100_000_000)), when: record("w-1", txB, 300),
			then: []ledger.Event{broadcastSubtracting("w-1", "alice", 100_000_000, txB, 300)}},
		{name: "no fee out of the amount", given: funded(sub), when: record("w-1", txB, 0), then: []ledger.Event{broadcastSubtracting("w-1", "alice", 40_000, txB, 0)}},
		{name: "fee not less than the amount it comes out of", given: funded(sub), when: record("w-1", txB, 40_000), err: []error{ledger.ErrValidation}},
		{name: "repeat: nothing", given: funded(w1, b1), when: record("w-1", txB, 300), then: nil},
		{name: "repeat after confirmation: nothing", given: funded(w1, b1, withdrawalConfirmed("w-1", "alice", txB, 6)), when: record("w-1", txB, 300), then: nil},
		{name: "other txid", given: funded(w1, b1), when: record("w-1", txA, 300), err: []error{ledger.ErrWithdrawalState}},
		{name: "other fee", given: funded(w1, b1), when: record("w-1", txB, 301), err: []error{ledger.ErrWithdrawalState}},
		{name: "failed", given: funded(w1, failed("w-1", "alice", 40_000, "")), when: record("w-1", txB, 300), err: []error{ledger.ErrWithdrawalState}},
		{name: "not found", given: funded(w1), when: record("w-2", txB, 300), err: []error{ledger.ErrWithdrawalNotFound}},
		{name: "bad txid", given: funded(w1), when: record("w-1", "deadbeef", 300), err: []error{ledger.ErrValidation}},
		{name: "negative fee", given: funded(w1), when: record("w-1", txB, -1), err: []error{ledger.ErrValidation, money.ErrNegative}},
		{name: "fee in another coin", given: funded(w1), when: ledger.RecordBroadcast{ID: "w-1", TxID: txB, Fee: money.New(money.LTC, 1)},
			err: []error{ledger.ErrValidation, money.ErrAssetMismatch}},
		{name: "fee without a coin", given: funded(w1), when: ledger.RecordBroadcast{ID: "w-1", TxID: txB},
			err: []error{ledger.ErrValidation, money.ErrAssetMismatch}},
		{name: "no wallet", when: record("w-1", txB, 0), err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestMarkUnknown(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	u := unknown("w-1", "alice", 40_000, "timeout")
	run(t, []scenario{
		{name: "broadcasting: funds stay held", given: funded(w1, started("w-1", "alice")), when: ledger.MarkUnknown{ID: "w-1", Reason: "timeout"}, then: []ledger.Event{u}},
		{name: "requested", given: funded(w1), when: ledger.MarkUnknown{ID: "w-1", Reason: "timeout"}, then: []ledger.Event{u}},
		{name: "idempotency recorded", given: funded(w1), when: ledger.MarkUnknown{ID: "w-1", Reason: "timeout", Idempotency: key("k", "h")},
			then: []ledger.Event{withKeyEvent(u, key("k", "h"))}},
		{name: "while locked", given: funded(w1, started("w-1", "alice"), locked), when: ledger.MarkUnknown{ID: "w-1", Reason: "timeout"}, then: []ledger.Event{u}},
		{name: "repeat: nothing", given: funded(w1, u), when: ledger.MarkUnknown{ID: "w-1", Reason: "again"}, then: nil},
		{name: "broadcast", given: funded(w1, broadcast("w-1", "alice", 40_000, txB, 0, 0)), when: ledger.MarkUnknown{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "failed", given: funded(w1, failed("w-1", "alice", 40_000, "")), when: ledger.MarkUnknown{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "not found", given: funded(), when: ledger.MarkUnknown{ID: "w-1"}, err: []error{ledger.ErrWithdrawalNotFound}},
		{name: "reason too long", given: funded(w1), when: ledger.MarkUnknown{ID: "w-1", Reason: strings.Repeat("x", 501)}, err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: ledger.MarkUnknown{ID: "w-1"}, err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestAbortBroadcast(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	a := ledger.WithdrawalBroadcastAborted{ID: "w-1", Account: "alice", Reason: "node down"}
	run(t, []scenario{
		{name: "broadcasting: back to requested, funds stay held", given: funded(w1, started("w-1", "alice")),
			when: ledger.AbortBroadcast{ID: "w-1", Reason: "node down"}, then: []ledger.Event{a}},
		{name: "requested: nothing to abort", given: funded(w1), when: ledger.AbortBroadcast{ID: "w-1"}, then: nil},
		{name: "began again after an abort", given: funded(w1, started("w-1", "alice"), a),
			when: ledger.BeginBroadcast{ID: "w-1"}, then: []ledger.Event{started("w-1", "alice")}},
		{name: "unknown: never back to requested", given: funded(w1, unknown("w-1", "alice", 40_000, "")),
			when: ledger.AbortBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "broadcast", given: funded(w1, broadcast("w-1", "alice", 40_000, txB, 0, 0)),
			when: ledger.AbortBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "not found", given: funded(), when: ledger.AbortBroadcast{ID: "w-1"}, err: []error{ledger.ErrWithdrawalNotFound}},
	})
}

func TestFailWithdrawal(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	f := failed("w-1", "alice", 40_000, "rejected")
	b1 := broadcast("w-1", "alice", 40_000, txB, 0, 0)
	run(t, []scenario{
		{name: "requested: hold released", given: funded(w1), when: ledger.FailWithdrawal{ID: "w-1", Reason: "rejected"}, then: []ledger.Event{f}},
		{name: "broadcasting", given: funded(w1, started("w-1", "alice")), when: ledger.FailWithdrawal{ID: "w-1", Reason: "rejected"}, then: []ledger.Event{f}},
		{name: "unknown: an operator resolves it", given: funded(w1, unknown("w-1", "alice", 40_000, "")), when: ledger.FailWithdrawal{ID: "w-1", Reason: "rejected"},
			then: []ledger.Event{f}},
		{name: "idempotency recorded", given: funded(w1), when: ledger.FailWithdrawal{ID: "w-1", Reason: "rejected", Idempotency: key("k", "h")},
			then: []ledger.Event{withKeyEvent(f, key("k", "h"))}},
		{name: "while locked", given: funded(w1, locked), when: ledger.FailWithdrawal{ID: "w-1", Reason: "rejected"}, then: []ledger.Event{f}},
		{name: "repeat: nothing", given: funded(w1, f), when: ledger.FailWithdrawal{ID: "w-1"}, then: nil},
		{name: "broadcast", given: funded(w1, b1), when: ledger.FailWithdrawal{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "confirmed", given: funded(w1, b1, withdrawalConfirmed("w-1", "alice", txB, 1)), when: ledger.FailWithdrawal{ID: "w-1"}, err: []error{ledger.ErrWithdrawalState}},
		{name: "not found", given: funded(), when: ledger.FailWithdrawal{ID: "w-1"}, err: []error{ledger.ErrWithdrawalNotFound}},
		{name: "reason too long", given: funded(w1), when: ledger.FailWithdrawal{ID: "w-1", Reason: strings.Repeat("x", 501)}, err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: ledger.FailWithdrawal{ID: "w-1"}, err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestConfirmWithdrawal(t *testing.T) {
	w1 := requested("w-1", "alice", 40_000)
	b1 := broadcast("w-1", "alice", 40_000, txB, 300, 300)
	c := withdrawalConfirmed("w-1", "alice", txB, 6)
	run(t, []scenario{
		{name: "broadcast", given: funded(w1, b1), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, then: []ledger.Event{c}},
		{name: "idempotency recorded", given: funded(w1, b1), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6, Idempotency: key("k", "h")},
			then: []ledger.Event{withKeyEvent(c, key("k", "h"))}},
		{name: "while locked", given: funded(w1, b1, locked), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, then: []ledger.Event{c}},
		{name: "repeat: nothing", given: funded(w1, b1, c), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 9}, then: nil},
		{name: "requested", given: funded(w1), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWithdrawalState}},
		{name: "broadcasting", given: funded(w1, started("w-1", "alice")), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWithdrawalState}},
		{name: "unknown", given: funded(w1, unknown("w-1", "alice", 40_000, "")), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWithdrawalState}},
		{name: "failed", given: funded(w1, failed("w-1", "alice", 40_000, "")), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWithdrawalState}},
		{name: "no confirmations", given: funded(w1, b1), when: ledger.ConfirmWithdrawal{ID: "w-1"}, err: []error{ledger.ErrValidation}},
		{name: "not found", given: funded(), when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWithdrawalNotFound}},
		{name: "no wallet", when: ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}, err: []error{ledger.ErrWalletNotFound}},
	})
}

// TestWithdrawalPaths drives a withdrawal through every path and checks
// the balances at the end of each.
func TestWithdrawalPaths(t *testing.T) {
	const amount, fee = 40_000, 300
	start := int64(100_000_000)
	type balance struct{ avail, held, debt int64 }
	bal := func(avail, held, debt int64) balance { return balance{avail, held, debt} }
	paths := []struct {
		name        string
		request     ledger.RequestWithdrawal
		cmds        []ledger.Command
		status      ledger.WithdrawalStatus
		alice       balance
		chain, fees int64
	}{
		{"broadcast and confirmed", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, record("w-1", txB, fee), ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 6}},
			ledger.WithdrawalStatusConfirmed, bal(start-amount-fee, 0, 0), amount, fee},
		{"broadcast without BeginBroadcast", withdraw("w-1", "alice", amount),
			[]ledger.Command{record("w-1", txB, fee), ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 1}},
			ledger.WithdrawalStatusConfirmed, bal(start-amount-fee, 0, 0), amount, fee},
		{"fee out of the amount", ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Address: addrOut, Amount: btc(amount), SubtractFee: true},
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, record("w-1", txB, fee)},
			ledger.WithdrawalStatusBroadcast, bal(start-amount, 0, 0), amount - fee, fee},
		{"whole balance, fee becomes debt", withdraw("w-1", "alice", start),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, record("w-1", txB, fee)},
			ledger.WithdrawalStatusBroadcast, bal(0, 0, fee), start, 0},
		{"failed before broadcast", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.FailWithdrawal{ID: "w-1", Reason: "bad address"}},
			ledger.WithdrawalStatusFailed, bal(start, 0, 0), 0, 0},
		{"rejected by the node", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, ledger.FailWithdrawal{ID: "w-1", Reason: "min relay fee not met"}},
			ledger.WithdrawalStatusFailed, bal(start, 0, 0), 0, 0},
		{"unknown, still held", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, ledger.MarkUnknown{ID: "w-1", Reason: "timeout"}},
			ledger.WithdrawalStatusUnknown, bal(start-amount, amount, 0), 0, 0},
		{"unknown, resolved as broadcast", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, ledger.MarkUnknown{ID: "w-1"}, record("w-1", txB, fee), ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 3}},
			ledger.WithdrawalStatusConfirmed, bal(start-amount-fee, 0, 0), amount, fee},
		{"unknown, resolved as failed", withdraw("w-1", "alice", amount),
			[]ledger.Command{ledger.BeginBroadcast{ID: "w-1"}, ledger.MarkUnknown{ID: "w-1"}, ledger.FailWithdrawal{ID: "w-1", Reason: "not in mempool"}},
			ledger.WithdrawalStatusFailed, bal(start, 0, 0), 0, 0},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			s := ledger.NewState()
			for _, e := range funded() {
				ledger.Evolve(s, e)
			}
			if _, err := ledger.Execute(s, p.request); err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.Execute(s, p.request); !errors.Is(err, ledger.ErrWithdrawalExists) {
				t.Fatalf("request repeated: %v, want ErrWithdrawalExists", err)
			}
			for i, c := range p.cmds {
				for n := range 3 { // every transition repeated: the repeats decide nothing
					events, err := ledger.Execute(s, c)
					if err != nil {
						t.Fatalf("step %d: %T: %v", i, c, err)
					}
					if (n == 0) != (len(events) > 0) {
						t.Fatalf("step %d delivery %d: %T decided %d events", i, n, c, len(events))
					}
					if err := s.Verify(); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			}
			w, ok := s.Withdrawal("w-1")
			if !ok || w.Status != p.status {
				t.Fatalf("withdrawal %+v, %v; want status %s", w, ok, p.status)
			}
			b, _ := s.Balance("alice")
			if got := bal(b.Available, b.Held, s.Debt("alice")); b.Pending != 0 || got != p.alice {
				t.Errorf("alice %+v debt %d, want %+v", b, s.Debt("alice"), p.alice)
			}
			if b, _ := s.Balance(ledger.ChainAccount); b.Available != p.chain {
				t.Errorf("@chain %+v, want %d", b, p.chain)
			}
			if b, _ := s.Balance(ledger.FeeAccount); b.Available != p.fees {
				t.Errorf("@fees %+v, want %d", b, p.fees)
			}
		})
	}
}

func TestWithdrawalQueries(t *testing.T) {
	s := ledger.NewState()
	for _, e := range funded(
		requested("w-b", "alice", 10),
		requested("w-a", "alice", 20),
		requested("w-c", "alice", 30), started("w-c", "alice"),
		requested("w-d", "alice", 40), started("w-d", "alice"), unknown("w-d", "alice", 40, "timeout"),
		requested("w-e", "alice", 50), broadcast("w-e", "alice", 50, txB, 7, 7),
		requested("w-f", "alice", 60), failed("w-f", "alice", 60, "rejected"),
	) {
		ledger.Evolve(s, e)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	ids := func(ws []ledger.Withdrawal) (out []string) {
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	if got := ids(s.PendingBroadcasts()); !reflect.DeepEqual(got, []string{"w-b", "w-a"}) {
		t.Errorf("PendingBroadcasts = %v, want request order", got)
	}
	for st, want := range map[ledger.WithdrawalStatus][]string{
		ledger.WithdrawalStatusBroadcasting: {"w-c"},
		ledger.WithdrawalStatusUnknown:      {"w-d"},
		ledger.WithdrawalStatusBroadcast:    {"w-e"},
		ledger.WithdrawalStatusFailed:       {"w-f"},
		ledger.WithdrawalStatusConfirmed:    nil,
	} {
		if got := ids(s.WithdrawalsByStatus(st)); !reflect.DeepEqual(got, want) {
			t.Errorf("WithdrawalsByStatus(%s) = %v, want %v", st, got, want)
		}
	}
	want := ledger.Withdrawal{ID: "w-e", Account: "alice", Address: addrOut, Amount: 50, Status: ledger.WithdrawalStatusBroadcast,
		TxID: txB, Fee: 7, Revision: 11}
	if w, ok := s.Withdrawal("w-e"); !ok || w != want {
		t.Errorf("Withdrawal(w-e) = %+v, %v\nwant %+v", w, ok, want)
	}
	if w, ok := s.Withdrawal("w-d"); !ok || w.Reason != "timeout" || w.Status != ledger.WithdrawalStatusUnknown {
		t.Errorf("Withdrawal(w-d) = %+v, %v", w, ok)
	}
	if _, ok := s.Withdrawal("w-z"); ok {
		t.Error("Withdrawal(w-z) exists")
	}
	if b, _ := s.Balance("alice"); b.Held != 10+20+30+40 {
		t.Errorf("alice %+v: want held = requested + broadcasting + unknown", b)
	}
	ledger.Evolve(s, locked)
	if got := s.PendingBroadcasts(); got != nil {
		t.Errorf("PendingBroadcasts while locked = %v", ids(got))
	}
	if got := ids(s.WithdrawalsByStatus(ledger.WithdrawalStatusRequested)); len(got) != 2 {
		t.Errorf("requested while locked = %v", got)
	}
}

func TestWithdrawalErrorsNameTheWithdrawal(t *testing.T) {
	s := ledger.NewState()
	for _, e := range funded(requested("w-1", "alice", 10), failed("w-1", "alice", 10, "")) {
		ledger.Evolve(s, e)
	}
	_, err := ledger.Decide(s, ledger.ConfirmWithdrawal{ID: "w-1", Confirmations: 1})
	if !errors.Is(err, ledger.ErrWithdrawalState) || !strings.Contains(err.Error(), "w-1") || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("error %v", err)
	}
	if got := s.WithdrawalsByStatus(ledger.WithdrawalStatusFailed); len(got) != 1 || !reflect.DeepEqual(got[0].Reason, "") {
		t.Fatalf("failed withdrawals %+v", got)
	}
}
