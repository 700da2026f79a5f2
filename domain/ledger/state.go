package ledger

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"time"

	"github.com/coinledger/coinledger/domain/money"
)

// State is one wallet's ledger as of the events evolved into it. It is a
// mutable value behind a pointer: Evolve changes it in place (O(1) per
// event, no copying) and returns it. Decide and the query methods only read
// it. A State is not safe for concurrent use: a wallet's state belongs to
// the one goroutine that writes the wallet's stream.
//
// Remembered idempotency keys are kept for the life of the wallet (one map
// entry per keyed command, roughly 100 bytes plus the key); pruning them
// would need a new event and is left for when a wallet's history makes it
// worthwhile.
type State struct {
	opened    bool
	wallet    Wallet
	accounts  map[string]*Balance
	holds     map[string]*Hold
	processed map[string]processed
	version   uint64
}

type processed struct {
	hash   string
	result Result
}

// Wallet describes the wallet itself.
type Wallet struct {
	Name          string
	Coin          money.Asset
	Permissions   []Permission
	IPAllowlist   []string
	Confirmations int
	Locked        bool
}

// Allows reports whether the wallet itself allows p.
func (w Wallet) Allows(p Permission) bool { return slices.Contains(w.Permissions, p) }

// Balance holds an account's three balances in minor units.
type Balance struct {
	Available int64
	Pending   int64
	Held      int64
}

// Total returns Available+Pending+Held. Decide never lets it overflow.
func (b Balance) Total() int64 { return b.Available + b.Pending + b.Held }

// total returns Available+Pending+Held and whether it fits in an int64.
func total(b Balance) (int64, bool) {
	t, ok := money.AddUnits(b.Available, b.Pending)
	if !ok {
		return 0, false
	}
	return money.AddUnits(t, b.Held)
}

// Hold is an active hold.
type Hold struct {
	ID        string
	Account   string
	Amount    int64
	Reason    string
	ExpiresAt time.Time // zero: never expires
}

// Result is what a command produced, remembered under its idempotency key
// so that a replay can answer like the original: the type and subject id
// of the command's last event and that event's revision in the wallet
// stream (read the event at that revision for its global position).
type Result struct {
	EventType string
	ID        string
	Revision  uint64
}

// NewState returns the state of a wallet stream with no events.
func NewState() *State {
	return &State{
		accounts:  map[string]*Balance{},
		holds:     map[string]*Hold{},
		processed: map[string]processed{},
	}
}

// Evolve applies e to s in place and returns s (a nil s starts from
// NewState). Events are facts: Evolve never fails and trusts that Decide
// produced them.
func Evolve(s *State, e Event) *State {
	if s == nil {
		s = NewState()
	}
	switch e := e.(type) {
	case WalletOpened:
		s.opened = true
		// Decide only emits valid assets; an invalid one leaves the zero Asset.
		asset, _ := money.NewAsset(e.Coin, e.Exponent)
		s.wallet = Wallet{
			Name:          e.Wallet,
			Coin:          asset,
			Permissions:   slices.Clone(e.Permissions),
			IPAllowlist:   slices.Clone(e.IPAllowlist),
			Confirmations: e.Confirmations,
		}
		for _, name := range SystemAccounts() {
			if s.accounts[name] == nil {
				s.accounts[name] = &Balance{}
			}
		}
	case AccountOpened:
		if s.accounts[e.Account] == nil {
			s.accounts[e.Account] = &Balance{}
		}
	case HoldPlaced:
		s.holds[e.ID] = &Hold{ID: e.ID, Account: e.Account, Amount: e.Amount, Reason: e.Reason, ExpiresAt: e.ExpiresAt}
	case HoldReleased:
		delete(s.holds, e.ID)
	case HoldExpired:
		delete(s.holds, e.ID)
	case WalletLocked:
		s.wallet.Locked = true
	case WalletUnlocked:
		s.wallet.Locked = false
	}
	for _, p := range PostingsOf(e) {
		b := s.accounts[p.Account]
		if b == nil {
			b = &Balance{}
			s.accounts[p.Account] = b
		}
		switch p.Bucket {
		case Available:
			b.Available += p.Amount
		case Pending:
			b.Pending += p.Amount
		case Held:
			b.Held += p.Amount
		}
	}
	if k := e.idempotency(); k.Key != "" {
		s.processed[k.Key] = processed{hash: k.RequestHash, result: Result{EventType: e.EventType(), ID: e.subject(), Revision: s.version}}
	}
	s.version++
	return s
}

// Version returns the number of events evolved into s: the revision the
// stream's next event gets. It is the expected version for appending the
// events Decide returns for s.
func (s *State) Version() uint64 { return s.version }

// Opened reports whether the wallet exists.
func (s *State) Opened() bool { return s.opened }

// Wallet returns the wallet's description (a copy).
func (s *State) Wallet() Wallet {
	w := s.wallet
	w.Permissions = slices.Clone(w.Permissions)
	w.IPAllowlist = slices.Clone(w.IPAllowlist)
	return w
}

