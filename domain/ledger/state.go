package ledger

import (
	"errors"
	"fmt"
	"maps"
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
	expiring  map[string]map[string]struct{} // account → ids of its active holds that expire
	processed map[string]processed           // nil: not remembered (NewFold)
	version   uint64

	addresses    map[string]string   // deposit address → account
	accountAddrs map[string][]string // account → its addresses in assignment order
	deposits     map[string]*Deposit // by txid:vout
	withdrawals  map[string]*Withdrawal
	debts        map[string]int64 // account → debt, only accounts with one
}

type processed struct {
	hash    string
	command string // of a refused command (CommandRefused.Command)
	result  Result
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

// expired reports whether h has ended by expiry at now: it has an expiry
// and now (not zero) is not before it. From then on the hold counts as
// released, whether or not HoldExpired was recorded yet.
func (h Hold) expired(now time.Time) bool {
	return !h.ExpiresAt.IsZero() && !now.IsZero() && !h.ExpiresAt.After(now)
}

// Result is what a command produced, remembered under its idempotency key
// so that a replay can answer like the original: the type and subject id
// of the command's last event and that event's revision in the wallet
// stream (read the event at that revision for its global position).
//
// A command that was refused (CommandRefused) has Refused set to the
// reason; Replay then answers with a *RefusedError.
type Result struct {
	EventType string
	ID        string
	Revision  uint64
	Refused   string
}

// NewState returns the state of a wallet stream with no events.
func NewState() *State {
	return &State{
		accounts:  map[string]*Balance{},
		holds:     map[string]*Hold{},
		expiring:  map[string]map[string]struct{}{},
		processed: map[string]processed{},

		addresses:    map[string]string{},
		accountAddrs: map[string][]string{},
		deposits:     map[string]*Deposit{},
		withdrawals:  map[string]*Withdrawal{},
		debts:        map[string]int64{},
	}
}

// NewFold returns the state of a wallet stream with no events for a
// reader that folds the stream to check or show it and never decides on it
// (an auditor's verifier): Evolve does not remember idempotency keys in it,
// which are most of a long wallet's state and of the cost of folding it.
// Every other part of the state, and Verify, are as for NewState; Decide
// refuses it.
func NewFold() *State {
	s := NewState()
	s.processed = nil
	return s
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
		h := &Hold{ID: e.ID, Account: e.Account, Amount: e.Amount, Reason: e.Reason, ExpiresAt: e.ExpiresAt}
		s.holds[e.ID] = h
		s.listExpiring(h)
	case HoldReleased:
		s.endHold(e.ID)
	case HoldExpired:
		s.endHold(e.ID)
	case WalletLocked:
		s.wallet.Locked = true
	case WalletUnlocked:
		s.wallet.Locked = false
	case AddressAssigned:
		s.evolveAddress(e)
	case DepositSeen, DepositConfirmed, DepositConfirmationsChanged, DepositReversed:
		s.evolveDeposit(e)
	case WithdrawalRequested, WithdrawalBroadcastStarted, WithdrawalBroadcastAborted, WithdrawalBroadcast,
		WithdrawalUnknown, WithdrawalFailed, WithdrawalConfirmed:
		s.evolveWithdrawal(e)
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
	if k := e.idempotency(); k.Key != "" && s.processed != nil {
		p := processed{hash: k.RequestHash, result: Result{EventType: e.EventType(), ID: e.subject(), Revision: s.version}}
		if r, ok := e.(CommandRefused); ok {
			p.command, p.result.Refused = r.Command, r.Reason
		}
		s.processed[k.Key] = p
	}
	s.version++
	return s
}

// listExpiring lists the active hold h as expiring if it expires.
func (s *State) listExpiring(h *Hold) {
	if !h.ExpiresAt.IsZero() {
		if s.expiring[h.Account] == nil {
			s.expiring[h.Account] = map[string]struct{}{}
		}
		s.expiring[h.Account][h.ID] = struct{}{}
	}
}

// endHold forgets an active hold.
func (s *State) endHold(id string) {
	h := s.holds[id]
	if h == nil {
		return
	}
	delete(s.holds, id)
	if ids := s.expiring[h.Account]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(s.expiring, h.Account)
		}
	}
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
// sorted by id: the ones ExpireHold{Now: now} accepts (Hold.expired).
func (s *State) ExpiredHolds(now time.Time) []Hold {
	var out []Hold
	for _, h := range s.holds {
		if h.expired(now) {
			out = append(out, *h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// dueHolds returns the active holds of account expired at now
// (Hold.expired), sorted by id; none when now is zero.
func (s *State) dueHolds(account string, now time.Time) []*Hold {
	var out []*Hold
	for id := range s.expiring[account] {
		if h := s.holds[id]; h.expired(now) {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Replay tells whether a command with this idempotency key was already
// handled. Unknown or empty key: (Result{}, false, nil), decide as usual.
// Known key, same request hash: (the original result, true, nil), answer
// with it and append nothing — or, when the command was refused
// (CommandRefused), (the result, true, a *RefusedError wrapping the
// original refusal's sentinel): the refusal is the answer. Known key, other
// hash: (Result{}, true, an error wrapping ErrIdempotencyKeyReused).
// Commands that failed without a recorded refusal (validation errors, see
// Refusal) are not remembered: they may be retried with their key.
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
	if p.result.Refused != "" {
		return p.result, true, &RefusedError{Command: p.command, ID: p.result.ID, Reason: p.result.Refused, Revision: p.result.Revision}
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
		expiring:  make(map[string]map[string]struct{}, len(s.expiring)),
		processed: make(map[string]processed, len(s.processed)),
		version:   s.version,

		addresses:    maps.Clone(s.addresses),
		accountAddrs: make(map[string][]string, len(s.accountAddrs)),
		deposits:     make(map[string]*Deposit, len(s.deposits)),
		withdrawals:  make(map[string]*Withdrawal, len(s.withdrawals)),
		debts:        maps.Clone(s.debts),
	}
	if s.processed == nil {
		c.processed = nil // a fold stays one
	}
	for k, v := range s.accountAddrs {
		c.accountAddrs[k] = slices.Clone(v)
	}
	for k, v := range s.deposits {
		d := *v
		c.deposits[k] = &d
	}
	for k, v := range s.withdrawals {
		w := *v
		c.withdrawals[k] = &w
	}
	for k, v := range s.accounts {
		b := *v
		c.accounts[k] = &b
	}
	for k, v := range s.holds {
		h := *v
		c.holds[k] = &h
	}
	for k, v := range s.expiring {
		c.expiring[k] = maps.Clone(v)
	}
	for k, v := range s.processed {
		c.processed[k] = v
	}
	return c
}

// Verify checks the ledger's invariants, in O(accounts + holds + deposits
// + withdrawals + addresses): the sum of every bucket of every account is
// zero; user accounts have no negative bucket (available never goes
// negative); debts are positive and owed by user accounts; each account's
// held balance equals the sum of its active holds and of its withdrawals
// still holding funds (requested, broadcasting, unknown), and its pending
// balance the sum of its seen deposits; every hold, deposit and withdrawal
// is positive and belongs to an existing user account; every deposit
// address maps to a user account both ways. It returns all violations
// joined, nil when the ledger is sound. Auditing tools and tests use it;
// Decide keeps these true.
func (s *State) Verify() error {
	var errs []error
	sum := new(big.Int)
	held := map[string]int64{}
	pending := map[string]int64{}
	add := func(m map[string]int64, account string, units int64, what string) {
		if units <= 0 {
			errs = append(errs, fmt.Errorf("%s: amount %d not positive", what, units))
		}
		if b := s.accounts[account]; b == nil || IsSystemAccount(account) {
			errs = append(errs, fmt.Errorf("%s: account %q is not a user account", what, account))
		}
		var ok bool
		if m[account], ok = money.AddUnits(m[account], units); !ok {
			errs = append(errs, fmt.Errorf("%s: sum for %s overflows", what, account))
		}
	}
	expiring := 0
	for _, h := range s.holds {
		add(held, h.Account, h.Amount, "hold "+h.ID)
		_, isExpiring := s.expiring[h.Account][h.ID]
		if isExpiring != !h.ExpiresAt.IsZero() {
			errs = append(errs, fmt.Errorf("hold %s: expires at %v, listed as expiring: %v", h.ID, h.ExpiresAt, isExpiring))
		}
		if isExpiring {
			expiring++
		}
	}
	if n := countNested(s.expiring); n != expiring {
		errs = append(errs, fmt.Errorf("%d holds listed as expiring, %d active holds expire", n, expiring))
	}
	for _, w := range s.withdrawals {
		if w.Status.holding() {
			add(held, w.Account, w.Amount, "withdrawal "+w.ID)
		} else if w.Amount <= 0 {
			errs = append(errs, fmt.Errorf("withdrawal %s: amount %d not positive", w.ID, w.Amount))
		}
	}
	for _, d := range s.deposits {
		if d.Status == DepositStatusSeen {
			add(pending, d.Account, d.Amount, "deposit "+d.ID)
		} else if d.Amount <= 0 {
			errs = append(errs, fmt.Errorf("deposit %s: amount %d not positive", d.ID, d.Amount))
		}
	}
	listed := make(map[string]bool, len(s.addresses))
	for account, addrs := range s.accountAddrs {
		if b := s.accounts[account]; b == nil || IsSystemAccount(account) {
			errs = append(errs, fmt.Errorf("addresses of %q: not a user account", account))
		}
		for _, addr := range addrs {
			if owner, ok := s.addresses[addr]; !ok || owner != account || listed[addr] {
				errs = append(errs, fmt.Errorf("address %s of %s: assigned to %q, listed before: %v", addr, account, owner, listed[addr]))
			}
			listed[addr] = true
		}
	}
	if len(listed) != len(s.addresses) {
		errs = append(errs, fmt.Errorf("%d addresses assigned, %d listed under their accounts", len(s.addresses), len(listed)))
	}
	for name, debt := range s.debts {
		if b := s.accounts[name]; b == nil || IsSystemAccount(name) || debt <= 0 {
			errs = append(errs, fmt.Errorf("account %s: debt %d: want a positive debt of a user account", name, debt))
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
			errs = append(errs, fmt.Errorf("account %s: held %d, holds and withdrawals in flight sum to %d", name, b.Held, held[name]))
		}
		if b.Pending != pending[name] {
			errs = append(errs, fmt.Errorf("account %s: pending %d, seen deposits sum to %d", name, b.Pending, pending[name]))
		}
	}
	if sum.Sign() != 0 {
		errs = append(errs, fmt.Errorf("balances sum to %s, not zero", sum))
	}
	return errors.Join(errs...)
}

func countNested(m map[string]map[string]struct{}) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}

// Debt returns what an account owes the wallet: the parts of reversed
// deposits (DepositReversed.Shortfall) and of network fees
// (WithdrawalBroadcast.FeeShortfall) that its available balance could not
// cover when they were taken. Debt is a record beside the balance, not a
// bucket: postings never move it and Balance does not include it. Zero for
// an account without debt (or no such account).
func (s *State) Debt(account string) int64 { return s.debts[account] }

// Debts returns the accounts that owe the wallet with their debt (a copy;
// empty when nobody does).
func (s *State) Debts() map[string]int64 { return maps.Clone(s.debts) }
