// Package audit is the use case of auditors: it folds the log into the
// books of every wallet (Books), signs checkpoints of the log
// (domain/audit) and verifies a log against its chains, its checkpoints and
// the ledger's rules.
package audit

import (
	"fmt"
	"strings"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
)

// Books folds the ledger events of a log, read in global order, into every
// wallet's coin and account balances. Events of other streams are ignored.
// It is not safe for concurrent use.
type Books struct {
	codec   *eventstore.Codec[ledger.Event]
	wallets map[string]*Book
}

// Book is one wallet's books.
type Book struct {
	// Coin is the wallet's coin code, set by its WalletOpened.
	Coin string
	// Accounts holds the balances of every account, system ones included.
	Accounts map[string]*ledger.Balance
}

// NewBooks returns the books of an empty log.
func NewBooks() *Books {
	return &Books{codec: eventstore.NewCodecOf(ledger.Events()...), wallets: map[string]*Book{}}
}

// Apply folds e and returns its wallet's name and book with the decoded
// event; ev is nil (and err nil) for an event that is not a ledger event.
// An event of a wallet stream whose type the ledger knows but whose data
// does not decode is an error.
func (b *Books) Apply(e eventstore.Event) (wallet string, book *Book, ev ledger.Event, err error) {
	wallet, ev, err = b.Decode(e)
	if ev == nil {
		return "", nil, nil, err
	}
	return wallet, b.ApplyDecoded(wallet, ev), ev, nil
}

// Decode returns e's wallet and decoded event as Apply would, without
// folding it: ev is nil (and err nil) for an event that is not a ledger
// event. It is safe for concurrent use, so a reader may decode many events
// at once and fold them in order with ApplyDecoded.
func (b *Books) Decode(e eventstore.Event) (wallet string, ev ledger.Event, err error) {
	wallet, ok := strings.CutPrefix(e.Stream, ledger.StreamPrefix)
	if !ok || !b.codec.Knows(e.Type) {
		return "", nil, nil
	}
	ev, err = b.codec.Decode(e)
	if err != nil {
		return "", nil, fmt.Errorf("books: %s: %w", e, err)
	}
	return wallet, ev, nil
}

// ApplyDecoded folds ev, the decoded event of wallet (Decode), and returns
// the wallet's book.
func (b *Books) ApplyDecoded(wallet string, ev ledger.Event) *Book {
	book := b.wallets[wallet]
	if book == nil {
		book = &Book{Accounts: map[string]*ledger.Balance{}}
		b.wallets[wallet] = book
	}
	switch o := ev.(type) {
	case ledger.WalletOpened:
		book.Coin = o.Coin
		for _, a := range ledger.SystemAccounts() {
			book.account(a)
		}
	case ledger.AccountOpened:
		book.account(o.Account)
	}
	for _, p := range ledger.PostingsOf(ev) {
		bal := book.account(p.Account)
		switch p.Bucket {
		case ledger.Available:
			bal.Available += p.Amount
		case ledger.Pending:
			bal.Pending += p.Amount
		case ledger.Held:
			bal.Held += p.Amount
		}
	}
	return book
}

// account returns the balance of name, opening it at zero.
func (b *Book) account(name string) *ledger.Balance {
	bal := b.Accounts[name]
	if bal == nil {
		bal = &ledger.Balance{}
		b.Accounts[name] = bal
	}
	return bal
}

// Wallets returns the books by wallet name. The map is the Books' own:
// read it, do not change it.
func (b *Books) Wallets() map[string]*Book { return b.wallets }
