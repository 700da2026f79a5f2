package ledger

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/coinledger/coinledger/domain/money"
)

// Event type names of the deposit lifecycle.
const (
	TypeDepositSeen                 = "ledger.deposit_seen"
	TypeDepositConfirmed            = "ledger.deposit_confirmed"
	TypeDepositConfirmationsChanged = "ledger.deposit_confirmations_changed"
	TypeDepositReversed             = "ledger.deposit_reversed"
)

// DepositTrackingDepth is the number of confirmations after which a
// deposit is no longer tracked: observations of a deposit recorded at this
// depth or deeper decide no events. A wallet whose confirmation threshold
// is higher tracks up to its threshold (State.TrackingDepth).
const DepositTrackingDepth = 100

// Reasons for ReverseDeposit.
const (
	ReasonReorg       = "reorg"
	ReasonDoubleSpend = "double_spend"
)

// DepositStatus is where a deposit is in its lifecycle.
type DepositStatus string

// The deposit statuses. A seen deposit is credited to the account's
// pending balance, a confirmed one to its available balance; a reversed
// one was taken back (it may be seen again, see ObserveDeposit).
const (
	DepositStatusSeen      DepositStatus = "seen"
	DepositStatusConfirmed DepositStatus = "confirmed"
	DepositStatusReversed  DepositStatus = "reversed"
)

// DepositID returns the id of a deposit, "txid:vout": the key of the
// deposit in the ledger and the subject of its events.
func DepositID(txid string, vout uint32) string {
	return txid + ":" + strconv.FormatUint(uint64(vout), 10)
}

// ObserveDeposit reports what the chain backend currently knows about one
// output paying one of the wallet's deposit addresses. It is idempotent by
// txid:vout and state, so notifications, rescans and retries may repeat it
// freely; leave Idempotency empty (a key would turn a later observation
// with more confirmations into a replay).
//
// TxID: 64 lower-case hex digits. Address: assigned with AssignAddress
// (ErrUnknownAddress otherwise: the caller logs and drops the output).
// Amount: positive, of the wallet's coin. Confirmations: 0 (in the
// mempool) or more; bitcoind's negative counts of conflicted transactions
// are not observations but a ReverseDeposit with ReasonDoubleSpend.
// BlockHash: empty at 0 confirmations, otherwise the 64 lower-case hex
// digits of the block holding the transaction.
//
// Decisions, with T the wallet's confirmation threshold and D the
// tracking depth (State.TrackingDepth):
//
//   - first sight: DepositSeen (credit to pending), followed by
//     DepositConfirmed when Confirmations >= T;
//   - seen, Confirmations reach T: DepositConfirmed (pending to available);
//   - seen or confirmed, confirmations or block hash changed:
//     DepositConfirmationsChanged (no money moves; a confirmed deposit that
//     drops below T, e.g. re-mined after a reorg, stays credited);
//   - no change, or the deposit already recorded at D or deeper: no events;
//   - reversed: seen again (DepositSeen, and DepositConfirmed at T) only in
//     a block other than the one it was last recorded in; otherwise (a
//     stale notification) no events;
//   - a different address or amount than recorded for the txid:vout:
//     ErrValidation.
//
// Allowed on a locked wallet (it moves nothing out).
type ObserveDeposit struct {
	TxID          string
	Vout          uint32
	Address       string
	Amount        money.Amount
	Confirmations int
	BlockHash     string
	Idempotency
}

// ReverseDeposit takes back a deposit whose transaction left the chain
// (Reason ReasonReorg) or was double-spent (ReasonDoubleSpend). A seen
// deposit is taken from the account's pending balance. A confirmed one is
// taken from its available balance, at most what is available: the rest
// is the event's Shortfall and is added to the account's debt (State.Debt;
// held funds are not touched). Reversing a reversed deposit decides no
// events; an unknown one is ErrDepositNotFound. Allowed on a locked wallet.
type ReverseDeposit struct {
	TxID   string
	Vout   uint32
	Reason string
	Idempotency
}

