package liability

import (
	"bytes"
	"fmt"
	"sort"
)

// Entry is one account's line in a tree: its id, its salt and what the
// service owes it, in minor units of the tree's coin.
type Entry struct {
	// Account is the account's id as its owner knows it, e.g.
	// "<wallet>/<account>": the user supplies it when verifying.
	Account string
	// Salt is the account's secret salt, MinSaltSize to MaxSaltSize
	// bytes (DeriveSalt).
	Salt []byte
	// Balance is never negative.
	Balance int64
}

// Root is what a checkpoint publishes for one coin: the tree's root hash
// and the total of all balances.
type Root struct {
	Coin  string
	Hash  Hash
	Total int64
}

// node is a hash and the sum of the balances below it.
type node struct {
	hash Hash
	sum  int64
}

// leaf is an entry in tree order.
type leaf struct {
	account string
	salt    []byte
	balance int64
	commit  Hash
}

// Tree is a Merkle sum tree over one coin's balances. It is immutable and
// safe for concurrent use once built.
type Tree struct {
	coin   string
	leaves []leaf
	levels [][]node // levels[0] are the leaves; the last level holds the root
	index  map[string]int
}

// Build makes the tree of coin's entries. It refuses an invalid coin,
// account id or salt, a negative balance, an account listed twice and a
// total above math.MaxInt64. The entries' order does not matter; no entry
// is kept by reference. Zero entries make the empty tree.
func Build(coin string, entries []Entry) (*Tree, error) {
	if err := checkCoin(coin); err != nil {
		return nil, fmt.Errorf("build liability tree: %w", err)
	}
	t := &Tree{coin: coin, leaves: make([]leaf, len(entries)), index: make(map[string]int, len(entries))}
	var total int64
	for i, e := range entries {
		if err := checkAccount(e.Account); err != nil {
			return nil, fmt.Errorf("build liability tree of %s: entry %d: %w", coin, i, err)
		}
		if err := checkSalt(e.Salt); err != nil {
			return nil, fmt.Errorf("build liability tree of %s: account %q: %w", coin, e.Account, err)
		}
		if e.Balance < 0 {
			return nil, fmt.Errorf("build liability tree of %s: account %q: balance %d: %w", coin, e.Account, e.Balance, ErrNegativeBalance)
		}
		if _, dup := t.index[e.Account]; dup {
			return nil, fmt.Errorf("build liability tree of %s: account %q: %w", coin, e.Account, ErrDuplicateAccount)
		}
		var ok bool
		if total, ok = addSum(total, e.Balance); !ok {
			return nil, fmt.Errorf("build liability tree of %s: account %q: %w", coin, e.Account, ErrOverflow)
		}
		t.index[e.Account] = i
		t.leaves[i] = leaf{
			account: e.Account,
			salt:    bytes.Clone(e.Salt),
			balance: e.Balance,
			commit:  commitment(coin, e.Account, e.Salt),
		}
	}
	sort.Slice(t.leaves, func(i, j int) bool {
		return bytes.Compare(t.leaves[i].commit[:], t.leaves[j].commit[:]) < 0
	})
	for i, l := range t.leaves {
		if i > 0 && l.commit == t.leaves[i-1].commit {
			// Two accounts with one commitment: a SHA-256 collision, or
			// the caller's bug. Either way the tree would be ambiguous.
			return nil, fmt.Errorf("build liability tree of %s: accounts %q and %q share a commitment: %w",
				coin, t.leaves[i-1].account, l.account, ErrDuplicateAccount)
		}
		t.index[l.account] = i
	}
	if len(t.leaves) == 0 {
		return t, nil
	}
	level := make([]node, len(t.leaves))
	for i, l := range t.leaves {
		level[i] = node{hash: leafHash(l.commit, l.balance), sum: l.balance}
	}
	t.levels = append(t.levels, level)
	for len(level) > 1 {
		next := make([]node, 0, (len(level)+1)/2)
		for i := 0; i+1 < len(level); i += 2 {
			l, r := level[i], level[i+1]
			sum, _ := addSum(l.sum, r.sum) // bounded by total, checked above
			next = append(next, node{hash: nodeHash(l.hash, l.sum, r.hash, r.sum), sum: sum})
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1]) // carried up unchanged
		}
		t.levels = append(t.levels, next)
		level = next
	}
	return t, nil
}

// Coin returns the tree's coin.
func (t *Tree) Coin() string { return t.coin }

// Len returns the number of accounts in the tree.
func (t *Tree) Len() int { return len(t.leaves) }

// Root returns the tree's root hash and total.
func (t *Tree) Root() Root {
	if len(t.levels) == 0 {
		return Root{Coin: t.coin, Hash: emptyHash(t.coin)}
	}
	r := t.levels[len(t.levels)-1][0]
	return Root{Coin: t.coin, Hash: r.hash, Total: r.sum}
}

// Proof returns the inclusion proof of account, or ErrUnknownAccount.
func (t *Tree) Proof(account string) (Proof, error) {
	i, ok := t.index[account]
	if !ok {
		return Proof{}, fmt.Errorf("liability proof of %q in %s: %w", account, t.coin, ErrUnknownAccount)
	}
	l := t.leaves[i]
	p := Proof{Coin: t.coin, Salt: bytes.Clone(l.salt), Balance: l.balance}
	for _, level := range t.levels[:len(t.levels)-1] {
		sib := i ^ 1
		if sib < len(level) {
			side := Right
			if sib < i {
				side = Left
			}
			p.Path = append(p.Path, Step{Side: side, Hash: level[sib].hash, Sum: level[sib].sum})
		}
		i /= 2
	}
	return p, nil
}

func checkCoin(coin string) error {
	if coin == "" || len(coin) > MaxCoinSize {
		return fmt.Errorf("coin of %d bytes, want 1 to %d: %w", len(coin), MaxCoinSize, ErrInvalidCoin)
	}
	return nil
}

func checkAccount(account string) error {
	if account == "" || len(account) > MaxAccountSize {
		return fmt.Errorf("account id of %d bytes, want 1 to %d: %w", len(account), MaxAccountSize, ErrInvalidAccount)
	}
	return nil
}

func checkSalt(salt []byte) error {
	if len(salt) < MinSaltSize || len(salt) > MaxSaltSize {
		return fmt.Errorf("salt of %d bytes, want %d to %d: %w", len(salt), MinSaltSize, MaxSaltSize, ErrInvalidSalt)
	}
	return nil
}
