package ledger

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/coinledger/coinledger/domain/money"
)

// Event type names of the withdrawal lifecycle.
const (
	TypeWithdrawalRequested        = "ledger.withdrawal_requested"
	TypeWithdrawalBroadcastStarted = "ledger.withdrawal_broadcast_started"
	TypeWithdrawalBroadcastAborted = "ledger.withdrawal_broadcast_aborted"
	TypeWithdrawalBroadcast        = "ledger.withdrawal_broadcast"
	TypeWithdrawalUnknown          = "ledger.withdrawal_unknown"
	TypeWithdrawalFailed           = "ledger.withdrawal_failed"
	TypeWithdrawalConfirmed        = "ledger.withdrawal_confirmed"
)

// WithdrawalStatus is where a withdrawal is in its lifecycle.
type WithdrawalStatus string

// The withdrawal statuses and their transitions:
//
//	requested    --BeginBroadcast-->  broadcasting
//	broadcasting --AbortBroadcast-->  requested
//	requested, broadcasting  --MarkUnknown-->  unknown
//	requested, broadcasting, unknown  --RecordBroadcast-->  broadcast
//	requested, broadcasting, unknown  --FailWithdrawal-->   failed
//	broadcast    --ConfirmWithdrawal-->  confirmed
//
// Funds are held while requested, broadcasting or unknown; they leave the
// account at broadcast and return to available at failed. Repeating the
// transition that led to the current status decides no events (the same
// txid and fee for RecordBroadcast); every other transition is
// ErrWithdrawalState.
const (
	WithdrawalStatusRequested    WithdrawalStatus = "requested"
	WithdrawalStatusBroadcasting WithdrawalStatus = "broadcasting"
	WithdrawalStatusUnknown      WithdrawalStatus = "unknown"
	WithdrawalStatusBroadcast    WithdrawalStatus = "broadcast"
	WithdrawalStatusFailed       WithdrawalStatus = "failed"
	WithdrawalStatusConfirmed    WithdrawalStatus = "confirmed"
)

// holding reports whether a withdrawal in status st has its amount held.
func (st WithdrawalStatus) holding() bool {
	return st == WithdrawalStatusRequested || st == WithdrawalStatusBroadcasting || st == WithdrawalStatusUnknown
}

// RequestWithdrawal moves Amount (positive, of the wallet's coin) of a user
// account from available to held, to be sent to Address (1-128 of
// [A-Za-z0-9._:-]). ID (1-128 of [A-Za-z0-9._:-]) is unique for the life
// of the wallet (ErrWithdrawalExists). Refused on a locked wallet. Whether
// the caller may withdraw (PermWithdraw) is checked before, by the caller.
//
// The network fee is not held: see RecordBroadcast. With SubtractFee the
// fee is paid out of Amount (the recipient gets Amount minus the fee, as
// bitcoind's subtractfeefromamount); without it the recipient gets Amount
// and the account pays the fee from its available balance.
//
// Now, when set, is the current time: like Transfer, the request first
// expires the account's holds due at Now.
type RequestWithdrawal struct {
	ID          string
	Account     string
	Address     string
	Amount      money.Amount
	SubtractFee bool
	Now         time.Time
	Idempotency
}

// BeginBroadcast records, before the transaction is handed to the node,
// that a requested withdrawal is being broadcast. A broadcaster that finds
// a withdrawal still broadcasting (it stopped before RecordBroadcast or
// FailWithdrawal) must not send it again: it marks it unknown for an
// operator. Refused on a locked wallet (ErrWalletLocked): this is where
// funds start to leave. Optional: the other transitions accept a
// requested withdrawal too.
type BeginBroadcast struct {
	ID string
	Idempotency
}

// AbortBroadcast returns a broadcasting withdrawal to requested when the
// broadcaster knows the node never received the send (it could not
// connect): the withdrawal will be sent again later. Never use it when the
// request may have reached the node: that is MarkUnknown.
type AbortBroadcast struct {
	ID     string
	Reason string
	Idempotency
}

