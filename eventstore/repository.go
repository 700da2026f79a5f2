package eventstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Aggregate describes how a stream's events fold into a decider's state.
type Aggregate[S any, E Typed] struct {
	Initial func() S
	Evolve  func(S, E) S
}

// Repository loads a stream into an aggregate's state, lets a decision
// function produce new events and appends them with the expected version,
// retrying the whole cycle on a conflict.
type Repository[S any, E Typed] struct {
	store   Store
	codec   *Codec[E]
	agg     Aggregate[S, E]
	retries int
	backoff time.Duration
	snap    *snapshots[S] // nil: no snapshots
}

// NewRepository returns a repository that retries a conflicted update up to
// 8 times with jittered backoff starting at 1ms.
func NewRepository[S any, E Typed](store Store, codec *Codec[E], agg Aggregate[S, E]) *Repository[S, E] {
	return &Repository[S, E]{store: store, codec: codec, agg: agg, retries: 8, backoff: time.Millisecond}
}

// Loaded is a stream's state as of a revision.
type Loaded[S any] struct {
	State S
	// Next is the revision the stream's next event gets (0: no stream).
	Next uint64
	// Position is the global position of the last event read (0: none).
	Position uint64
}

const loadPage = 4096

// SetSnapshotter makes the repository load from the stream's latest usable
// snapshot plus the events after it, and save a snapshot after an Update
// that crosses a multiple of sn.Every events (in the background, see
// Batcher.SetSnapshotter).
// A Snapshotter without Store, Encode or Decode turns snapshots off. Call
// it before the first use; WaitSnapshots waits for saves in flight.
func (r *Repository[S, E]) SetSnapshotter(sn Snapshotter[S]) { r.snap = newSnapshots(sn) }

// WaitSnapshots returns when no snapshot save is in flight.
func (r *Repository[S, E]) WaitSnapshots() { r.snap.wait() }

// Load folds stream into a fresh state: every event, or with a
// snapshotter, the latest usable snapshot and the events after it.
func (r *Repository[S, E]) Load(ctx context.Context, stream string) (Loaded[S], error) {
	if r.snap != nil {
		l, ok, err := r.snap.load(ctx, r.store, stream)
		if err != nil {
			return l, err
		}
		if ok {
			return r.CatchUp(ctx, stream, l)
		}
	}
	return r.CatchUp(ctx, stream, Loaded[S]{State: r.agg.Initial()})
}

// CatchUp folds the events of stream that come after l into l's state.
func (r *Repository[S, E]) CatchUp(ctx context.Context, stream string, l Loaded[S]) (Loaded[S], error) {
	for {
		events, err := r.store.ReadStream(ctx, stream, l.Next, loadPage)
		if err != nil {
			return l, fmt.Errorf("load %s@%d: %w", stream, l.Next, err)
		}
		for _, e := range events {
			de, err := r.codec.Decode(e)
			if err != nil {
				return l, fmt.Errorf("load %s: %w", stream, err)
			}
			l.State = r.agg.Evolve(l.State, de)
			l.Next = e.Revision + 1
			l.Position = e.Position
		}
		if len(events) < loadPage {
			return l, nil
		}
	}
}

// Update loads stream, calls decide with its state and appends the events it
// returns with the expected version of the state it saw. On ErrConflict it
// reloads and decides again, up to the retry limit. decide must be free of
// side effects: it may run more than once. No events means nothing to append;
// the result then reports the stream's current revision.
func (r *Repository[S, E]) Update(ctx context.Context, stream string, meta Metadata, decide func(S) ([]E, error)) (AppendResult, []E, error) {
	delay := r.backoff
	for attempt := 0; ; attempt++ {
		l, err := r.Load(ctx, stream)
		if err != nil {
			return AppendResult{}, nil, err
		}
		events, err := decide(l.State)
		if err != nil {
			return AppendResult{}, nil, err
		}
		if len(events) == 0 {
			return AppendResult{NextRevision: l.Next, Position: l.Position}, nil, nil
		}
		data, err := r.codec.Encode(meta, events)
		if err != nil {
			return AppendResult{}, nil, err
		}
		res, err := r.store.Append(ctx, stream, ExpectRevision(l.Next), data...)
		if err == nil {
			if r.snap.due(l.Next, res.NextRevision) {
				for _, e := range events {
					l.State = r.agg.Evolve(l.State, e)
				}
				r.snap.save(r.store, stream, Loaded[S]{State: l.State, Next: res.NextRevision, Position: res.Position})
			}
			return res, events, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= r.retries {
			return AppendResult{}, nil, fmt.Errorf("update %s: %w", stream, err)
		}
		jitter := time.Duration(rand.Int64N(int64(delay) + 1))
		select {
		case <-ctx.Done():
			return AppendResult{}, nil, ctx.Err()
		case <-time.After(delay/2 + jitter):
		}
		delay *= 2
	}
}
