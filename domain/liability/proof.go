package liability

import (
	"fmt"
)

// Side tells on which side of the path a sibling sits.
type Side uint8

const (
	// Left: the sibling is the left child, the path's node the right one.
	Left Side = iota + 1
	// Right: the sibling is the right child, the path's node the left one.
	Right
)

// String returns "left" or "right" (the JSON spelling).
func (s Side) String() string {
	switch s {
	case Left:
		return "left"
	case Right:
		return "right"
	}
	return fmt.Sprintf("Side(%d)", uint8(s))
}

// Step is one level of a proof's path: the sibling of the path's node.
type Step struct {
	Side Side
	Hash Hash
	Sum  int64
}

// Proof shows that an account's balance is counted in a tree's root. It
// holds the account's salt but not its id, which the verifier supplies.
type Proof struct {
	Coin    string
	Salt    []byte
	Balance int64
	// Path runs from the leaf's sibling up to the root's children.
	Path []Step
}

// Verify checks that p proves account's balance p.Balance is counted in
// root: it recomputes the leaf from account and p.Salt, folds the path and
// compares hash and total with root's. Every error wraps ErrInvalidProof
// and names the failing part: the coin (ErrCoinMismatch), a field out of
// range (ErrMalformedProof, ErrNegativeBalance), a sum that overflows
// (ErrOverflow), or the result (ErrRootHashMismatch, ErrRootTotalMismatch).
func Verify(p Proof, root Root, account string) error {
	if err := verify(p, root, account); err != nil {
		return fmt.Errorf("verify liability proof: %w", err)
	}
	return nil
}

func verify(p Proof, root Root, account string) error {
	if p.Coin != root.Coin {
		return invalid(ErrCoinMismatch, "proof for %q, root for %q", p.Coin, root.Coin)
	}
	if err := p.check(); err != nil {
		return err
	}
	if err := checkAccount(account); err != nil {
		return invalid(ErrMalformedProof, "%v", err)
	}
	if root.Total < 0 {
		return invalid(ErrNegativeBalance, "root total %d", root.Total)
	}
	h, sum := leafHash(commitment(p.Coin, account, p.Salt), p.Balance), p.Balance
	for i, s := range p.Path {
		next, ok := addSum(sum, s.Sum)
		if !ok {
			return invalid(ErrOverflow, "step %d: %d + sibling sum %d", i, sum, s.Sum)
		}
		if s.Side == Left {
			h = nodeHash(s.Hash, s.Sum, h, sum)
		} else {
			h = nodeHash(h, sum, s.Hash, s.Sum)
		}
		sum = next
	}
	if h != root.Hash {
		return invalid(ErrRootHashMismatch, "computed %s (total %d), published %s", h, sum, root.Hash)
	}
	if sum != root.Total {
		return invalid(ErrRootTotalMismatch, "computed %d, published %d", sum, root.Total)
	}
	return nil
}

// check refuses a proof with a field out of range.
func (p Proof) check() error {
	if err := checkCoin(p.Coin); err != nil {
		return invalid(ErrMalformedProof, "%v", err)
	}
	if err := checkSalt(p.Salt); err != nil {
		return invalid(ErrMalformedProof, "%v", err)
	}
	if p.Balance < 0 {
		return invalid(ErrNegativeBalance, "balance %d", p.Balance)
	}
	if len(p.Path) > MaxDepth {
		return invalid(ErrMalformedProof, "path of %d steps, at most %d", len(p.Path), MaxDepth)
	}
	for i, s := range p.Path {
		if s.Side != Left && s.Side != Right {
			return invalid(ErrMalformedProof, "step %d: side %d", i, s.Side)
		}
		if s.Sum < 0 {
			return invalid(ErrNegativeBalance, "step %d: sibling sum %d", i, s.Sum)
		}
	}
	return nil
}

// invalid returns an error wrapping ErrInvalidProof and kind.
func invalid(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalidProof, kind, fmt.Sprintf(format, args...))
}
