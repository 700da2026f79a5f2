package ledger_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// Chain vocabulary: alice's deposit address addrA, bob's addrB, an outside
// address addrOut; transactions txA, txB; blocks blk1, blk2. The wallet
// ("opened") confirms at 6.

var (
	addrA   = "bc1qalice0000000000000000000000000000000"
	addrB   = "bc1qbob00000000000000000000000000000000"
	addrOut = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
	txA     = strings.Repeat("a1", 32)
	txB     = strings.Repeat("b2", 32)
	blk1    = strings.Repeat("01", 32)
	blk2    = strings.Repeat("02", 32)

	assignedA = ledger.AddressAssigned{Account: "alice", Address: addrA}
	assignedB = ledger.AddressAssigned{Account: "bob", Address: addrB}
)

// withAddresses: funded() plus addrA for alice and addrB for bob.
func withAddresses(more ...ledger.Event) []ledger.Event {
	return funded(append([]ledger.Event{assignedA, assignedB}, more...)...)
}

func depositSeen(txid string, vout uint32, addr, account string, units int64, conf int, block string) ledger.DepositSeen {
	return ledger.DepositSeen{
		ID: ledger.DepositID(txid, vout), TxID: txid, Vout: vout, Address: addr, Account: account, Amount: units,
		Confirmations: conf, BlockHash: block,
		Postings: []ledger.Posting{
			{Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: -units},
			{Account: account, Bucket: ledger.Pending, Amount: units},
		},
	}
}

func depositConfirmed(txid string, vout uint32, account string, units int64, conf int, block string) ledger.DepositConfirmed {
	return ledger.DepositConfirmed{
		ID: ledger.DepositID(txid, vout), TxID: txid, Vout: vout, Account: account, Amount: units,
		Confirmations: conf, BlockHash: block,
		Postings: []ledger.Posting{
			{Account: account, Bucket: ledger.Pending, Amount: -units},
			{Account: account, Bucket: ledger.Available, Amount: units},
		},
	}
}

func depositChanged(txid string, vout uint32, account string, st ledger.DepositStatus, conf int, block string) ledger.DepositConfirmationsChanged {
	return ledger.DepositConfirmationsChanged{ID: ledger.DepositID(txid, vout), TxID: txid, Vout: vout, Account: account,
		Status: st, Confirmations: conf, BlockHash: block}
}

// depositReversed takes taken of units back from bucket; the rest is the
// shortfall.
func depositReversed(txid string, vout uint32, account string, units, taken int64, bucket ledger.Bucket, reason string) ledger.DepositReversed {
	return ledger.DepositReversed{
		ID: ledger.DepositID(txid, vout), TxID: txid, Vout: vout, Account: account, Amount: units, Reason: reason,
		Bucket: bucket, Shortfall: units - taken,
		Postings: []ledger.Posting{
			{Account: account, Bucket: bucket, Amount: -taken},
			{Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: taken},
		},
	}
}

// withKeyEvent returns e with its Idempotency set to k.
func withKeyEvent[E ledger.Event](e E, k ledger.Idempotency) E {
	v := reflect.ValueOf(&e).Elem()
	v.FieldByName("Idempotency").Set(reflect.ValueOf(k))
	return e
}

func observe(txid string, vout uint32, addr string, units int64, conf int, block string) ledger.ObserveDeposit {
	return ledger.ObserveDeposit{TxID: txid, Vout: vout, Address: addr, Amount: btc(units), Confirmations: conf, BlockHash: block}
}

