package audit

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/eventstore"
)

// Tally is everything a checkpoint states about a log, folded from the
// log in global order: the global chain, every stream's head and the
// wallets' books. The signer and the verifier fold the same Tally, so what
// one signs is what the other recomputes.
type Tally struct {
	// Chain is the global chain up to the last event added.
	Chain eventstore.GlobalChain
	// Last is the last event added (zero before any): its Position is the
	// store position the tally is at.
	Last  eventstore.Event
	heads map[string]audit.Head
	books *Books
}

// NewTally returns the tally of an empty log.
func NewTally() *Tally { return &Tally{heads: map[string]audit.Head{}, books: NewBooks()} }

// Add folds the next event of the log; its results are Books.Apply's.
func (t *Tally) Add(e eventstore.Event) (wallet string, book *Book, ev ledger.Event, err error) {
	t.link(e)
	return t.books.Apply(e)
}

// AddDecoded folds the next event of the log, whose ledger event (nil for
// none) a Books.Decode gave, and returns its wallet's book (nil for none).
func (t *Tally) AddDecoded(e eventstore.Event, wallet string, ev ledger.Event) *Book {
	t.link(e)
	if ev == nil {
		return nil
	}
	return t.books.ApplyDecoded(wallet, ev)
}

// link adds e to the chain and the stream heads.
func (t *Tally) link(e eventstore.Event) {
	t.Chain.Add(e)
	t.Last = e
	t.heads[e.Stream] = audit.Head{Next: e.Revision + 1, Hash: audit.Hash(e.Hash)}
}

// Books returns the wallets' books.
func (t *Tally) Books() *Books { return t.books }

// Heads returns every stream's head. The map is the Tally's own: read it,
// do not change it.
func (t *Tally) Heads() map[string]audit.Head { return t.heads }

// Owed is one account's line in a coin's liabilities.
type Owed struct {
	// Account is "<wallet>/<account>", the id a user gives to verify.
	Account string
	// Balance is the account's total balance (available, pending and held),
	// 0 when it is negative (an account in debt is owed nothing).
	Balance int64
}

// LiabilityAccount is the id of a wallet's account in liability trees.
func LiabilityAccount(wallet, account string) string { return wallet + "/" + account }

// Owed returns, per coin, what the service owes each user account,
// sorted by account id.
func (t *Tally) Owed() map[string][]Owed {
	out := map[string][]Owed{}
	for wallet, book := range t.books.Wallets() {
		if book.Coin == "" {
			continue
		}
		for account, bal := range book.Accounts {
			if ledger.IsSystemAccount(account) {
				continue
			}
			out[book.Coin] = append(out[book.Coin], Owed{Account: LiabilityAccount(wallet, account), Balance: max(bal.Total(), 0)})
		}
	}
	for _, lines := range out {
		slices.SortFunc(lines, func(a, b Owed) int { return cmp.Compare(a.Account, b.Account) })
	}
	return out
}

// Statement returns what checkpoint number states about the log so far,
// unsigned (audit.Sign sets the key), and the liability tree of every
// coin, whose salts derive from secret (liability.DeriveSalt). Its Time is
// the creation time of the last event, so signing the same tally twice
// gives the same checkpoint.
func (t *Tally) Statement(number uint64, secret []byte) (audit.Statement, map[string]*liability.Tree, error) {
	s := audit.Statement{
		Number:     number,
		Position:   t.Last.Position,
		Events:     t.Chain.Events,
		GlobalHead: audit.Hash(t.Chain.Head),
		Streams:    uint64(len(t.heads)),
		StreamRoot: audit.StreamRoot(t.heads),
		Time:       t.Last.Created,
	}
	owed := t.Owed()
	coins := make([]string, 0, len(owed))
	for coin := range owed {
		coins = append(coins, coin)
	}
	slices.Sort(coins)
	trees := make(map[string]*liability.Tree, len(coins))
	for _, coin := range coins {
		entries := make([]liability.Entry, len(owed[coin]))
		for i, o := range owed[coin] {
			salt, err := liability.DeriveSalt(secret, number, coin, o.Account)
			if err != nil {
				return audit.Statement{}, nil, fmt.Errorf("checkpoint %d: %w", number, err)
			}
			entries[i] = liability.Entry{Account: o.Account, Salt: salt, Balance: o.Balance}
		}
		tree, err := liability.Build(coin, entries)
		if err != nil {
			return audit.Statement{}, nil, fmt.Errorf("checkpoint %d: %w", number, err)
		}
		trees[coin] = tree
		s.Liabilities = append(s.Liabilities, tree.Root())
	}
	return s, trees, nil
}
