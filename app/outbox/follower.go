package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// FollowerName is the name the notifier's follower has in the runner (its
// checkpoint, snapshot, status and metrics).
const FollowerName = "outbox"

// followerVersion is the version of the follower's state and snapshot
// encoding; changing either means a new version (the Runner then drops the
// old snapshot and the follower reads the log from the start).
const followerVersion = 1

// Follower is the part of the notifier that follows the log, as a
// projections.Follower: for every firing of an alert (alerts.triggered) it
// queues one delivery per channel, and it keeps the deliveries that are
// pending (queued or redelivery requested, neither delivered nor given up
// yet) with when each is due. The notifier's Run sends those.
//
// Its state is small: per pending delivery its id, the revision its stream
// has reached and when it is due, and the ids of deliveries queued whose
// notify.queued it has not read yet. Settled deliveries leave it.
//
// Handle appends (the notify.queued of a firing), so the follower has side
// effects: a replay appends nothing twice (the append expects no stream and
// carries a deterministic event id), and the sender re-reads a delivery's
// stream before each send, so a replay from an older snapshot, whose
// deliveries look pending until their later events come by, sends nothing
// that was delivered or given up.
type Follower struct {
	n *Notifier

	mu       sync.Mutex
	pending  map[string]pending  // by delivery id
	awaiting map[string]struct{} // queued, notify.queued not read yet
	changed  chan struct{}       // closed and replaced when the state changes
}

// pending is a pending delivery as the follower knows it.
type pending struct {
	next uint64    // revision of its stream's next event
	due  time.Time // when the next attempt is due; zero: now
}

var (
	_ projections.Follower      = (*Follower)(nil)
	_ projections.Selective     = (*Follower)(nil)
	_ projections.SideEffecting = (*Follower)(nil)
)

func newFollower(n *Notifier) *Follower {
	return &Follower{n: n, pending: map[string]pending{}, awaiting: map[string]struct{}{}, changed: make(chan struct{})}
}

// Name is FollowerName.
func (f *Follower) Name() string { return FollowerName }

// Version is the version of the follower's state.
func (f *Follower) Version() int { return followerVersion }

// SideEffects marks the follower as one that appends: an operator may skip
// an event that parks it.
func (f *Follower) SideEffects() {}

// Wants reports whether e may change the follower's state: an alert's
// firing or an event of a delivery stream.
func (f *Follower) Wants(e eventstore.Event) bool {
	return isFiring(e) || f.isDelivery(e)
}

func isFiring(e eventstore.Event) bool {
	return e.Type == alerts.TypeAlertTriggered && strings.HasPrefix(e.Stream, alerts.StreamPrefix)
}

func (f *Follower) isDelivery(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, StreamPrefix) && f.n.codec.Knows(e.Type)
}

// Handle folds e into the state. A firing queues its deliveries: an append
// the store refuses for now fails with an error wrapping
// projections.ErrTransient (the Runner calls Handle again), one it can
// never take (closed, failed, invalid) with a plain error; an event that
// cannot be decoded fails too. On failure the state is unchanged; a firing
// retried after some of its deliveries were queued finds those streams
// existing and takes them as queued.
func (f *Follower) Handle(ctx context.Context, e eventstore.Event) error {
	switch {
	case isFiring(e):
		return f.firing(ctx, e)
	case f.isDelivery(e):
		return f.delivery(e)
	}
	return nil
}

// firing queues the deliveries of a firing that the follower does not know.
func (f *Follower) firing(ctx context.Context, e eventstore.Event) error {
	d, err := f.n.alertCodec.Decode(e)
	if err != nil {
		return fmt.Errorf("decode %s@%d: %w", e.Stream, e.Revision, err)
	}
	t, ok := d.(alerts.AlertTriggered)
	if !ok {
		return nil
	}
	var queued []string
	for _, ch := range channels {
		to := t.Channels.Email
		if ch == ChannelWebhook {
			to = t.Channels.Webhook
		}
		if to == "" {
			continue
		}
		id := DeliveryID(t.ID, t.Seq, ch)
		if f.knows(id) {
			continue
		}
		q := Queued{DeliveryID: id, AlertID: t.ID, Seq: t.Seq, Channel: ch, To: to, Owner: t.Owner, Pair: t.Pair,
			Direction: t.Direction, Target: t.Target, Price: t.Price, TickPosition: t.TickPosition, TriggeredAt: t.At,
			TriggerPosition: e.Position, At: f.n.now()}
		meta := eventstore.Metadata{Actor: Actor, CausationID: e.ID.String(), CorrelationID: e.Metadata.CorrelationID,
			IdempotencyKey: id + "#queued"}
		if err := f.queue(ctx, q, meta); err != nil {
			return err
		}
		queued = append(queued, id)
	}
	if len(queued) > 0 {
		f.update(func() {
			for _, id := range queued {
				f.awaiting[id] = struct{}{}
			}
		})
	}
	return nil
}