// RecordBroadcast records that the withdrawal's transaction TxID (64
// lower-case hex digits) reached the node, paying Fee (zero or positive,
// of the wallet's coin) to the network. From requested, broadcasting or
// unknown (an operator resolving it). Allowed on a locked wallet: the
// transaction is out, the ledger records the fact.
//
// The held amount goes to the chain account. The fee goes to the fee
// account: out of the amount with SubtractFee (Fee must then be less than
// the amount), otherwise from the account's available balance. The
// broadcaster should check, before it broadcasts, that the account can
// pay the fee (State.Balance): RecordBroadcast never refuses a broadcast
// for lack of funds, it takes what is available and records the rest as
// the event's FeeShortfall and adds it to the account's debt (State.Debt).
type RecordBroadcast struct {
	ID   string
	TxID string
	Fee  money.Amount
	Idempotency
}

// MarkUnknown records that a broadcast may have reached the node but its
// outcome was not recorded (a timeout, a crash). The funds stay held and
// the withdrawal is never sent again automatically: an operator resolves
// it with RecordBroadcast (it is on the chain) or FailWithdrawal (it is
// not). From requested or broadcasting.
type MarkUnknown struct {
	ID     string
	Reason string
	Idempotency
}

// FailWithdrawal ends a withdrawal that did not and will not reach the
// chain, and returns its held funds to available. From requested,
// broadcasting or unknown. Allowed on a locked wallet.
type FailWithdrawal struct {
	ID     string
	Reason string
	Idempotency
}

// ConfirmWithdrawal records that a broadcast withdrawal's transaction has
// Confirmations (1 or more) confirmations; the caller decides when (usually
// at the wallet's threshold). It ends the withdrawal.
type ConfirmWithdrawal struct {
	ID            string
	Confirmations int
	Idempotency
}

// WithdrawalRequested holds a withdrawal's amount (available to held).
type WithdrawalRequested struct {
	ID          string    `json:"id"`
	Account     string    `json:"account"`
	Address     string    `json:"address"`
	Amount      int64     `json:"amount"`
	SubtractFee bool      `json:"subtract_fee,omitempty"`
	Postings    []Posting `json:"postings"`
	Idempotency
}

// WithdrawalBroadcastStarted marks a withdrawal as being handed to the node.
type WithdrawalBroadcastStarted struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Idempotency
}

// WithdrawalBroadcastAborted returns a withdrawal to requested: the node
// never received its send.
type WithdrawalBroadcastAborted struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Reason  string `json:"reason,omitempty"`
	Idempotency
}

// WithdrawalBroadcast records the withdrawal's transaction. Postings: the
// held amount to the chain account (less the fee with SubtractFee) and the
// fee to the fee account; FeeShortfall is the part of the fee the
// account's available balance could not pay (added to its debt).
type WithdrawalBroadcast struct {
	ID           string    `json:"id"`
	Account      string    `json:"account"`
	Address      string    `json:"address"`
	Amount       int64     `json:"amount"`
	TxID         string    `json:"txid"`
	Fee          int64     `json:"fee"`
	SubtractFee  bool      `json:"subtract_fee,omitempty"`
	FeeShortfall int64     `json:"fee_shortfall,omitempty"`
	Postings     []Posting `json:"postings"`
	Idempotency
}

// WithdrawalUnknown marks a withdrawal whose broadcast outcome is unknown;
// its funds stay held until an operator resolves it.
type WithdrawalUnknown struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
	Reason  string `json:"reason,omitempty"`
	Idempotency
}

// WithdrawalFailed ends a withdrawal that never reached the chain and
// returns its amount from held to available.
type WithdrawalFailed struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Amount   int64     `json:"amount"`
	Reason   string    `json:"reason,omitempty"`
	Postings []Posting `json:"postings"`
	Idempotency
}

// WithdrawalConfirmed ends a broadcast withdrawal whose transaction is
// confirmed.
type WithdrawalConfirmed struct {
	ID            string `json:"id"`
	Account       string `json:"account"`
	TxID          string `json:"txid"`
	Confirmations int    `json:"confirmations"`
	Idempotency
}