func TestAssignAddress(t *testing.T) {
	keyed := assignedA
	keyed.Idempotency = key("k", "h")
	run(t, []scenario{
		{name: "assigns", given: funded(), when: ledger.AssignAddress{Account: "alice", Address: addrA}, then: []ledger.Event{assignedA}},
		{name: "idempotency recorded", given: funded(), when: ledger.AssignAddress{Account: "alice", Address: addrA, Idempotency: key("k", "h")}, then: []ledger.Event{keyed}},
		{name: "second address of an account", given: funded(assignedA), when: ledger.AssignAddress{Account: "alice", Address: addrB},
			then: []ledger.Event{ledger.AddressAssigned{Account: "alice", Address: addrB}}},
		{name: "cashaddr with prefix", given: funded(), when: ledger.AssignAddress{Account: "bob", Address: "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"},
			then: []ledger.Event{ledger.AddressAssigned{Account: "bob", Address: "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a"}}},
		{name: "while locked", given: funded(locked), when: ledger.AssignAddress{Account: "alice", Address: addrA}, then: []ledger.Event{assignedA}},
		{name: "same account again: nothing", given: funded(assignedA), when: ledger.AssignAddress{Account: "alice", Address: addrA}, then: nil},
		{name: "taken by another account", given: funded(assignedA), when: ledger.AssignAddress{Account: "bob", Address: addrA}, err: []error{ledger.ErrAddressExists}},
		{name: "unknown account", given: funded(), when: ledger.AssignAddress{Account: "carol", Address: addrA}, err: []error{ledger.ErrAccountNotFound}},
		{name: "system account", given: funded(), when: ledger.AssignAddress{Account: ledger.ChainAccount, Address: addrA}, err: []error{ledger.ErrValidation}},
		{name: "empty address", given: funded(), when: ledger.AssignAddress{Account: "alice"}, err: []error{ledger.ErrValidation}},
		{name: "address with space", given: funded(), when: ledger.AssignAddress{Account: "alice", Address: "bc1 q"}, err: []error{ledger.ErrValidation}},
		{name: "address too long", given: funded(), when: ledger.AssignAddress{Account: "alice", Address: strings.Repeat("a", 129)}, err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: ledger.AssignAddress{Account: "alice", Address: addrA}, err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestAddressQueries(t *testing.T) {
	s := ledger.NewState()
	for _, e := range withAddresses(ledger.AddressAssigned{Account: "alice", Address: "zz-second"}) {
		ledger.Evolve(s, e)
	}
	if a, ok := s.AccountOf(addrA); !ok || a != "alice" {
		t.Errorf("AccountOf(addrA) = %q, %v", a, ok)
	}
	if a, ok := s.AccountOf("nowhere"); ok || a != "" {
		t.Errorf("AccountOf(nowhere) = %q, %v", a, ok)
	}
	got := s.Addresses("alice")
	if !reflect.DeepEqual(got, []string{addrA, "zz-second"}) {
		t.Errorf("Addresses(alice) = %v", got)
	}
	got[0] = "changed"
	if s.Addresses("alice")[0] != addrA {
		t.Error("Addresses shares its slice with the state")
	}
	if got := s.Addresses("carol"); got != nil {
		t.Errorf("Addresses(carol) = %v", got)
	}
}

func TestObserveDeposit(t *testing.T) {
	seen0 := depositSeen(txA, 0, addrA, "alice", 5000, 0, "")
	seen1 := depositSeen(txA, 0, addrA, "alice", 5000, 1, blk1)
	conf6 := depositConfirmed(txA, 0, "alice", 5000, 6, blk1)
	keyedSeen := withKeyEvent(seen0, key("k", "h"))
	keyedConf := withKeyEvent(conf6, key("k", "h"))
	reorged := depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg)
	run(t, []scenario{
		// First sight.
		{name: "in the mempool: pending", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 0, ""), then: []ledger.Event{seen0}},
		{name: "in a block below the threshold: pending", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 1, blk1), then: []ledger.Event{seen1}},
		{name: "at the threshold: seen and confirmed at once", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 6, blk1),
			then: []ledger.Event{depositSeen(txA, 0, addrA, "alice", 5000, 6, blk1), conf6}},
		{name: "far beyond the tracking depth (rescan): seen and confirmed", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 250_000, blk1),
			then: []ledger.Event{depositSeen(txA, 0, addrA, "alice", 5000, 250_000, blk1), depositConfirmed(txA, 0, "alice", 5000, 250_000, blk1)}},
		{name: "key on the only event", given: withAddresses(), when: withKey(observe(txA, 0, addrA, 5000, 0, ""), key("k", "h")), then: []ledger.Event{keyedSeen}},
		{name: "key on the last of two events", given: withAddresses(), when: withKey(observe(txA, 0, addrA, 5000, 6, blk1), key("k", "h")),
			then: []ledger.Event{depositSeen(txA, 0, addrA, "alice", 5000, 6, blk1), keyedConf}},
		{name: "other vout of the same tx is another deposit", given: withAddresses(seen1), when: observe(txA, 1, addrB, 7, 1, blk1),
			then: []ledger.Event{depositSeen(txA, 1, addrB, "bob", 7, 1, blk1)}},
		{name: "while locked", given: withAddresses(locked), when: observe(txA, 0, addrA, 5000, 0, ""), then: []ledger.Event{seen0}},
		{name: "threshold of the wallet", given: []ledger.Event{
			ledger.WalletOpened{Wallet: "main", Coin: "BTC", Exponent: 8, Permissions: allPerms, Confirmations: 1}, alice, assignedA},
			when: observe(txA, 0, addrA, 5000, 1, blk1),
			then: []ledger.Event{seen1, depositConfirmed(txA, 0, "alice", 5000, 1, blk1)}},

		// Later observations.
		{name: "repeat: nothing", given: withAddresses(seen0), when: observe(txA, 0, addrA, 5000, 0, ""), then: nil},
		{name: "repeat in a block: nothing", given: withAddresses(seen1), when: observe(txA, 0, addrA, 5000, 1, blk1), then: nil},
		{name: "mined", given: withAddresses(seen0), when: observe(txA, 0, addrA, 5000, 1, blk1),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusSeen, 1, blk1)}},
		{name: "more confirmations below the threshold", given: withAddresses(seen1), when: observe(txA, 0, addrA, 5000, 5, blk1),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusSeen, 5, blk1)}},
		{name: "reaches the threshold: confirmed", given: withAddresses(seen1), when: observe(txA, 0, addrA, 5000, 6, blk1), then: []ledger.Event{conf6}},
		{name: "jumps past the threshold: confirmed", given: withAddresses(seen0), when: observe(txA, 0, addrA, 5000, 9, blk1),
			then: []ledger.Event{depositConfirmed(txA, 0, "alice", 5000, 9, blk1)}},
		{name: "confirmed repeat: nothing", given: withAddresses(seen1, conf6), when: observe(txA, 0, addrA, 5000, 6, blk1), then: nil},
		{name: "confirmed, more confirmations", given: withAddresses(seen1, conf6), when: observe(txA, 0, addrA, 5000, 7, blk1),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 7, blk1)}},
		{name: "confirmed, fewer confirmations after a reorg: stays credited", given: withAddresses(seen1, conf6), when: observe(txA, 0, addrA, 5000, 2, blk2),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 2, blk2)}},
		{name: "confirmed, back in the mempool: stays credited", given: withAddresses(seen1, conf6), when: observe(txA, 0, addrA, 5000, 0, ""),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 0, "")}},
		{name: "same depth, other block", given: withAddresses(seen1), when: observe(txA, 0, addrA, 5000, 1, blk2),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusSeen, 1, blk2)}},
		{name: "up to the tracking depth", given: withAddresses(seen1, conf6), when: observe(txA, 0, addrA, 5000, 100, blk1),
			then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 100, blk1)}},
		{name: "beyond the tracking depth: nothing", given: withAddresses(seen1, conf6, depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 100, blk1)),
			when: observe(txA, 0, addrA, 5000, 101, blk1), then: nil},
		{name: "at the tracking depth, a shallower report: nothing", given: withAddresses(seen1, conf6, depositChanged(txA, 0, "alice", ledger.DepositStatusConfirmed, 100, blk1)),
			when: observe(txA, 0, addrA, 5000, 50, blk2), then: nil},
		{name: "tracking depth follows a higher threshold", given: []ledger.Event{
			ledger.WalletOpened{Wallet: "main", Coin: "BTC", Exponent: 8, Permissions: allPerms, Confirmations: 150}, alice, assignedA,
			depositSeen(txA, 0, addrA, "alice", 5000, 100, blk1)},
			when: observe(txA, 0, addrA, 5000, 120, blk1), then: []ledger.Event{depositChanged(txA, 0, "alice", ledger.DepositStatusSeen, 120, blk1)}},

		// After a reversal.
		{name: "reversed, stale mempool report: nothing", given: withAddresses(seen0, withReason(reorged, ledger.ReasonDoubleSpend)),
			when: observe(txA, 0, addrA, 5000, 0, ""), then: nil},
		{name: "reversed, stale report of the orphaned block: nothing", given: withAddresses(seen1, reorged),
			when: observe(txA, 0, addrA, 5000, 3, blk1), then: nil},
		{name: "reversed, mined in another block: seen again", given: withAddresses(seen1, reorged),
			when: observe(txA, 0, addrA, 5000, 1, blk2), then: []ledger.Event{depositSeen(txA, 0, addrA, "alice", 5000, 1, blk2)}},
		{name: "reversed, deep in another block: seen and confirmed again", given: withAddresses(seen1, reorged),
			when: observe(txA, 0, addrA, 5000, 6, blk2),
			then: []ledger.Event{depositSeen(txA, 0, addrA, "alice", 5000, 6, blk2), depositConfirmed(txA, 0, "alice", 5000, 6, blk2)}},

		// Refusals.
		{name: "unknown address", given: withAddresses(), when: observe(txA, 0, "1Unknown", 5000, 0, ""), err: []error{ledger.ErrUnknownAddress}},
		{name: "amount differs from the recorded one", given: withAddresses(seen0), when: observe(txA, 0, addrA, 5001, 1, blk1), err: []error{ledger.ErrValidation}},
		{name: "address differs from the recorded one", given: withAddresses(seen0), when: observe(txA, 0, addrB, 5000, 1, blk1), err: []error{ledger.ErrValidation}},
		{name: "amount differs after a reversal", given: withAddresses(seen1, reorged), when: observe(txA, 0, addrA, 1, 1, blk2), err: []error{ledger.ErrValidation}},
		{name: "upper-case txid", given: withAddresses(), when: observe(strings.ToUpper(txA), 0, addrA, 5000, 0, ""), err: []error{ledger.ErrValidation}},
		{name: "short txid", given: withAddresses(), when: observe(txA[:63], 0, addrA, 5000, 0, ""), err: []error{ledger.ErrValidation}},
		{name: "non-hex txid", given: withAddresses(), when: observe(strings.Repeat("g", 64), 0, addrA, 5000, 0, ""), err: []error{ledger.ErrValidation}},
		{name: "negative confirmations", given: withAddresses(seen0), when: observe(txA, 0, addrA, 5000, -1, ""), err: []error{ledger.ErrValidation}},
		{name: "block hash in the mempool", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 0, blk1), err: []error{ledger.ErrValidation}},
		{name: "no block hash in a block", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 1, ""), err: []error{ledger.ErrValidation}},
		{name: "bad block hash", given: withAddresses(), when: observe(txA, 0, addrA, 5000, 1, "xyz"), err: []error{ledger.ErrValidation}},
		{name: "zero amount", given: withAddresses(), when: observe(txA, 0, addrA, 0, 0, ""), err: []error{ledger.ErrValidation, money.ErrZero}},
		{name: "negative amount", given: withAddresses(), when: observe(txA, 0, addrA, -5, 0, ""), err: []error{ledger.ErrValidation, money.ErrNegative}},
		{name: "other coin", given: withAddresses(),
			when: ledger.ObserveDeposit{TxID: txA, Address: addrA, Amount: money.New(money.LTC, 5)}, err: []error{ledger.ErrValidation, money.ErrAssetMismatch}},
		{name: "bad address", given: withAddresses(), when: observe(txA, 0, "a b", 5000, 0, ""), err: []error{ledger.ErrValidation}},
		{name: "pending would overflow", given: withAddresses(depositSeen(txB, 0, addrB, "bob", math.MaxInt64, 0, "")),
			when: observe(txA, 0, addrB, 1, 0, ""), err: []error{ledger.ErrValidation, money.ErrOverflow}},
		{name: "available would overflow at once", given: []ledger.Event{opened, alice, assignedA, imported("i-1", "alice", math.MaxInt64)},
			when: observe(txA, 0, addrA, 1, 6, blk1), err: []error{ledger.ErrValidation, money.ErrOverflow}},
		{name: "no wallet", when: observe(txA, 0, addrA, 5000, 0, ""), err: []error{ledger.ErrWalletNotFound}},
	})
}