// knows reports whether delivery id is pending or awaited.
func (f *Follower) knows(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, pending := f.pending[id]
	_, awaited := f.awaiting[id]
	return pending || awaited
}

// Queue appends q, the first event of its delivery's stream, for another
// follower that turns events into deliveries (integrators' webhooks): the
// notifier's Follower reads it from the log and Run sends it. A stream
// that exists already was queued before: that is success. An append the
// store refuses for now fails with an error wrapping
// projections.ErrTransient, one it can never take with a plain error (as
// Handle's).
func (n *Notifier) Queue(ctx context.Context, q Queued, meta eventstore.Metadata) error {
	return n.follower.queue(ctx, q, meta)
}

// queue appends q, the first event of its delivery's stream. A stream that
// exists already was queued before (its notify.queued follows the firing
// in the log): that is success.
func (f *Follower) queue(ctx context.Context, q Queued, meta eventstore.Metadata) error {
	data, err := f.n.codec.Encode(meta, []Event{q})
	if err != nil {
		return fmt.Errorf("queue delivery %s: %w", q.DeliveryID, err)
	}
	_, err = f.n.cfg.Store.Append(ctx, stream(q.DeliveryID), eventstore.NoStream, data...)
	switch {
	case err == nil, errors.Is(err, eventstore.ErrConflict):
		return nil
	case ctx.Err() != nil, errors.Is(err, eventstore.ErrInvalidEvent), errors.Is(err, eventstore.ErrClosed),
		errors.Is(err, eventstore.ErrStoreFailed):
		return fmt.Errorf("queue delivery %s: %w", q.DeliveryID, err)
	}
	return fmt.Errorf("queue delivery %s: %w: %w", q.DeliveryID, projections.ErrTransient, err)
}

// delivery folds an event of a delivery stream, with the delivery's own
// rules (evolve) on the little the follower keeps of it.
func (f *Follower) delivery(e eventstore.Event) error {
	ev, err := f.n.codec.Decode(e)
	if err != nil {
		return fmt.Errorf("decode %s@%d: %w", e.Stream, e.Revision, err)
	}
	id := strings.TrimPrefix(e.Stream, StreamPrefix)
	f.update(func() {
		p, known := f.pending[id]
		if !known {
			switch ev.(type) {
			case Queued:
				delete(f.awaiting, id)
			case RedeliveryRequested: // a settled delivery made pending again
			default:
				return // an event of a settled delivery
			}
		}
		d := Delivery{Status: StatusPending, NextAttempt: p.due}
		evolve(&d, ev)
		if d.Status != StatusPending {
			delete(f.pending, id)
			return
		}
		f.pending[id] = pending{next: e.Revision + 1, due: d.NextAttempt}
	})
	return nil
}

// update changes the state under the lock and wakes its watchers.
func (f *Follower) update(change func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change()
	close(f.changed)
	f.changed = make(chan struct{})
}

// Snapshot encodes the state (see encodeState).
func (f *Follower) Snapshot() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return encodeState(f.pending, f.awaiting), nil
}

// Restore replaces the state with a snapshot's, or with the empty state for
// nil. A snapshot that does not decode leaves the state as it was.
func (f *Follower) Restore(data []byte) error {
	p, a, err := decodeState(data)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	f.update(func() { f.pending, f.awaiting = p, a })
	return nil
}

// busy returns how many deliveries are pending or awaited, and a channel
// closed at the next change.
func (f *Follower) busy() (int, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending) + len(f.awaiting), f.changed
}
