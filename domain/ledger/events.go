package ledger

import "time"

// Event type names as stored in the event store. They are part of the
// stored format: never rename one, add a new type and an upcaster instead.
const (
	TypeWalletOpened     = "ledger.wallet_opened"
	TypeAccountOpened    = "ledger.account_opened"
	TypeFundsTransferred = "ledger.funds_transferred"
	TypeBalanceImported  = "ledger.balance_imported"
	TypeHoldPlaced       = "ledger.hold_placed"
	TypeHoldReleased     = "ledger.hold_released"
	TypeHoldExpired      = "ledger.hold_expired"
	TypeWalletLocked     = "ledger.wallet_locked"
	TypeWalletUnlocked   = "ledger.wallet_unlocked"
	TypeCommandRefused   = "ledger.command_refused"
)

// Event is a fact of the wallet ledger. The set is closed: only the value
// types of this package implement it (Evolve does not accept pointers).
type Event interface {
	// EventType returns the stored type name, one of the Type constants.
	EventType() string
	// subject is the id the event is about (transfer, hold, import id;
	// account or wallet name): the ID of the Result a replay returns.
	subject() string
	idempotency() Idempotency
}

// Events returns the zero value of every event type, for registering them
// with a codec and for checking that a codec knows them all.
func Events() []Event {
	return []Event{
		WalletOpened{}, AccountOpened{}, FundsTransferred{}, BalanceImported{},
		HoldPlaced{}, HoldReleased{}, HoldExpired{}, WalletLocked{}, WalletUnlocked{},
		CommandRefused{},
		AddressAssigned{},
		DepositSeen{}, DepositConfirmed{}, DepositConfirmationsChanged{}, DepositReversed{},
		WithdrawalRequested{}, WithdrawalBroadcastStarted{}, WithdrawalBroadcastAborted{}, WithdrawalBroadcast{},
		WithdrawalUnknown{}, WithdrawalFailed{}, WithdrawalConfirmed{},
	}
}

// Idempotency identifies a request that must take effect at most once.
// Commands carry it (set by the caller: Key from the Idempotency-Key header,
// a txid:vout, ...; RequestHash a digest of the request body the caller
// computes), and the last event of a command's events records it so the
// state remembers the key and the result. An empty Key means the command is
// not deduplicated.
type Idempotency struct {
	Key         string `json:"idempotency_key,omitempty"`
	RequestHash string `json:"request_hash,omitempty"`
}

func (i Idempotency) idempotency() Idempotency { return i }

// Bucket is one of an account's three balances.
type Bucket string

// The balance buckets. Available can be spent; Pending is credited but not
// yet spendable (e.g. an unconfirmed deposit); Held is reserved (holds,
// withdrawals in flight).
const (
	Available Bucket = "available"
	Pending   Bucket = "pending"
	Held      Bucket = "held"
)

// Posting changes one bucket of one account by a signed amount of minor
// units. The postings of an event always sum to zero, so the sum of every
// balance of every account (system accounts included) stays zero. A move
// between buckets of one account (a hold) is two postings of that account.
type Posting struct {
	Account string `json:"account"`
	Bucket  Bucket `json:"bucket"`
	Amount  int64  `json:"amount"`
}

// PostingsOf returns the postings of a money movement event, nil for events
// that move no money. Balance projections can apply any ledger event with
// it, including movement events added later.
func PostingsOf(e Event) []Posting {
	if m, ok := e.(mover); ok {
		return m.postings()
	}
	return nil
}

type mover interface{ postings() []Posting }

// Amounts in events are int64 counts of the wallet's minor units (the
// exponent is fixed by WalletOpened); JSON numbers, exact in Go's decoder.

// WalletOpened starts a wallet stream. The wallet's system accounts
// (SystemAccounts) exist from this event on.
type WalletOpened struct {
	Wallet        string       `json:"wallet"`
	Coin          string       `json:"coin"`
	Exponent      int          `json:"exponent"`
	Permissions   []Permission `json:"permissions"`
	IPAllowlist   []string     `json:"ip_allowlist,omitempty"`
	Confirmations int          `json:"confirmations"`
	Idempotency
}

// AccountOpened adds a user account with zero balances.
type AccountOpened struct {
	Account string `json:"account"`
	Idempotency
}

