package ledger

import (
	"errors"
	"fmt"
)

// refusals are the business refusals Refusal records, with their stored
// reasons: outcomes of a well-formed command decided on the wallet's
// state. The reasons are part of the stored format: never rename one.
var refusals = []struct {
	reason string
	err    error
}{
	{"insufficient_funds", ErrInsufficientFunds},
	{"wallet_locked", ErrWalletLocked},
	{"account_not_found", ErrAccountNotFound},
	{"account_exists", ErrAccountExists},
	{"hold_not_found", ErrHoldNotFound},
	{"hold_exists", ErrHoldExists},
	{"address_exists", ErrAddressExists},
	{"unknown_address", ErrUnknownAddress},
	{"deposit_not_found", ErrDepositNotFound},
	{"withdrawal_not_found", ErrWithdrawalNotFound},
	{"withdrawal_exists", ErrWithdrawalExists},
	{"withdrawal_state", ErrWithdrawalState},
}

// Refusal tells whether err, the error Decide returned for c, must be
// remembered as c's answer, and returns the CommandRefused event that
// records it. That is the case when c carries an idempotency key and err
// is a business refusal: insufficient funds, a locked wallet, an account,
// hold, address, deposit or withdrawal that is missing, already exists or
// is in the wrong state. Appended in place of c's events, the event makes
// State.Replay answer the key with the same refusal (a *RefusedError) from
// then on, whatever happens to the wallet later: the first outcome of a
// keyed command, success or refusal, is its outcome forever.
//
// Not recorded, so the key may be retried: validation failures (nothing was
// decided), a reused key, a missing wallet (there is no stream to record it
// in) and the replay of an earlier refusal.
func Refusal(c Command, err error) (CommandRefused, bool) {
	if err == nil || c == nil {
		return CommandRefused{}, false
	}
	idem := c.idempotency()
	var replayed *RefusedError
	if idem.Key == "" || errors.Is(err, ErrValidation) || errors.Is(err, ErrIdempotencyKeyReused) || errors.As(err, &replayed) {
		return CommandRefused{}, false
	}
	for _, r := range refusals {
		if errors.Is(err, r.err) {
			id := SubjectOf(c)
			if checkID("", id) != nil {
				id = "" // not an id a refusal may quote
			}
			return CommandRefused{Command: commandName(c), ID: id, Reason: r.reason, Idempotency: idem}, true
		}
	}
	return CommandRefused{}, false
}

// RefusedError answers a command whose idempotency key was refused before
// (State.Replay after a CommandRefused). It wraps the sentinel of the
// recorded reason, so errors.Is matches it as it matched the original
// refusal (ErrInsufficientFunds, ErrWalletLocked, ...).
type RefusedError struct {
	Command  string // as recorded: "transfer", "place_hold", ...
	ID       string // the refused command's id, if recorded
	Reason   string // the recorded reason
	Revision uint64 // of the CommandRefused event in the wallet stream
}

func (e *RefusedError) Error() string {
	op := e.Command
	if e.ID != "" {
		op += " " + e.ID
	}
	return fmt.Sprintf("%s: %v (refused earlier under this idempotency key)", op, e.Unwrap())
}

// Unwrap returns the sentinel error of the reason.
func (e *RefusedError) Unwrap() error {
	for _, r := range refusals {
		if r.reason == e.Reason {
			return r.err
		}
	}
	return fmt.Errorf("refused: %s", e.Reason)
}

// commandName names a command in a CommandRefused event.
func commandName(c Command) string {
	switch c.(type) {
	case OpenWallet:
		return "open_wallet"
	case OpenAccount:
		return "open_account"
	case Transfer:
		return "transfer"
	case ImportBalance:
		return "import_balance"
	case PlaceHold:
		return "place_hold"
	case ReleaseHold:
		return "release_hold"
	case ExpireHold:
		return "expire_hold"
	case LockWallet:
		return "lock_wallet"
	case UnlockWallet:
		return "unlock_wallet"
	case AssignAddress:
		return "assign_address"
	case ObserveDeposit:
		return "observe_deposit"
	case ReverseDeposit:
		return "reverse_deposit"
	case RequestWithdrawal:
		return "request_withdrawal"
	case BeginBroadcast:
		return "begin_broadcast"
	case AbortBroadcast:
		return "abort_broadcast"
	case RecordBroadcast:
		return "record_broadcast"
	case MarkUnknown:
		return "mark_unknown"
	case FailWithdrawal:
		return "fail_withdrawal"
	case ConfirmWithdrawal:
		return "confirm_withdrawal"
	}
	return "command"
}