func withReason(e ledger.DepositReversed, reason string) ledger.DepositReversed {
	e.Reason = reason
	return e
}

func TestReverseDeposit(t *testing.T) {
	seen1 := depositSeen(txA, 0, addrA, "alice", 5000, 1, blk1)
	conf6 := depositConfirmed(txA, 0, "alice", 5000, 6, blk1)
	rev := func(reason string) ledger.ReverseDeposit {
		return ledger.ReverseDeposit{TxID: txA, Vout: 0, Reason: reason}
	}
	// bob's deposit confirmed; bob then moved some of it on.
	bobSeen := depositSeen(txA, 0, addrB, "bob", 5000, 6, blk1)
	bobConf := depositConfirmed(txA, 0, "bob", 5000, 6, blk1)
	keyed := withKeyEvent(depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg), key("k", "h"))
	run(t, []scenario{
		{name: "seen: taken from pending", given: withAddresses(seen1), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg)}},
		{name: "double spend", given: withAddresses(seen1), when: rev(ledger.ReasonDoubleSpend),
			then: []ledger.Event{depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonDoubleSpend)}},
		{name: "idempotency recorded", given: withAddresses(seen1), when: ledger.ReverseDeposit{TxID: txA, Reason: ledger.ReasonReorg, Idempotency: key("k", "h")},
			then: []ledger.Event{keyed}},
		{name: "confirmed: taken from available", given: withAddresses(bobSeen, bobConf), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "bob", 5000, 5000, ledger.Available, ledger.ReasonReorg)}},
		{name: "confirmed, partly spent: shortfall", given: withAddresses(bobSeen, bobConf, transferred("t-1", "bob", "alice", 3000)), when: rev(ledger.ReasonDoubleSpend),
			then: []ledger.Event{depositReversed(txA, 0, "bob", 5000, 2000, ledger.Available, ledger.ReasonDoubleSpend)}},
		{name: "confirmed, all spent: whole shortfall, still an entry", given: withAddresses(bobSeen, bobConf, transferred("t-1", "bob", "alice", 5000)), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "bob", 5000, 0, ledger.Available, ledger.ReasonReorg)}},
		{name: "confirmed, funds held: held untouched, shortfall", given: withAddresses(bobSeen, bobConf, holdPlaced("h-1", "bob", 4500, t0.AddDate(1, 0, 0))), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "bob", 5000, 500, ledger.Available, ledger.ReasonReorg)}},
		{name: "other deposits are not touched", given: withAddresses(seen1, depositSeen(txB, 3, addrA, "alice", 10, 0, "")), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg)}},
		{name: "while locked", given: withAddresses(seen1, conf6, locked), when: rev(ledger.ReasonReorg),
			then: []ledger.Event{depositReversed(txA, 0, "alice", 5000, 5000, ledger.Available, ledger.ReasonReorg)}},
		{name: "reversed again: nothing", given: withAddresses(seen1, depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg)),
			when: rev(ledger.ReasonDoubleSpend), then: nil},
		{name: "seen again, reversed again", given: withAddresses(seen1, depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg),
			depositSeen(txA, 0, addrA, "alice", 5000, 1, blk2)),
			when: rev(ledger.ReasonReorg), then: []ledger.Event{depositReversed(txA, 0, "alice", 5000, 5000, ledger.Pending, ledger.ReasonReorg)}},
		{name: "unknown deposit", given: withAddresses(seen1), when: ledger.ReverseDeposit{TxID: txA, Vout: 1, Reason: ledger.ReasonReorg}, err: []error{ledger.ErrDepositNotFound}},
		{name: "unknown reason", given: withAddresses(seen1), when: rev("oops"), err: []error{ledger.ErrValidation}},
		{name: "no reason", given: withAddresses(seen1), when: rev(""), err: []error{ledger.ErrValidation}},
		{name: "bad txid", given: withAddresses(seen1), when: ledger.ReverseDeposit{TxID: "abc", Reason: ledger.ReasonReorg}, err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: rev(ledger.ReasonReorg), err: []error{ledger.ErrWalletNotFound}},
	})
}

