package esdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
)

// Subscribe calls fn with batches of the events after position after, in
// global order: first stored ones read page by page, then live ones from a
// $all subscription that the server filters for system events. When the
// subscription drops, it reads and subscribes again from the last event
// delivered, after a backoff that doubles up to RetryMax, so no event is
// skipped or delivered twice. It returns ctx.Err() when ctx ends,
// ErrClosed when the store closes, fn's error when fn fails, and an error
// that retrying cannot cure (denied access, an invalid position, an
// undecodable event).
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)() // Close ends the subscription
	delay := s.opts.RetryMin
	for {
		progressed, err := s.follow(ctx, &after, fn)
		var fe *fnError
		switch {
		case errors.As(err, &fe):
			return fe.err
		case parent.Err() != nil:
			return parent.Err()
		case s.closed.Load():
			return eventstore.ErrClosed
		case permanent(err):
			return fmt.Errorf("subscribe after %d: %w", after, err)
		}
		if progressed {
			delay = s.opts.RetryMin
		}
		wait := delay/2 + rand.N(delay)
		s.log.Warn("esdb subscription dropped; resubscribing", "position", after, "retry_in", wait, "err", err)
		if err := s.sleep(parent, wait); err != nil {
			return err
		}
		delay = min(2*delay, s.opts.RetryMax)
	}
}

// fnError carries the error of the subscriber's function.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// follow catches up from *after with ReadAll pages, then follows a live
// subscription, advancing *after past every delivered batch, until an error.
// progressed reports whether it delivered events.
func (s *Store) follow(ctx context.Context, after *uint64, fn func(context.Context, []eventstore.Event) error) (progressed bool, err error) {
	for {
		events, err := s.readAll(ctx, *after, s.opts.BatchSize)
		if err != nil {
			return progressed, err
		}
		if len(events) == 0 {
			break
		}
		if err := fn(ctx, events); err != nil {
			return true, &fnError{err}
		}
		*after = events[len(events)-1].Position
		progressed = true
		if len(events) < s.opts.BatchSize {
			break
		}
	}
	live, err := s.subscribe(ctx, *after)
	if err != nil {
		return progressed, err
	}
	defer live.close()
	for {
		batch, err := live.next(ctx, *after, s.opts.BatchSize)
		if len(batch) > 0 {
			if err := fn(ctx, batch); err != nil {
				return true, &fnError{err}
			}
			*after = batch[len(batch)-1].Position
		}
		if err != nil {
			return true, err
		}
	}
}

// liveSub is a $all subscription whose messages a pump goroutine receives
// into a channel, so that they can be taken in batches.
type liveSub struct {
	sub      *esdb.Subscription
	msgs     chan *esdb.SubscriptionEvent
	stop     context.CancelFunc
	finished chan struct{}
}

// subscribe opens a $all subscription after position after (from the start
// for 0) with the server-side filter for system event types.
func (s *Store) subscribe(ctx context.Context, after uint64) (*liveSub, error) {
	opts := esdb.SubscribeToAllOptions{From: esdb.Start{}, Filter: esdb.ExcludeSystemEventsFilter()}
	if after > 0 {
		opts.From = resumeAt(after)
	}
	subCtx, stop := context.WithCancel(ctx)
	var sub *esdb.Subscription
	err := s.call(ctx, func(_ context.Context, c *esdb.Client) error {
		var err error
		sub, err = c.SubscribeToAll(subCtx, opts) // lives on after this call
		return err
	})
	if err != nil {
		stop()
		return nil, err
	}
	l := &liveSub{sub: sub, msgs: make(chan *esdb.SubscriptionEvent, 64), stop: stop, finished: make(chan struct{})}
	_, release, err := s.acquire()
	if err != nil {
		stop()
		_ = sub.Close()
		return nil, err
	}
	go func() {
		defer release()
		defer close(l.finished)
		for {
			m := sub.Recv()
			select {
			case l.msgs <- m:
			case <-subCtx.Done():
				return
			}
			if m.SubscriptionDropped != nil {
				return
			}
		}
	}()
	return l, nil
}

// close ends the subscription and waits for its pump.
func (l *liveSub) close() {
	l.stop()
	_ = l.sub.Close()
	<-l.finished
}

// next waits for the next live event, then takes whatever else has arrived,
// up to limit events, skipping system events and any event at or before
// after. A dropped subscription ends the batch with the drop's error.
func (l *liveSub) next(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	var batch []eventstore.Event
	add := func(m *esdb.SubscriptionEvent) error {
		switch {
		case m.SubscriptionDropped != nil:
			return fmt.Errorf("subscription dropped: %w", m.SubscriptionDropped.Error)
		case m.EventAppeared == nil:
			return nil // checkpoint, caught up, fell behind
		}
		r := m.EventAppeared.Event
		if r == nil || isSystem(r) || position(r.Position) <= after {
			return nil
		}
		e, err := toEvent(r)
		if err != nil {
			return &decodeError{err}
		}
		batch = append(batch, e)
		after = e.Position
		return nil
	}
	for len(batch) == 0 {
		select {
		case m := <-l.msgs:
			if err := add(m); err != nil {
				return batch, err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for len(batch) < limit {
		select {
		case m := <-l.msgs:
			if err := add(m); err != nil {
				return batch, err
			}
		default:
			return batch, nil
		}
	}
	return batch, nil
}
