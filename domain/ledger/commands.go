package ledger

import (
	"time"

	"github.com/coinledger/coinledger/domain/money"
)

// Permission is something a wallet allows callers to do. The effective
// permission of a caller is the wallet's set intersected with the caller's
// grant (computed outside this package).
type Permission string

// The wallet permissions.
const (
	PermRead     Permission = "read"
	PermAddress  Permission = "address"
	PermTransfer Permission = "transfer"
	PermWithdraw Permission = "withdraw"
	PermFreeze   Permission = "freeze"
	PermRescan   Permission = "rescan"
	PermLock     Permission = "lock"
	// PermWebhooks lets a caller register webhooks for the wallet's events
	// (with PermRead: a hook shows what reading the wallet shows).
	PermWebhooks Permission = "webhooks"
)

// AllPermissions returns every wallet permission.
func AllPermissions() []Permission {
	return []Permission{PermRead, PermAddress, PermTransfer, PermWithdraw, PermFreeze, PermRescan, PermLock, PermWebhooks}
}

// System accounts exist in every wallet from WalletOpened on. Their names
// start with '@', which user account names cannot. They may go negative:
// @import is the other side of imported opening balances, @chain the other
// side of deposits and withdrawals, @fees pays network fees.
const (
	ImportAccount = "@import"
	ChainAccount  = "@chain"
	FeeAccount    = "@fees"
)

// SystemAccounts returns the system account names.
func SystemAccounts() []string { return []string{ChainAccount, FeeAccount, ImportAccount} }

// IsSystemAccount reports whether name is a system account name.
func IsSystemAccount(name string) bool { return len(name) > 0 && name[0] == '@' }

// DefaultConfirmations is used when OpenWallet.Confirmations is 0.
const DefaultConfirmations = 6

// Command is an instruction to the wallet ledger, handled by Decide. The
// set is closed: the command types of this package.
type Command interface {
	idempotency() Idempotency
}

// OpenWallet creates the wallet. Name: 1-64 of [A-Za-z0-9._-], starting
// with a letter or digit (the stream is "wallet-"+Name). Coin: the wallet's
// one asset. IPAllowlist: addresses or CIDR prefixes, stored normalised
// ("10.1.2.3/8" becomes "10.0.0.0/8"); empty allows every address.
// Confirmations: 1..1000, 0 means DefaultConfirmations.
type OpenWallet struct {
	Name          string
	Coin          money.Asset
	Permissions   []Permission
	IPAllowlist   []string
	Confirmations int
	Idempotency
}

// OpenAccount adds a user account; the name follows the wallet name rules
// and is unique in the wallet (ErrAccountExists).
type OpenAccount struct {
	Name string
	Idempotency
}

// Transfer moves Amount (positive, of the wallet's coin) from one user
// account's available balance to another's. ID (1-128 of [A-Za-z0-9._:-])
// is chosen by the caller, normally from an id generator.
//
// Now, when set, is the current time (the domain has no clock): holds of
// From whose expiry is not after Now count as released, and the transfer
// decides a HoldExpired for each before its FundsTransferred.
type Transfer struct {
	ID     string
	From   string
	To     string
	Amount money.Amount
	Memo   string
	Now    time.Time
	Idempotency
}

// ImportBalance credits an opening balance to a user account from the
// ImportAccount. Allowed on a locked wallet (it moves nothing out).
type ImportBalance struct {
	ID      string
	Account string
	Amount  money.Amount
	Reason  string
	Idempotency
}

// PlaceHold moves Amount of a user account from available to held.
// ExpiresAt zero means the hold never expires; otherwise it must pass
// CheckHoldExpiry at Now, which the caller supplies (the domain has no
// clock). Like Transfer, it first expires the account's holds due at Now.
type PlaceHold struct {
	ID        string
	Account   string
	Amount    money.Amount
	Reason    string
	ExpiresAt time.Time
	Now       time.Time
	Idempotency
}

// ReleaseHold ends an active hold and returns its funds to available.
// Allowed on a locked wallet (funds stay in the account). A hold whose
// expiry is not after Now (when set) has already ended: it cannot be
// released (ErrHoldNotFound), only expired (ExpireHold).
type ReleaseHold struct {
	ID     string
	Reason string
	Now    time.Time
	Idempotency
}

// ExpireHold ends an active hold whose ExpiresAt is not after Now. A
// sweeper finds candidates with State.ExpiredHolds(now).
type ExpireHold struct {
	ID  string
	Now time.Time
	Idempotency
}

// LockWallet locks the wallet; locking a locked wallet decides no events.
type LockWallet struct {
	Reason string
	Idempotency
}

// UnlockWallet unlocks the wallet; unlocking an unlocked wallet decides no
// events.
type UnlockWallet struct {
	Reason string
	Idempotency
}

// IdempotencyOf returns the idempotency key and request hash a command carries.
func IdempotencyOf(c Command) Idempotency { return c.idempotency() }

// SubjectOf returns the id a command creates or acts on: the wallet or
// account name, the transfer, import or hold id; "" for lock and unlock.
func SubjectOf(c Command) string {
	switch c := c.(type) {
	case OpenWallet:
		return c.Name
	case OpenAccount:
		return c.Name
	case Transfer:
		return c.ID
	case ImportBalance:
		return c.ID
	case PlaceHold:
		return c.ID
	case ReleaseHold:
		return c.ID
	case ExpireHold:
		return c.ID
	case RequestWithdrawal:
		return c.ID
	case BeginBroadcast:
		return c.ID
	case AbortBroadcast:
		return c.ID
	case RecordBroadcast:
		return c.ID
	case MarkUnknown:
		return c.ID
	case FailWithdrawal:
		return c.ID
	case ConfirmWithdrawal:
		return c.ID
	case ObserveDeposit:
		return DepositID(c.TxID, c.Vout)
	case ReverseDeposit:
		return DepositID(c.TxID, c.Vout)
	case AssignAddress:
		return c.Address
	}
	return ""
}
