package liability

import "errors"

// Errors of Build and Tree.Proof.
var (
	ErrNegativeBalance  = errors.New("negative balance")
	ErrOverflow         = errors.New("sum overflows int64 minor units")
	ErrDuplicateAccount = errors.New("account listed twice")
	ErrInvalidAccount   = errors.New("invalid account id")
	ErrInvalidCoin      = errors.New("invalid coin")
	ErrInvalidSalt      = errors.New("invalid salt")
	ErrUnknownAccount   = errors.New("account not in the tree")
)

// Errors of Verify and ParseProof. Every error they return wraps
// ErrInvalidProof and the more specific sentinel that applies (or, for an
// amount, ErrNegativeBalance or ErrOverflow), so callers may test either.
var (
	ErrInvalidProof      = errors.New("invalid liability proof")
	ErrMalformedProof    = errors.New("malformed proof")
	ErrCoinMismatch      = errors.New("coin differs from the root's")
	ErrRootHashMismatch  = errors.New("computed root hash differs from the published one")
	ErrRootTotalMismatch = errors.New("computed total differs from the published one")
)