func (WithdrawalRequested) EventType() string        { return TypeWithdrawalRequested }
func (WithdrawalBroadcastStarted) EventType() string { return TypeWithdrawalBroadcastStarted }
func (WithdrawalBroadcastAborted) EventType() string { return TypeWithdrawalBroadcastAborted }
func (WithdrawalBroadcast) EventType() string        { return TypeWithdrawalBroadcast }
func (WithdrawalUnknown) EventType() string          { return TypeWithdrawalUnknown }
func (WithdrawalFailed) EventType() string           { return TypeWithdrawalFailed }
func (WithdrawalConfirmed) EventType() string        { return TypeWithdrawalConfirmed }

func (e WithdrawalRequested) subject() string        { return e.ID }
func (e WithdrawalBroadcastStarted) subject() string { return e.ID }
func (e WithdrawalBroadcastAborted) subject() string { return e.ID }
func (e WithdrawalBroadcast) subject() string        { return e.ID }
func (e WithdrawalUnknown) subject() string          { return e.ID }
func (e WithdrawalFailed) subject() string           { return e.ID }
func (e WithdrawalConfirmed) subject() string        { return e.ID }

func (e WithdrawalRequested) postings() []Posting { return e.Postings }
func (e WithdrawalBroadcast) postings() []Posting { return e.Postings }
func (e WithdrawalFailed) postings() []Posting    { return e.Postings }

// Withdrawal is a withdrawal as the ledger knows it.
type Withdrawal struct {
	ID            string
	Account       string
	Address       string
	Amount        int64
	SubtractFee   bool
	Status        WithdrawalStatus
	TxID          string // from broadcast on
	Fee           int64
	FeeShortfall  int64
	Confirmations int
	Reason        string // of the last MarkUnknown or FailWithdrawal
	Revision      uint64 // of WithdrawalRequested: the request order
}

// Withdrawal returns a withdrawal by id.
func (s *State) Withdrawal(id string) (Withdrawal, bool) {
	w, ok := s.withdrawals[id]
	if !ok {
		return Withdrawal{}, false
	}
	return *w, true
}

// PendingBroadcasts returns the requested withdrawals, oldest request
// first: the ones a broadcaster sends (BeginBroadcast, then broadcast,
// then RecordBroadcast or FailWithdrawal). None while the wallet is locked.
func (s *State) PendingBroadcasts() []Withdrawal {
	if s.wallet.Locked {
		return nil
	}
	return s.WithdrawalsByStatus(WithdrawalStatusRequested)
}

