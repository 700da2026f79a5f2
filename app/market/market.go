// Package market is the command side of the price streams: it records the
// ticks price feeds report, one stream per pair ("price-BASE-QUOTE"),
// through a batching writer so that a busy pair costs one append per batch
// of ticks, not one per tick.
//
// Deduplication and coalescing are domain rules (prices.Tick): a tick
// already recorded for its (source, pair, time), or one that repeats its
// source's latest price within prices.CoalesceWithin, is accepted and
// dropped, so feeds may deliver at least once.
package market

import (
	"context"
	"fmt"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
)

// Service records price ticks. It is safe for concurrent use.
type Service struct {
	batcher *eventstore.Batcher[*prices.State, prices.Event]
	now     func() time.Time
}

// New returns a service over store that reads the time from now (nil:
// time.Now): a tick may be at most prices.MaxAhead ahead of it. It does no
// I/O; Close stops its writers.
func New(store eventstore.Store, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	// A stream's state is made before its pair is known (the aggregate's
	// Initial has no argument): an empty state has the zero pair, Evolve
	// takes the pair from the first event, and Record decides on
	// prices.NewState(pair) while the stream is empty.
	agg := eventstore.Aggregate[*prices.State, prices.Event]{
		Initial: func() *prices.State { return &prices.State{} },
		Evolve:  prices.Evolve,
	}
	return &Service{batcher: eventstore.NewBatcher(store, eventstore.NewCodecOf(prices.Events()...), agg), now: now}
}

// Close stops the per-pair writers after the ticks already queued.
func (s *Service) Close() { s.batcher.Close() }

// Result is what became of a tick.
type Result struct {
	// Position of the tick's PriceTicked in the global log when it was
	// recorded; otherwise the position of the stream's last event as the
	// tick was decided (0 for an empty stream).
	Position uint64
	// Recorded is false when the tick was dropped: a duplicate of a
	// recorded tick, too old to tell, or coalesced (see prices.State).
	Recorded bool
}

// Record decides cmd on the price stream of pair and appends its
// PriceTicked, batched with the other ticks of the pair waiting. It returns
// when the event is durable. cmd.Now is set from the service's clock.
// Invalid input is an error wrapping prices.ErrValidation.
func (s *Service) Record(ctx context.Context, meta eventstore.Metadata, pair prices.Pair, cmd prices.RecordTick) (Result, error) {
	if pair.IsZero() {
		return Result{}, fmt.Errorf("record tick: %w: no pair", prices.ErrValidation)
	}
	cmd.Now = s.now()
	out, err := s.batcher.Do(ctx, pair.Stream(), meta, func(st *prices.State) ([]prices.Event, error) {
		if st.Pair().IsZero() { // empty stream
			st = prices.NewState(pair)
		}
		return prices.Tick(st, cmd)
	})
	if err != nil {
		return Result{}, fmt.Errorf("record tick %s from %q: %w", pair, cmd.Source, err)
	}
	return Result{Position: out.Result.Position, Recorded: len(out.Events) > 0}, nil
}