// FundsTransferred moves available funds between two user accounts.
type FundsTransferred struct {
	ID       string    `json:"id"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Amount   int64     `json:"amount"`
	Memo     string    `json:"memo,omitempty"`
	Postings []Posting `json:"postings"`
	Idempotency
}

// BalanceImported credits an opening balance to a user account from the
// system import account (balances moved in from another system).
type BalanceImported struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Amount   int64     `json:"amount"`
	Reason   string    `json:"reason,omitempty"`
	Postings []Posting `json:"postings"`
	Idempotency
}

// HoldPlaced moves funds of an account from available to held.
type HoldPlaced struct {
	ID        string    `json:"id"`
	Account   string    `json:"account"`
	Amount    int64     `json:"amount"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never expires
	Postings  []Posting `json:"postings"`
	Idempotency
}

// HoldReleased returns held funds to available and ends the hold.
type HoldReleased struct {
	ID       string    `json:"id"`
	Account  string    `json:"account"`
	Amount   int64     `json:"amount"`
	Reason   string    `json:"reason,omitempty"`
	Postings []Posting `json:"postings"`
	Idempotency
}

// HoldExpired returns held funds to available because the hold's expiry
// passed, and ends the hold. ExpireHold decides it, and so do commands
// carrying a Now at or after the expiry that need the account's available
// funds (Transfer, PlaceHold, RequestWithdrawal): they expire the due holds
// first, in the same append, so replaying the log never needs a clock.
type HoldExpired struct {
	ID        string    `json:"id"`
	Account   string    `json:"account"`
	Amount    int64     `json:"amount"`
	ExpiresAt time.Time `json:"expires_at"`
	Postings  []Posting `json:"postings"`
	Idempotency
}

// WalletLocked stops transfers, holds, withdrawal requests and broadcasts
// until WalletUnlocked.
type WalletLocked struct {
	Reason string `json:"reason,omitempty"`
	Idempotency
}

// WalletUnlocked ends a lock.
type WalletUnlocked struct {
	Reason string `json:"reason,omitempty"`
	Idempotency
}

// CommandRefused records that a command with an idempotency key was
// refused for a business reason (Refusal), so that the refusal stays the
// answer for that key: a replay is refused the same way even after the
// funds arrived or the wallet was unlocked. It changes no balance.
type CommandRefused struct {
	Command string `json:"command"`      // what was refused: "transfer", "place_hold", ... (CommandName)
	ID      string `json:"id,omitempty"` // the id the command would have created or acted on
	Reason  string `json:"reason"`       // why, one of the Refusal reasons: "insufficient_funds", ...
	Idempotency
}

func (WalletOpened) EventType() string     { return TypeWalletOpened }
func (AccountOpened) EventType() string    { return TypeAccountOpened }
func (FundsTransferred) EventType() string { return TypeFundsTransferred }
func (BalanceImported) EventType() string  { return TypeBalanceImported }
func (HoldPlaced) EventType() string       { return TypeHoldPlaced }
func (HoldReleased) EventType() string     { return TypeHoldReleased }
func (HoldExpired) EventType() string      { return TypeHoldExpired }
func (WalletLocked) EventType() string     { return TypeWalletLocked }
func (WalletUnlocked) EventType() string   { return TypeWalletUnlocked }
func (CommandRefused) EventType() string   { return TypeCommandRefused }

func (e WalletOpened) subject() string     { return e.Wallet }
func (e AccountOpened) subject() string    { return e.Account }
func (e FundsTransferred) subject() string { return e.ID }
func (e BalanceImported) subject() string  { return e.ID }
func (e HoldPlaced) subject() string       { return e.ID }
func (e HoldReleased) subject() string     { return e.ID }
func (e HoldExpired) subject() string      { return e.ID }
func (WalletLocked) subject() string       { return "" }
func (WalletUnlocked) subject() string     { return "" }
func (e CommandRefused) subject() string   { return e.ID }

func (e FundsTransferred) postings() []Posting { return e.Postings }
func (e BalanceImported) postings() []Posting  { return e.Postings }
func (e HoldPlaced) postings() []Posting       { return e.Postings }
func (e HoldReleased) postings() []Posting     { return e.Postings }
func (e HoldExpired) postings() []Posting      { return e.Postings }