// DepositSeen credits a deposit to the account's pending balance from the
// chain account.
type DepositSeen struct {
	ID            string    `json:"id"` // txid:vout
	TxID          string    `json:"txid"`
	Vout          uint32    `json:"vout"`
	Address       string    `json:"address"`
	Account       string    `json:"account"`
	Amount        int64     `json:"amount"`
	Confirmations int       `json:"confirmations"`
	BlockHash     string    `json:"block_hash,omitempty"`
	Postings      []Posting `json:"postings"`
	Idempotency
}

// DepositConfirmed moves a deposit that reached the confirmation threshold
// from the account's pending balance to its available balance.
type DepositConfirmed struct {
	ID            string    `json:"id"`
	TxID          string    `json:"txid"`
	Vout          uint32    `json:"vout"`
	Account       string    `json:"account"`
	Amount        int64     `json:"amount"`
	Confirmations int       `json:"confirmations"`
	BlockHash     string    `json:"block_hash"`
	Postings      []Posting `json:"postings"`
	Idempotency
}

// DepositConfirmationsChanged records a new confirmation count (or block)
// of a tracked deposit that moves no money, so that clients can follow
// every change.
type DepositConfirmationsChanged struct {
	ID            string        `json:"id"`
	TxID          string        `json:"txid"`
	Vout          uint32        `json:"vout"`
	Account       string        `json:"account"`
	Status        DepositStatus `json:"status"` // seen or confirmed, unchanged
	Confirmations int           `json:"confirmations"`
	BlockHash     string        `json:"block_hash,omitempty"`
	Idempotency
}

// DepositReversed takes a deposit back to the chain account: Amount is the
// deposit, Bucket the balance it was taken from (pending when only seen,
// available when confirmed), Shortfall the part the account could not
// cover (added to its debt, State.Debt). The postings always name the
// account, with 0 when nothing at all was available, so the reversal shows
// in the account's entries.
type DepositReversed struct {
	ID        string    `json:"id"`
	TxID      string    `json:"txid"`
	Vout      uint32    `json:"vout"`
	Account   string    `json:"account"`
	Amount    int64     `json:"amount"`
	Reason    string    `json:"reason"`
	Bucket    Bucket    `json:"bucket"`
	Shortfall int64     `json:"shortfall,omitempty"`
	Postings  []Posting `json:"postings"`
	Idempotency
}

func (DepositSeen) EventType() string                 { return TypeDepositSeen }
func (DepositConfirmed) EventType() string            { return TypeDepositConfirmed }
func (DepositConfirmationsChanged) EventType() string { return TypeDepositConfirmationsChanged }
func (DepositReversed) EventType() string             { return TypeDepositReversed }

func (e DepositSeen) subject() string                 { return e.ID }
func (e DepositConfirmed) subject() string            { return e.ID }
func (e DepositConfirmationsChanged) subject() string { return e.ID }
func (e DepositReversed) subject() string             { return e.ID }

func (e DepositSeen) postings() []Posting      { return e.Postings }
func (e DepositConfirmed) postings() []Posting { return e.Postings }
func (e DepositReversed) postings() []Posting  { return e.Postings }

// Deposit is a deposit as the ledger knows it.
type Deposit struct {
	ID            string // txid:vout
	TxID          string
	Vout          uint32
	Address       string
	Account       string
	Amount        int64
	Status        DepositStatus
	Confirmations int    // last recorded
	BlockHash     string // last recorded; empty at 0 confirmations
	Reversals     int    // times reversed
	Reason        string // of the last reversal
	Shortfall     int64  // of the last reversal
}

// Deposit returns the deposit txid:vout.
func (s *State) Deposit(txid string, vout uint32) (Deposit, bool) {
	d, ok := s.deposits[DepositID(txid, vout)]
	if !ok {
		return Deposit{}, false
	}
	return *d, true
}