// TestDepositRepeats delivers every notification five times, as
// walletnotify, rescans and retries do: each change counts once.
func TestDepositRepeats(t *testing.T) {
	s := ledger.NewState()
	for _, e := range withAddresses() {
		ledger.Evolve(s, e)
	}
	steps := []struct {
		c     ledger.Command
		types []string // events of the first delivery
	}{
		{observe(txA, 0, addrA, 5000, 0, ""), []string{ledger.TypeDepositSeen}},
		{observe(txA, 0, addrA, 5000, 1, blk1), []string{ledger.TypeDepositConfirmationsChanged}},
		{observe(txA, 0, addrA, 5000, 6, blk1), []string{ledger.TypeDepositConfirmed}},
		{observe(txA, 0, addrA, 5000, 7, blk1), []string{ledger.TypeDepositConfirmationsChanged}},
		{ledger.ReverseDeposit{TxID: txA, Reason: ledger.ReasonReorg}, []string{ledger.TypeDepositReversed}},
		{observe(txA, 0, addrA, 5000, 7, blk1), nil}, // stale
		{observe(txA, 0, addrA, 5000, 6, blk2), []string{ledger.TypeDepositSeen, ledger.TypeDepositConfirmed}},
	}
	for i, step := range steps {
		for n := range 5 {
			events, err := ledger.Execute(s, step.c)
			if err != nil {
				t.Fatalf("step %d delivery %d: %v", i, n, err)
			}
			var types []string
			for _, e := range events {
				types = append(types, e.EventType())
			}
			want := step.types
			if n > 0 {
				want = nil
			}
			if !reflect.DeepEqual(types, want) {
				t.Fatalf("step %d delivery %d: events %v, want %v", i, n, types, want)
			}
			if err := s.Verify(); err != nil {
				t.Fatalf("step %d delivery %d: %v", i, n, err)
			}
		}
	}
	if b, _ := s.Balance("alice"); b.Available != 100_000_000+5000 || b.Pending != 0 {
		t.Fatalf("alice %+v: want the deposit credited once", b)
	}
	if b, _ := s.Balance(ledger.ChainAccount); b.Available != -5000 {
		t.Fatalf("@chain %+v", b)
	}
	d, ok := s.Deposit(txA, 0)
	want := ledger.Deposit{ID: ledger.DepositID(txA, 0), TxID: txA, Address: addrA, Account: "alice", Amount: 5000,
		Status: ledger.DepositStatusConfirmed, Confirmations: 6, BlockHash: blk2, Reversals: 1, Reason: ledger.ReasonReorg}
	if !ok || d != want {
		t.Fatalf("Deposit = %+v, %v\nwant %+v", d, ok, want)
	}
}

