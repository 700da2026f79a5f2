package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/eventstore"
)

// Checkpoint number n is the event at revision n-1 of audit.Stream: the
// signer appends it with that exact expected revision, so the numbers have
// no gaps and no number is ever taken twice.

// ErrUnknownCheckpoint: no checkpoint has the number asked for (or there
// is none yet).
var ErrUnknownCheckpoint = errors.New("unknown checkpoint")

// checkpointEvent is checkpoint c as the event that records it, with an id
// that depends on its number only: a retried append of checkpoint n is
// recognised by every store, and no two events can claim one number.
func checkpointEvent(c audit.Checkpoint) (eventstore.EventData, error) {
	data, err := json.Marshal(c)
	if err != nil {
		return eventstore.EventData{}, err
	}
	key := fmt.Sprintf("checkpoint %d", c.Number)
	return eventstore.EventData{ID: eventstore.DeterministicID(audit.Stream, key, 0), Type: audit.TypeCheckpointSigned,
		Data: data, Metadata: eventstore.Metadata{Actor: SignerActor, IdempotencyKey: key}}, nil
}

// decodeCheckpoint reads the checkpoint event e.
func decodeCheckpoint(e eventstore.Event) (audit.Checkpoint, error) {
	if e.Type != audit.TypeCheckpointSigned {
		return audit.Checkpoint{}, fmt.Errorf("%s: type %q is not a checkpoint", e, e.Type)
	}
	c, err := audit.ParseCheckpoint(e.Data)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("%s: %w", e, err)
	}
	if c.Number != e.Revision+1 {
		return audit.Checkpoint{}, fmt.Errorf("%s: checkpoint %d at revision %d, want number = revision + 1", e, c.Number, e.Revision)
	}
	return c, nil
}

// ListCheckpoints returns up to limit checkpoints from number from on (1:
// the first), oldest first.
func ListCheckpoints(ctx context.Context, store eventstore.Store, from uint64, limit int) ([]audit.Checkpoint, error) {
	events, err := store.ReadStream(ctx, audit.Stream, max(from, 1)-1, limit)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints from %d: %w", from, err)
	}
	out := make([]audit.Checkpoint, len(events))
	for i, e := range events {
		if out[i], err = decodeCheckpoint(e); err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
	}
	return out, nil
}

// GetCheckpoint returns checkpoint number, or the newest for 0;
// ErrUnknownCheckpoint when there is no such checkpoint.
func GetCheckpoint(ctx context.Context, store eventstore.Store, number uint64) (audit.Checkpoint, error) {
	if number == 0 {
		n, err := newestNumber(ctx, store)
		if err != nil {
			return audit.Checkpoint{}, err
		}
		number = n
	}
	list, err := ListCheckpoints(ctx, store, number, 1)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	if len(list) == 0 || number == 0 {
		return audit.Checkpoint{}, fmt.Errorf("checkpoint %d: %w", number, ErrUnknownCheckpoint)
	}
	return list[0], nil
}

// newestNumber returns the number of the newest checkpoint (0: none),
// with O(log n) reads of one event: a gallop to a revision past the end,
// then a binary search.
func newestNumber(ctx context.Context, store eventstore.Store) (uint64, error) {
	exists := func(rev uint64) (bool, error) {
		events, err := store.ReadStream(ctx, audit.Stream, rev, 1)
		if err != nil {
			return false, fmt.Errorf("find the newest checkpoint: %w", err)
		}
		return len(events) > 0, nil
	}
	// Invariant: the newest number n has lo <= n < hi (revision lo-1
	// exists, revision hi-1 does not).
	lo, hi := uint64(0), uint64(1)
	for {
		ok, err := exists(hi - 1)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, 2*hi
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := exists(mid - 1)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}