// TrackedDeposits returns the deposits whose confirmations the chain
// backend should still report (seen or confirmed, recorded below
// TrackingDepth), sorted by id.
func (s *State) TrackedDeposits() []Deposit {
	depth := s.TrackingDepth()
	var out []Deposit
	for _, d := range s.deposits {
		if d.Status != DepositStatusReversed && d.Confirmations < depth {
			out = append(out, *d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// TrackingDepth returns the confirmations up to which deposits are
// tracked: DepositTrackingDepth, or the wallet's threshold if higher.
func (s *State) TrackingDepth() int { return max(DepositTrackingDepth, s.wallet.Confirmations) }

func (s *State) observeDeposit(c ObserveDeposit) ([]Event, error) {
	id := DepositID(c.TxID, c.Vout)
	op := "observe deposit " + DepositID(clip(c.TxID), c.Vout)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if !isHash(c.TxID) {
		return nil, invalid(op, "txid: want 64 lower-case hex digits")
	}
	switch {
	case c.Confirmations < 0:
		return nil, invalid(op, "confirmations %d: negative (a conflicted transaction is reversed, not observed)", c.Confirmations)
	case c.Confirmations == 0 && c.BlockHash != "":
		return nil, invalid(op, "block hash at 0 confirmations")
	case c.Confirmations > 0 && !isHash(c.BlockHash):
		return nil, invalid(op, "block hash: want 64 lower-case hex digits at %d confirmations", c.Confirmations)
	}
	if err := s.checkAmount(op, c.Amount); err != nil {
		return nil, err
	}
	if err := checkAddress(op, c.Address); err != nil {
		return nil, err
	}
	account, ok := s.addresses[c.Address]
	if !ok {
		return nil, fmt.Errorf("%s: %w: %s", op, ErrUnknownAddress, c.Address)
	}
	u := c.Amount.Units()
	d := s.deposits[id]
	if d == nil {
		return s.credit(op, c, id, account)
	}
	if d.Address != c.Address || d.Amount != u {
		return nil, invalid(op, "recorded as %s to %s, observed as %s to %s",
			money.New(s.wallet.Coin, d.Amount), d.Address, c.Amount, clip(c.Address))
	}
	switch {
	case d.Status == DepositStatusReversed:
		if c.Confirmations == 0 || c.BlockHash == d.BlockHash {
			return nil, nil // stale: not seen anywhere new since the reversal
		}
		return s.credit(op, c, id, account)
	case d.Confirmations >= s.TrackingDepth():
		return nil, nil
	case d.Confirmations == c.Confirmations && d.BlockHash == c.BlockHash:
		return nil, nil
	case d.Status == DepositStatusSeen && c.Confirmations >= s.wallet.Confirmations:
		e := s.confirmed(d, c)
		if err := s.checkPostings(op, e.Postings); err != nil {
			return nil, err
		}
		return []Event{e}, nil
	}
	return []Event{DepositConfirmationsChanged{
		ID: id, TxID: c.TxID, Vout: c.Vout, Account: d.Account, Status: d.Status,
		Confirmations: c.Confirmations, BlockHash: c.BlockHash, Idempotency: c.Idempotency,
	}}, nil
}

// credit decides a deposit's (first or renewed) sighting: DepositSeen, and
// DepositConfirmed if it is at the threshold already.
func (s *State) credit(op string, c ObserveDeposit, id, account string) ([]Event, error) {
	u := c.Amount.Units()
	seen := DepositSeen{
		ID: id, TxID: c.TxID, Vout: c.Vout, Address: c.Address, Account: account, Amount: u,
		Confirmations: c.Confirmations, BlockHash: c.BlockHash,
		Postings: []Posting{{ChainAccount, Available, -u}, {account, Pending, u}},
	}
	if err := s.checkPostings(op, seen.Postings); err != nil {
		return nil, err
	}
	if c.Confirmations < s.wallet.Confirmations {
		seen.Idempotency = c.Idempotency
		return []Event{seen}, nil
	}
	conf := s.confirmed(&Deposit{ID: id, TxID: c.TxID, Vout: c.Vout, Account: account, Amount: u}, c)
	// Check both events' postings together: the pending credit of the
	// first one is what the second one moves.
	if err := s.checkPostings(op, append(seen.Postings[:2:2], conf.Postings...)); err != nil {
		return nil, err
	}
	return []Event{seen, conf}, nil
}

func (s *State) confirmed(d *Deposit, c ObserveDeposit) DepositConfirmed {
	return DepositConfirmed{
		ID: d.ID, TxID: d.TxID, Vout: d.Vout, Account: d.Account, Amount: d.Amount,
		Confirmations: c.Confirmations, BlockHash: c.BlockHash,
		Postings:    []Posting{{d.Account, Pending, -d.Amount}, {d.Account, Available, d.Amount}},
		Idempotency: c.Idempotency,
	}
}

func (s *State) reverseDeposit(c ReverseDeposit) ([]Event, error) {
	id := DepositID(c.TxID, c.Vout)
	op := "reverse deposit " + DepositID(clip(c.TxID), c.Vout)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if !isHash(c.TxID) {
		return nil, invalid(op, "txid: want 64 lower-case hex digits")
	}
	if c.Reason != ReasonReorg && c.Reason != ReasonDoubleSpend {
		return nil, invalid(op, "reason %q: want %q or %q", clip(c.Reason), ReasonReorg, ReasonDoubleSpend)
	}
	d := s.deposits[id]
	if d == nil {
		return nil, fmt.Errorf("%s: %w", op, ErrDepositNotFound)
	}
	e := DepositReversed{
		ID: id, TxID: d.TxID, Vout: d.Vout, Account: d.Account, Amount: d.Amount, Reason: c.Reason,
		Idempotency: c.Idempotency,
	}
	switch d.Status {
	case DepositStatusReversed:
		return nil, nil
	case DepositStatusSeen:
		e.Bucket = Pending
		e.Postings = []Posting{{d.Account, Pending, -d.Amount}, {ChainAccount, Available, d.Amount}}
	default:
		b := s.accounts[d.Account]
		take := min(d.Amount, max(b.Available, 0))
		e.Bucket, e.Shortfall = Available, d.Amount-take
		if _, ok := money.AddUnits(s.debts[d.Account], e.Shortfall); !ok {
			return nil, fmt.Errorf("%s: %w: %s debt: %w", op, ErrValidation, d.Account, money.ErrOverflow)
		}
		e.Postings = []Posting{{d.Account, Available, -take}, {ChainAccount, Available, take}}
	}
	if err := s.checkPostings(op, e.Postings); err != nil {
		return nil, err
	}
	return []Event{e}, nil
}

func (s *State) evolveDeposit(e Event) {
	switch e := e.(type) {
	case DepositSeen:
		d := s.deposits[e.ID]
		if d == nil {
			d = &Deposit{ID: e.ID, TxID: e.TxID, Vout: e.Vout, Address: e.Address, Account: e.Account, Amount: e.Amount}
			s.deposits[e.ID] = d
		}
		d.Status, d.Confirmations, d.BlockHash = DepositStatusSeen, e.Confirmations, e.BlockHash
	case DepositConfirmed:
		if d := s.deposits[e.ID]; d != nil {
			d.Status, d.Confirmations, d.BlockHash = DepositStatusConfirmed, e.Confirmations, e.BlockHash
		}
	case DepositConfirmationsChanged:
		if d := s.deposits[e.ID]; d != nil {
			d.Confirmations, d.BlockHash = e.Confirmations, e.BlockHash
		}
	case DepositReversed:
		if d := s.deposits[e.ID]; d != nil {
			d.Status, d.Reason, d.Shortfall = DepositStatusReversed, e.Reason, e.Shortfall
			d.Reversals++
		}
		s.addDebt(e.Account, e.Shortfall)
	}
}

// addDebt records what an account owes after a shortfall.
func (s *State) addDebt(account string, units int64) {
	if units > 0 {
		s.debts[account] += units
	}
}

// isHash reports whether h is 64 lower-case hex digits (a txid or block hash).
func isHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