// TestDepositShortfall follows a confirmed deposit that is spent and then
// reversed: available stays at zero, the shortfall becomes debt.
func TestDepositShortfall(t *testing.T) {
	s := ledger.NewState()
	for _, e := range withAddresses() {
		ledger.Evolve(s, e)
	}
	must := func(c ledger.Command) []ledger.Event {
		t.Helper()
		events, err := ledger.Execute(s, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Verify(); err != nil {
			t.Fatal(err)
		}
		return events
	}
	must(observe(txA, 0, addrB, 5000, 6, blk1))
	must(ledger.Transfer{ID: "t-1", From: "bob", To: "alice", Amount: btc(3500)})
	events := must(ledger.ReverseDeposit{TxID: txA, Reason: ledger.ReasonDoubleSpend})
	if r := events[0].(ledger.DepositReversed); r.Shortfall != 3500 || r.Bucket != ledger.Available {
		t.Fatalf("reversal %+v", r)
	}
	if b, _ := s.Balance("bob"); b != (ledger.Balance{}) || s.Debt("bob") != 3500 {
		t.Fatalf("bob %+v, debt %d: want nothing left and a debt of 3500", b, s.Debt("bob"))
	}
	if got := s.Debts(); !reflect.DeepEqual(got, map[string]int64{"bob": 3500}) {
		t.Fatalf("Debts() = %v", got)
	}
	// A second shortfall adds to the debt.
	must(observe(txB, 0, addrB, 100, 6, blk1))
	must(ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(60)})
	must(ledger.ReverseDeposit{TxID: txB, Reason: ledger.ReasonReorg})
	if b, _ := s.Balance("bob"); b != (ledger.Balance{}) || s.Debt("bob") != 3560 {
		t.Fatalf("bob %+v, debt %d", b, s.Debt("bob"))
	}
	if s.Debt("alice") != 0 || s.Debt("nobody") != 0 {
		t.Fatal("debt without a shortfall")
	}
	copied := s.Debts()
	copied["bob"] = 0
	if s.Debt("bob") != 3560 {
		t.Fatal("Debts shares its map with the state")
	}
	// Debt is a record, not a balance: the buckets still sum to zero, and
	// user totals minus debts equal what the chain holds (nothing).
	var users, debts int64
	for _, a := range s.Accounts() {
		b, _ := s.Balance(a)
		users += b.Total()
		debts += s.Debt(a)
	}
	if users-debts != 100_000_000 { // alice's imported balance; both deposits are gone
		t.Fatalf("users %d - debts %d", users, debts)
	}
}