// Coin returns the wallet's asset (the zero Asset before WalletOpened).
func (s *State) Coin() money.Asset { return s.wallet.Coin }

// Locked reports whether the wallet is locked.
func (s *State) Locked() bool { return s.wallet.Locked }

// Balance returns the balances of a user or system account.
func (s *State) Balance(account string) (Balance, bool) {
	b, ok := s.accounts[account]
	if !ok {
		return Balance{}, false
	}
	return *b, true
}

// Accounts returns the user account names, sorted.
func (s *State) Accounts() []string {
	out := make([]string, 0, len(s.accounts))
	for name := range s.accounts {
		if !IsSystemAccount(name) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Hold returns an active hold.
func (s *State) Hold(id string) (Hold, bool) {
	h, ok := s.holds[id]
	if !ok {
		return Hold{}, false
	}
	return *h, true
}

// Holds returns the active holds sorted by id.
func (s *State) Holds() []Hold {
	out := make([]Hold, 0, len(s.holds))
	for _, h := range s.holds {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ExpiredHolds returns the active holds whose expiry is not after now,
// sorted by id: the ones ExpireHold{Now: now} accepts.
func (s *State) ExpiredHolds(now time.Time) []Hold {
	var out []Hold
	for _, h := range s.holds {
		if !h.ExpiresAt.IsZero() && !h.ExpiresAt.After(now) {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Replay tells whether a command with this idempotency key was already
// handled. Unknown or empty key: (Result{}, false, nil), decide as usual.
// Known key, same request hash: (the original result, true, nil), answer
// with it and append nothing. Known key, other hash: (Result{}, true, an
// error wrapping ErrIdempotencyKeyReused). Only commands that produced
// events are remembered: a command that failed may be retried with its key.
func (s *State) Replay(key, requestHash string) (Result, bool, error) {
	if key == "" {
		return Result{}, false, nil
	}
	p, ok := s.processed[key]
	if !ok {
		return Result{}, false, nil
	}
	if p.hash != requestHash {
		return Result{}, true, fmt.Errorf("idempotency key %q: %w", clip(key), ErrIdempotencyKeyReused)
	}
	return p.result, true, nil
}

// IdempotencyKeys returns how many keys the state remembers.
func (s *State) IdempotencyKeys() int { return len(s.processed) }

// Clone returns a deep copy of s, O(size of the state). Useful to keep a
// known-good state while evolving a batch that may fail to append.
func (s *State) Clone() *State {
	c := &State{
		opened:    s.opened,
		wallet:    s.Wallet(),
		accounts:  make(map[string]*Balance, len(s.accounts)),
		holds:     make(map[string]*Hold, len(s.holds)),
		processed: make(map[string]processed, len(s.processed)),
		version:   s.version,
	}
	for k, v := range s.accounts {
		b := *v
		c.accounts[k] = &b
	}
	for k, v := range s.holds {
		h := *v
		c.holds[k] = &h
	}
	for k, v := range s.processed {
		c.processed[k] = v
	}
	return c
}

// Verify checks the ledger's invariants, in O(accounts + holds): the sum
// of every bucket of every account is zero; user accounts have no negative
// bucket; each account's held balance equals the sum of its active holds;
// every hold is positive and belongs to an existing user account. It
// returns all violations joined, nil when the ledger is sound. Auditing
// tools and tests use it; Decide keeps these true.
func (s *State) Verify() error {
	var errs []error
	sum := new(big.Int)
	held := map[string]int64{}
	for _, h := range s.holds {
		if h.Amount <= 0 {
			errs = append(errs, fmt.Errorf("hold %s: amount %d not positive", h.ID, h.Amount))
		}
		if b := s.accounts[h.Account]; b == nil || IsSystemAccount(h.Account) {
			errs = append(errs, fmt.Errorf("hold %s: account %q is not a user account", h.ID, h.Account))
		}
		var ok bool
		if held[h.Account], ok = money.AddUnits(held[h.Account], h.Amount); !ok {
			errs = append(errs, fmt.Errorf("hold %s: holds of %s overflow", h.ID, h.Account))
		}
	}
	for name, b := range s.accounts {
		for _, v := range []int64{b.Available, b.Pending, b.Held} {
			sum.Add(sum, big.NewInt(v))
		}
		if !IsSystemAccount(name) && (b.Available < 0 || b.Pending < 0 || b.Held < 0) {
			errs = append(errs, fmt.Errorf("account %s: negative balance %+v", name, *b))
		}
		if _, ok := total(*b); !ok {
			errs = append(errs, fmt.Errorf("account %s: total of %+v overflows", name, *b))
		}
		if b.Held != held[name] {
			errs = append(errs, fmt.Errorf("account %s: held %d, holds sum to %d", name, b.Held, held[name]))
		}
	}
	if sum.Sign() != 0 {
		errs = append(errs, fmt.Errorf("balances sum to %s, not zero", sum))
	}
	return errors.Join(errs...)
}