// WithdrawalsByStatus returns the withdrawals in status st, oldest request
// first (e.g. broadcasting ones a restarted broadcaster marks unknown, or
// unknown ones waiting for an operator).
func (s *State) WithdrawalsByStatus(st WithdrawalStatus) []Withdrawal {
	var out []Withdrawal
	for _, w := range s.withdrawals {
		if w.Status == st {
			out = append(out, *w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision < out[j].Revision })
	return out
}

func (s *State) requestWithdrawal(c RequestWithdrawal) ([]Event, error) {
	op := "withdrawal " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkID(op, c.ID); err != nil {
		return nil, err
	}
	if err := s.checkAmount(op, c.Amount); err != nil {
		return nil, err
	}
	if err := checkAddress(op, c.Address); err != nil {
		return nil, err
	}
	expired, ps, err := s.reserve(op, c.Account, c.Amount, c.Now, func() error {
		if _, ok := s.withdrawals[c.ID]; ok {
			return fmt.Errorf("%s: %w", op, ErrWithdrawalExists)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	u := c.Amount.Units()
	return append(expired, WithdrawalRequested{
		ID: c.ID, Account: c.Account, Address: c.Address, Amount: u, SubtractFee: c.SubtractFee,
		Postings: ps, Idempotency: c.Idempotency,
	}), nil
}

// withdrawal returns the withdrawal id and checks that its status is one
// of from (nil, nil: it is in status done, the command is a repeat).
func (s *State) withdrawal(op, id string, done WithdrawalStatus, from ...WithdrawalStatus) (*Withdrawal, error) {
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	w := s.withdrawals[id]
	if w == nil {
		return nil, fmt.Errorf("%s: %w", op, ErrWithdrawalNotFound)
	}
	if w.Status == done {
		return nil, nil
	}
	if !slices.Contains(from, w.Status) {
		return nil, fmt.Errorf("%s: %w: is %s, want %v", op, ErrWithdrawalState, w.Status, from)
	}
	return w, nil
}

func (s *State) beginBroadcast(c BeginBroadcast) ([]Event, error) {
	op := "begin broadcast " + clip(c.ID)
	w, err := s.withdrawal(op, c.ID, WithdrawalStatusBroadcasting, WithdrawalStatusRequested)
	if w == nil {
		return nil, err
	}
	if s.wallet.Locked {
		return nil, fmt.Errorf("%s: %w", op, ErrWalletLocked)
	}
	return []Event{WithdrawalBroadcastStarted{ID: w.ID, Account: w.Account, Idempotency: c.Idempotency}}, nil
}

func (s *State) abortBroadcast(c AbortBroadcast) ([]Event, error) {
	op := "abort broadcast " + clip(c.ID)
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	w, err := s.withdrawal(op, c.ID, WithdrawalStatusRequested, WithdrawalStatusBroadcasting)
	if w == nil {
		return nil, err
	}
	return []Event{WithdrawalBroadcastAborted{ID: w.ID, Account: w.Account, Reason: c.Reason, Idempotency: c.Idempotency}}, nil
}

func (s *State) recordBroadcast(c RecordBroadcast) ([]Event, error) {
	op := "record broadcast " + clip(c.ID)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if !isHash(c.TxID) {
		return nil, invalid(op, "txid: want 64 lower-case hex digits")
	}
	if c.Fee.Asset() != s.wallet.Coin {
		return nil, fmt.Errorf("%s: %w: fee: %w (wallet holds %s, fee is %s)", op, ErrValidation, money.ErrAssetMismatch, s.wallet.Coin, c.Fee.Asset())
	}
	if c.Fee.Sign() < 0 {
		return nil, fmt.Errorf("%s: %w: fee %s: %w", op, ErrValidation, c.Fee, money.ErrNegative)
	}
	fee := c.Fee.Units()
	if w := s.withdrawals[c.ID]; w != nil && (w.Status == WithdrawalStatusBroadcast || w.Status == WithdrawalStatusConfirmed) {
		if w.TxID == c.TxID && w.Fee == fee {
			return nil, nil // a repeat
		}
		return nil, fmt.Errorf("%s: %w: is %s with txid %s fee %d", op, ErrWithdrawalState, w.Status, w.TxID, w.Fee)
	}
	w, err := s.withdrawal(op, c.ID, "",
		WithdrawalStatusRequested, WithdrawalStatusBroadcasting, WithdrawalStatusUnknown)
	if w == nil {
		return nil, err
	}
	e := WithdrawalBroadcast{
		ID: w.ID, Account: w.Account, Address: w.Address, Amount: w.Amount, TxID: c.TxID, Fee: fee,
		SubtractFee: w.SubtractFee, Idempotency: c.Idempotency,
	}
	if w.SubtractFee {
		if fee >= w.Amount {
			return nil, invalid(op, "fee %s is not less than the amount %s it is subtracted from", c.Fee, money.New(s.wallet.Coin, w.Amount))
		}
		e.Postings = []Posting{{w.Account, Held, -w.Amount}, {ChainAccount, Available, w.Amount - fee}}
		if fee > 0 {
			e.Postings = append(e.Postings, Posting{FeeAccount, Available, fee})
		}
	} else {
		e.Postings = []Posting{{w.Account, Held, -w.Amount}, {ChainAccount, Available, w.Amount}}
		b := s.accounts[w.Account]
		paid := min(fee, max(b.Available, 0))
		e.FeeShortfall = fee - paid
		if _, ok := money.AddUnits(s.debts[w.Account], e.FeeShortfall); !ok {
			return nil, fmt.Errorf("%s: %w: %s debt: %w", op, ErrValidation, w.Account, money.ErrOverflow)
		}
		if paid > 0 {
			e.Postings = append(e.Postings, Posting{w.Account, Available, -paid}, Posting{FeeAccount, Available, paid})
		}
	}
	if err := s.checkPostings(op, e.Postings); err != nil {
		return nil, err
	}
	return []Event{e}, nil
}

func (s *State) markUnknown(c MarkUnknown) ([]Event, error) {
	op := "mark withdrawal unknown " + clip(c.ID)
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	w, err := s.withdrawal(op, c.ID, WithdrawalStatusUnknown, WithdrawalStatusRequested, WithdrawalStatusBroadcasting)
	if w == nil {
		return nil, err
	}
	return []Event{WithdrawalUnknown{ID: w.ID, Account: w.Account, Amount: w.Amount, Reason: c.Reason, Idempotency: c.Idempotency}}, nil
}

func (s *State) failWithdrawal(c FailWithdrawal) ([]Event, error) {
	op := "fail withdrawal " + clip(c.ID)
	if err := checkText(op, "reason", c.Reason); err != nil {
		return nil, err
	}
	w, err := s.withdrawal(op, c.ID, WithdrawalStatusFailed,
		WithdrawalStatusRequested, WithdrawalStatusBroadcasting, WithdrawalStatusUnknown)
	if w == nil {
		return nil, err
	}
	ps := []Posting{{w.Account, Held, -w.Amount}, {w.Account, Available, w.Amount}}
	if err := s.checkPostings(op, ps); err != nil {
		return nil, err
	}
	return []Event{WithdrawalFailed{ID: w.ID, Account: w.Account, Amount: w.Amount, Reason: c.Reason, Postings: ps, Idempotency: c.Idempotency}}, nil
}

func (s *State) confirmWithdrawal(c ConfirmWithdrawal) ([]Event, error) {
	op := "confirm withdrawal " + clip(c.ID)
	if c.Confirmations < 1 {
		return nil, invalid(op, "confirmations %d: want 1 or more", c.Confirmations)
	}
	w, err := s.withdrawal(op, c.ID, WithdrawalStatusConfirmed, WithdrawalStatusBroadcast)
	if w == nil {
		return nil, err
	}
	return []Event{WithdrawalConfirmed{ID: w.ID, Account: w.Account, TxID: w.TxID, Confirmations: c.Confirmations, Idempotency: c.Idempotency}}, nil
}

func (s *State) evolveWithdrawal(e Event) {
	if r, ok := e.(WithdrawalRequested); ok {
		s.withdrawals[r.ID] = &Withdrawal{
			ID: r.ID, Account: r.Account, Address: r.Address, Amount: r.Amount, SubtractFee: r.SubtractFee,
			Status: WithdrawalStatusRequested, Revision: s.version,
		}
		return
	}
	var w *Withdrawal
	switch e := e.(type) {
	case WithdrawalBroadcastStarted:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status = WithdrawalStatusBroadcasting
		}
	case WithdrawalBroadcastAborted:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status, w.Reason = WithdrawalStatusRequested, e.Reason
		}
	case WithdrawalBroadcast:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status, w.TxID, w.Fee, w.FeeShortfall = WithdrawalStatusBroadcast, e.TxID, e.Fee, e.FeeShortfall
		}
		s.addDebt(e.Account, e.FeeShortfall)
	case WithdrawalUnknown:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status, w.Reason = WithdrawalStatusUnknown, e.Reason
		}
	case WithdrawalFailed:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status, w.Reason = WithdrawalStatusFailed, e.Reason
		}
	case WithdrawalConfirmed:
		if w = s.withdrawals[e.ID]; w != nil {
			w.Status, w.Confirmations = WithdrawalStatusConfirmed, e.Confirmations
		}
	}
}
