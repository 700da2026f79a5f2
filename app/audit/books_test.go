package audit_test

import (
	"context"
	"testing"

	"github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// TestBooksFoldWhatTheDomainFolds: over generated wallet traffic, the
// books hold every balance ledger.Evolve holds, and every wallet sums to
// zero.
func TestBooksFoldWhatTheDomainFolds(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir()+"/events.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := loadgen.WalletTraffic(ctx, store, loadgen.WalletOptions{Events: 3000}); err != nil {
		t.Fatal(err)
	}
	books := audit.NewBooks()
	states := map[string]*ledger.State{}
	var after uint64
	for {
		events, err := store.ReadAll(ctx, after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			wallet, _, ev, err := books.Apply(e)
			if err != nil {
				t.Fatal(err)
			}
			if ev != nil {
				states[wallet] = ledger.Evolve(states[wallet], ev)
			}
			after = e.Position
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