func TestDepositQueries(t *testing.T) {
	s := ledger.NewState()
	for _, e := range withAddresses(
		depositSeen(txB, 0, addrA, "alice", 10, 0, ""),
		depositSeen(txA, 0, addrA, "alice", 20, 3, blk1),
		depositSeen(txA, 1, addrB, "bob", 30, 6, blk1), depositConfirmed(txA, 1, "bob", 30, 6, blk1),
		depositSeen(txA, 2, addrB, "bob", 40, 6, blk1), depositConfirmed(txA, 2, "bob", 40, 6, blk1),
		depositChanged(txA, 2, "bob", ledger.DepositStatusConfirmed, 100, blk1),
		depositSeen(txA, 3, addrB, "bob", 50, 0, ""), depositReversed(txA, 3, "bob", 50, 50, ledger.Pending, ledger.ReasonDoubleSpend),
	) {
		ledger.Evolve(s, e)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
	if ledger.DepositID(txA, 7) != txA+":7" {
		t.Errorf("DepositID = %s", ledger.DepositID(txA, 7))
	}
	if d, ok := s.Deposit(txA, 1); !ok || d.Status != ledger.DepositStatusConfirmed || d.Account != "bob" || d.Amount != 30 || d.Confirmations != 6 {
		t.Errorf("Deposit(txA, 1) = %+v, %v", d, ok)
	}
	if d, ok := s.Deposit(txA, 3); !ok || d.Status != ledger.DepositStatusReversed || d.Reason != ledger.ReasonDoubleSpend || d.Reversals != 1 {
		t.Errorf("Deposit(txA, 3) = %+v, %v", d, ok)
	}
	if _, ok := s.Deposit(txA, 9); ok {
		t.Error("Deposit(txA, 9) exists")
	}
	var tracked []string
	for _, d := range s.TrackedDeposits() {
		tracked = append(tracked, d.ID)
	}
	// Not txA:2 (at the tracking depth) nor txA:3 (reversed).
	want := []string{ledger.DepositID(txA, 0), ledger.DepositID(txA, 1), ledger.DepositID(txB, 0)}
	if !reflect.DeepEqual(tracked, want) {
		t.Errorf("TrackedDeposits = %v, want %v", tracked, want)
	}
	if s.TrackingDepth() != ledger.DepositTrackingDepth {
		t.Errorf("TrackingDepth = %d", s.TrackingDepth())
	}
	if a, _ := s.Balance("alice"); a.Pending != 30 {
		t.Errorf("alice %+v", a)
	}
	if b, _ := s.Balance("bob"); b.Pending != 0 || b.Available != 70 {
		t.Errorf("bob %+v", b)
	}
}

func TestObserveDepositErrorsWrapOperation(t *testing.T) {
	s := ledger.NewState()
	for _, e := range withAddresses() {
		ledger.Evolve(s, e)
	}
	_, err := ledger.Decide(s, observe(txA, 4, "1Unknown", 5, 0, ""))
	if !errors.Is(err, ledger.ErrUnknownAddress) || !strings.Contains(err.Error(), txA+":4") {
		t.Fatalf("error %v: want ErrUnknownAddress naming the deposit", err)
	}
}
