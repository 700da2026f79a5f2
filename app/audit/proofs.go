package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/eventstore"
)

// ErrUnknownAccount: the account is not in the checkpoint's liability
// trees (it did not exist at the checkpoint, or it is a system account).
var ErrUnknownAccount = errors.New("account not in the checkpoint's liabilities")

// ErrLogMismatch: the log folded up to a checkpoint's position does not
// give what the checkpoint signed (the log or the checkpoint was changed).
var ErrLogMismatch = errors.New("the log does not match the checkpoint")

// Prover answers liability proofs: the inclusion proof of one account in
// the liability tree of a checkpoint.
//
// The trees are not stored: they are a function of the log up to the
// checkpoint's position and of the salt secret. The newest checkpoint the
// signer made is answered from the trees the signer built for it; any
// other is made again by folding the log up to its position with a Tally
// (a read of the log up to there, once: the newest such rebuild is kept).
// What is built is checked against the signed roots before any proof
// leaves.
type Prover struct {
	store  eventstore.Store
	keys   func() (*Keyring, error)
	signer *Signer // nil: no signer's trees to reuse

	mu     sync.Mutex // serialises rebuilds
	cached *built
}

// NewProver returns a prover over store whose salts derive from the
// secret of keys, reusing signer's trees (signer may be nil). It does no
// I/O.
func NewProver(store eventstore.Store, keys func() (*Keyring, error), signer *Signer) *Prover {
	return &Prover{store: store, keys: keys, signer: signer}
}

// Proof returns checkpoint number (0: the newest) and the inclusion proof
// of account (LiabilityAccount(wallet, account)) in its coin's tree:
// ErrUnknownCheckpoint, ErrUnknownAccount, or ErrLogMismatch when the
// log no longer folds to the signed roots.
func (p *Prover) Proof(ctx context.Context, number uint64, wallet, account string) (audit.Checkpoint, liability.Proof, error) {
	c, err := GetCheckpoint(ctx, p.store, number)
	if err != nil {
		return audit.Checkpoint{}, liability.Proof{}, err
	}
	trees, err := p.trees(ctx, c)
	if err != nil {
		return audit.Checkpoint{}, liability.Proof{}, err
	}
	id := LiabilityAccount(wallet, account)
	for _, t := range trees {
		proof, err := t.Proof(id)
		if err == nil {
			return c, proof, nil
		}
		if !errors.Is(err, liability.ErrUnknownAccount) {
			return audit.Checkpoint{}, liability.Proof{}, err
		}
	}
	return audit.Checkpoint{}, liability.Proof{}, fmt.Errorf("liability proof of %s at checkpoint %d: %w", id, c.Number, ErrUnknownAccount)
}

// trees returns the liability trees of c, checked against its roots.
func (p *Prover) trees(ctx context.Context, c audit.Checkpoint) (map[string]*liability.Tree, error) {
	if p.signer != nil {
		if t := p.signer.trees(c); t != nil {
			return t, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cached != nil && p.cached.c.Number == c.Number {
		return p.cached.trees, nil
	}
	keys, err := p.keys()
	if err != nil {
		return nil, fmt.Errorf("liability trees of checkpoint %d: keys: %w", c.Number, err)
	}
	tally, err := FoldTo(ctx, p.store, c.Position)
	if err != nil {
		return nil, fmt.Errorf("liability trees of checkpoint %d: %w", c.Number, err)
	}
	st, trees, err := tally.Statement(c.Number, keys.SaltSecret())
	if err != nil {
		return nil, err
	}
	if st.Position != c.Position || st.Events != c.Events || st.GlobalHead != c.GlobalHead ||
		!slices.Equal(st.Liabilities, c.Liabilities) {
		return nil, fmt.Errorf("liability trees of checkpoint %d: %w", c.Number, ErrLogMismatch)
	}
	p.cached = &built{c: c, trees: trees}
	return trees, nil
}

// FoldTo folds the log from its start up to position into a new Tally.
func FoldTo(ctx context.Context, store eventstore.Store, position uint64) (*Tally, error) {
	t := NewTally()
	for after := uint64(0); after < position; {
		events, err := store.ReadAll(ctx, after, 4096)
		if err != nil {
			return nil, fmt.Errorf("fold the log to %d: %w", position, err)
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if e.Position > position {
				return t, nil
			}
			if _, _, _, err := t.Add(e); err != nil {
				return nil, fmt.Errorf("fold the log to %d: %w", position, err)
			}
			after = e.Position
		}
	}
	return t, nil
}
