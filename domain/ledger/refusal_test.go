package ledger_test

import (
	"errors"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

func refused(command, id, reason string, k ledger.Idempotency) ledger.CommandRefused {
	return ledger.CommandRefused{Command: command, ID: id, Reason: reason, Idempotency: k}
}

// TestRefusedKeyKeepsItsAnswer: given a recorded refusal, the same key and
// request is refused the same way, even when the command would now succeed.
func TestRefusedKeyKeepsItsAnswer(t *testing.T) {
	k := key("k-1", "h-1")
	tr := ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(10), Idempotency: k}
	run(t, []scenario{
		{
			name:  "insufficient funds stays the answer after funding",
			given: funded(refused("transfer", "t-1", "insufficient_funds", k), imported("i-2", "bob", 1000)),
			when:  tr,
			err:   []error{ledger.ErrInsufficientFunds},
		},
		{
			name:  "wallet locked stays the answer after unlocking",
			given: funded(locked, refused("transfer", "t-1", "wallet_locked", k), ledger.WalletUnlocked{}, imported("i-2", "bob", 1000)),
			when:  tr,
			err:   []error{ledger.ErrWalletLocked},
		},
		{
			name:  "unknown account stays the answer after it is opened",
			given: []ledger.Event{opened, alice, refused("transfer", "t-1", "account_not_found", k), bob, imported("i-2", "bob", 1000)},
			when:  tr,
			err:   []error{ledger.ErrAccountNotFound},
		},
		{
			name:  "same key, other request",
			given: funded(refused("transfer", "t-1", "insufficient_funds", k)),
			when:  ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(11), Idempotency: key("k-1", "h-2")},
			err:   []error{ledger.ErrIdempotencyKeyReused},
		},
		{
			name:  "other key decides afresh",
			given: funded(refused("transfer", "t-1", "insufficient_funds", k), imported("i-2", "bob", 1000)),
			when:  ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(10), Idempotency: key("k-2", "h-1")},
			then: []ledger.Event{func() ledger.Event {
				e := transferred("t-2", "bob", "alice", 10)
				e.Idempotency = key("k-2", "h-1")
				return e
			}()},
		},
	})
}

// TestRefusal: which errors become a CommandRefused event.
func TestRefusal(t *testing.T) {
	k := key("k-1", "h-1")
	tr := ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(10), Idempotency: k}
	unkeyed := tr
	unkeyed.Idempotency = ledger.Idempotency{}
	hold := ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(1), Idempotency: k}
	for _, c := range []struct {
		name string
		cmd  ledger.Command
		err  error
		want *ledger.CommandRefused
	}{
		{"insufficient funds", tr, ledger.ErrInsufficientFunds, &ledger.CommandRefused{Command: "transfer", ID: "t-1", Reason: "insufficient_funds", Idempotency: k}},
		{"wallet locked", hold, ledger.ErrWalletLocked, &ledger.CommandRefused{Command: "place_hold", ID: "h-1", Reason: "wallet_locked", Idempotency: k}},
		{"account not found", tr, ledger.ErrAccountNotFound, &ledger.CommandRefused{Command: "transfer", ID: "t-1", Reason: "account_not_found", Idempotency: k}},
		{"hold exists", hold, ledger.ErrHoldExists, &ledger.CommandRefused{Command: "place_hold", ID: "h-1", Reason: "hold_exists", Idempotency: k}},
		{"id not quotable", ledger.ReleaseHold{ID: "no such id!", Idempotency: k}, ledger.ErrHoldNotFound,
			&ledger.CommandRefused{Command: "release_hold", Reason: "hold_not_found", Idempotency: k}},
		{"no key", unkeyed, ledger.ErrInsufficientFunds, nil},
		{"validation", tr, ledger.ErrValidation, nil},
		{"validation of an amount", tr, errors.Join(ledger.ErrValidation, money.ErrZero), nil},
		{"key reused", tr, ledger.ErrIdempotencyKeyReused, nil},
		{"no wallet", tr, ledger.ErrWalletNotFound, nil},
		{"replay of a refusal", tr, &ledger.RefusedError{Command: "transfer", Reason: "insufficient_funds"}, nil},
		{"no error", tr, nil, nil},
		{"unknown error", tr, errors.New("disk full"), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := ledger.Refusal(c.cmd, c.err)
			if ok != (c.want != nil) || (ok && got != *c.want) {
				t.Fatalf("Refusal = %+v, %v; want %+v", got, ok, c.want)
			}
		})
	}
}

// TestRefusalRecordedAndReplayed goes the whole way: decide, record the
// refusal, fund the account, replay.
func TestRefusalRecordedAndReplayed(t *testing.T) {
	s := ledger.NewState()
	for _, e := range funded() { // revisions 0..3
		ledger.Evolve(s, e)
	}
	big := ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(50), Idempotency: key("k-2", "h-2")}
	_, err := ledger.Decide(s, big)
	if !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("want insufficient funds, got %v", err)
	}
	ev, ok := ledger.Refusal(big, err)
	if !ok {
		t.Fatal("insufficient funds of a keyed command not recorded")
	}
	ledger.Evolve(s, ev) // revision 4
	if _, err := ledger.Execute(s, ledger.ImportBalance{ID: "i-2", Account: "bob", Amount: btc(40_000)}); err != nil {
		t.Fatal(err)
	}
	r, seen, err := s.Replay("k-2", "h-2")
	var re *ledger.RefusedError
	if !seen || !errors.Is(err, ledger.ErrInsufficientFunds) || !errors.As(err, &re) {
		t.Fatalf("Replay = %+v, %v, %v; want the recorded refusal", r, seen, err)
	}
	want := ledger.Result{EventType: ledger.TypeCommandRefused, ID: "t-2", Revision: 4, Refused: "insufficient_funds"}
	if r != want || re.Revision != 4 || re.Command != "transfer" || re.ID != "t-2" {
		t.Fatalf("Replay = %+v (%+v); want %+v", r, re, want)
	}
	if events, err := ledger.Decide(s, big); events != nil || !errors.As(err, &re) || !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("retry after funding decided %v, %v; want the recorded refusal", events, err)
	}
	if _, ok := ledger.Refusal(big, err); ok {
		t.Fatal("a replayed refusal would be recorded again")
	}
	if b, _ := s.Balance("bob"); b.Available != 40_000 {
		t.Fatalf("bob %+v", b)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}
