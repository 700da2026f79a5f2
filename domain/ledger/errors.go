package ledger

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on with errors.Is. Decide wraps them
// with the operation and ids ("transfer t-1: insufficient funds: ...").
// Validation failures wrap ErrValidation and, for bad amounts, also the
// money sentinel (money.ErrAssetMismatch, money.ErrZero, money.ErrNegative,
// money.ErrOverflow).
var (
	ErrWalletNotFound       = errors.New("wallet not found")
	ErrWalletExists         = errors.New("wallet already exists")
	ErrWalletLocked         = errors.New("wallet locked")
	ErrAccountNotFound      = errors.New("account not found")
	ErrAccountExists        = errors.New("account already exists")
	ErrInsufficientFunds    = errors.New("insufficient funds")
	ErrHoldNotFound         = errors.New("hold not found")
	ErrHoldExists           = errors.New("hold already exists")
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	ErrValidation           = errors.New("validation failed")

	ErrAddressExists      = errors.New("address already assigned to another account")
	ErrUnknownAddress     = errors.New("unknown deposit address")
	ErrDepositNotFound    = errors.New("deposit not found")
	ErrWithdrawalNotFound = errors.New("withdrawal not found")
	ErrWithdrawalExists   = errors.New("withdrawal already exists")
	ErrWithdrawalState    = errors.New("withdrawal not in a state that allows this")
)

// invalid returns op: ErrValidation: detail.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrValidation, fmt.Sprintf(format, args...))
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
