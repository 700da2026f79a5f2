package audit_test

import (
	"reflect"
	"testing"

	"github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore/loadgen"
)

// TestBooksFoldWhatTheDomainFolds: over generated wallet traffic, the
// books hold every balance ledger.Evolve holds, and every wallet sums to
// zero.
func TestBooksFoldWhatTheDomainFolds(t *testing.T) {
	books := audit.NewBooks()
	states := map[string]*ledger.State{}
	for _, e := range traffic(t, 3000) {
		wallet, _, ev, err := books.Apply(e)
		if err != nil {
			t.Fatal(err)
		}
		if ev != nil {
			states[wallet] = ledger.Evolve(states[wallet], ev)
		}
	}
	if len(states) == 0 {
		t.Fatal("no wallets in the traffic")
	}
	for name, s := range states {
		book := books.Wallets()[name]
		if book.Coin != s.Coin().Code() {
			t.Errorf("%s: coin %q, domain %q", name, book.Coin, s.Coin().Code())
		}
		var sum int64
		for _, a := range s.Accounts() {
			want, _ := s.Balance(a)
			got := book.Accounts[a]
			if got == nil || *got != want {
				t.Errorf("%s/%s: books %+v, domain %+v", name, a, got, want)
			}
		}
		for _, b := range book.Accounts {
			sum += b.Total()
		}
		if sum != 0 {
			t.Errorf("%s: balances sum to %d", name, sum)
		}
		users := 0
		for a := range book.Accounts {
			if !ledger.IsSystemAccount(a) {
				users++
			}
		}
		if users != len(s.Accounts()) {
			t.Errorf("%s: %d user accounts in the books, %d in the domain", name, users, len(s.Accounts()))
		}
	}
}

// TestTallyStatementIsAFunctionOfTheLog: two tallies of one log state the
// same; one more event changes the chain, the heads and the time.
func TestTallyStatementIsAFunctionOfTheLog(t *testing.T) {
	events := trafficOf(t, loadgen.WalletOptions{Events: 2000, Wallets: 3})
	secret := make([]byte, 32)
	a, b := audit.NewTally(), audit.NewTally()
	for _, e := range events[:len(events)-1] {
		if _, _, _, err := a.Add(e); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := b.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	sa, trees, err := a.Statement(1, secret)
	if err != nil {
		t.Fatal(err)
	}
	sb, _, _ := b.Statement(1, secret)
	if !reflect.DeepEqual(sa, sb) {
		t.Fatalf("two tallies of one log differ:\n%+v\n%+v", sa, sb)
	}
	if len(sa.Liabilities) == 0 || len(trees) != len(sa.Liabilities) {
		t.Fatalf("liabilities %+v, %d trees", sa.Liabilities, len(trees))
	}
	var total int64
	for _, lines := range a.Owed() {
		for _, o := range lines {
			total += o.Balance
		}
	}
	var signed int64
	for _, r := range sa.Liabilities {
		signed += r.Total
	}
	if total != signed || total == 0 {
		t.Fatalf("trees total %d, owed %d", signed, total)
	}
	if _, _, _, err := b.Add(events[len(events)-1]); err != nil {
		t.Fatal(err)
	}
	sb, _, _ = b.Statement(1, secret)
	if sb.GlobalHead == sa.GlobalHead || sb.Events != sa.Events+1 || sb.Position == sa.Position {
		t.Fatalf("one more event, same statement: %+v", sb)
	}
}
