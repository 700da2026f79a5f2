package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
)

// Engine errors.
var (
	// ErrStopped: the engine stopped before it reached the awaited position.
	ErrStopped = errors.New("alert engine stopped")
	// ErrRunning: Run was called while the engine was already running.
	ErrRunning = errors.New("alert engine already running")
)

// Actor is the metadata actor of the events the engine appends.
const Actor = "alert-engine"

// Engine fires alerts on price ticks. It is a singleton worker: run one per
// event store (several would only do the same work twice; the decider
// keeps the result correct).
//
// Run follows the event store's global log from position 0 and folds, in
// log order, every alert stream into its state and the alert's watch
// (alerts.Alert.Watch) into an alerts.Index. For each prices.ticked it
// looks up the alerts the tick crosses (O(log n + k)) and executes
// alerts.Trigger with the tick's price, position and time on each of their
// streams through a Repository: load, decide, append with the expected
// version. The decider makes this idempotent: a tick at or before the last
// tick that changed an alert decides nothing, so replaying the log never
// fires an alert twice. Because ticks are taken in log order and only
// alerts already in the index are tried, a tick only ever fires alerts
// created before it.
//
// Start-up cost: every Run rebuilds the index from the whole log, with no
// snapshot: it reads every event in the store (decoding only alert events
// and ticks), and each historical tick that crosses an alert the replay
// still shows as armed costs one load of that alert's stream, whose decision
// then comes out empty (a one-shot alert costs this at most once per start;
// the loaded state replaces the replayed one). Memory holds the state of
// every watched alert; fired one-shot and deleted alerts are dropped. Ticks
// recorded while the engine was stopped are therefore taken in order when
// it starts, and fire what they cross.
//
// Errors on one alert (a store error while triggering it) are logged and
// retried a few times with backoff; then the engine moves on, and the
// alert, still in the index, is tried again on the next tick that crosses
// it. They never stop the engine. Run fails only when its subscription
// does.
type Engine struct {
	store      eventstore.Store
	log        *slog.Logger
	repo       *eventstore.Repository[*alerts.Alert, alerts.Event]
	alertCodec *eventstore.Codec[alerts.Event]
	priceCodec *eventstore.Codec[prices.Event]
	attempts   int           // tries per alert and tick
	backoff    time.Duration // before the second try, doubling

	running atomic.Bool

	mu      sync.Mutex
	pos     uint64        // position processed
	target  uint64        // store head when Run started
	ready   bool          // pos >= target
	stopped error         // set when Run returns, nil while running
	changed chan struct{} // closed and replaced on every change above

	// Owned by Run's goroutine.
	index   *alerts.Index
	watched map[alerts.ID]*tracked
	buf     []alerts.ID
}

// tracked is an alert as the engine knows it.
type tracked struct {
	alert *alerts.Alert
	next  uint64 // revision of the next event of its stream to apply
}

// NewEngine returns an engine over store that logs to logger (nil: no
// logging). It does no I/O.
func NewEngine(store eventstore.Store, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	codec := eventstore.NewCodecOf(alerts.Events()...)
	return &Engine{store: store, log: logger, repo: eventstore.NewRepository(store, codec, aggregate),
		alertCodec: codec, priceCodec: eventstore.NewCodecOf(prices.Events()...),
		attempts: 5, backoff: 50 * time.Millisecond, changed: make(chan struct{})}
}

// Run rebuilds the engine's index from the start of the log and then fires
// alerts on live ticks until ctx is done (it returns nil) or the
// subscription fails (it returns that error). Run may be called again
// after it returned; it starts over from position 0.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	e.update(func() { e.pos, e.target, e.ready, e.stopped = 0, 0, false, nil })
	e.index, e.watched, e.buf = alerts.NewIndex(), map[alerts.ID]*tracked{}, nil
	err := e.run(ctx)
	stopped := ErrStopped
	if err != nil && ctx.Err() == nil {
		stopped = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	e.update(func() { e.stopped = stopped })
	e.index, e.watched = nil, nil
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (e *Engine) run(ctx context.Context) error {
	head, err := e.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("alert engine: %w", err)
	}
	e.update(func() { e.target, e.ready = head, head == 0 })
	e.log.Info("alert engine starting", "head", head)
	err = e.store.Subscribe(ctx, 0, func(ctx context.Context, events []eventstore.Event) error {
		for _, ev := range events {
			if err := e.apply(ctx, ev); err != nil {
				return err
			}
		}
		last := events[len(events)-1].Position
		e.update(func() {
			e.pos = last
			if !e.ready && last >= e.target {
				e.ready = true
				e.log.Info("alert engine ready", "position", last, "watched", e.index.Len())
			}
		})
		return nil
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("alert engine: subscription: %w", err)
	}
	return err
}

// apply takes one event of the log; only a done context stops it.
func (e *Engine) apply(ctx context.Context, ev eventstore.Event) error {
	switch {
	case ev.Type == prices.TypePriceTicked && strings.HasPrefix(ev.Stream, prices.StreamPrefix):
		d, err := e.priceCodec.Decode(ev)
		if err != nil {
			e.log.Error("alert engine: undecodable tick", "stream", ev.Stream, "position", ev.Position, "err", err)
			return nil
		}
		if t, ok := d.(prices.PriceTicked); ok {
			return e.tick(ctx, ev, t)
		}
	case strings.HasPrefix(ev.Stream, alerts.StreamPrefix) && e.alertCodec.Knows(ev.Type):
		d, err := e.alertCodec.Decode(ev)
		if err != nil {
			e.log.Error("alert engine: undecodable alert event", "stream", ev.Stream, "position", ev.Position, "err", err)
			return nil
		}
		e.alertEvent(alerts.ID(strings.TrimPrefix(ev.Stream, alerts.StreamPrefix)), ev, d)
	}
	return nil
}

// alertEvent folds an alert's event into its state and index entry.
func (e *Engine) alertEvent(id alerts.ID, ev eventstore.Event, d alerts.Event) {
	t := e.watched[id]
	if t == nil {
		if _, created := d.(alerts.AlertCreated); !created || ev.Revision != 0 {
			return // an alert no longer watched (fired one-shot or deleted)
		}
		t = &tracked{alert: alerts.New()}
		e.watched[id] = t
	}
	if ev.Revision < t.next {
		return // already in a state the engine loaded while triggering
	}
	alerts.Evolve(t.alert, d)
	t.next = ev.Revision + 1
	e.reindex(id, t)
}

// reindex puts the alert's current watch in the index, or drops the alert
// when it has none.
func (e *Engine) reindex(id alerts.ID, t *tracked) {
	w, ok := t.alert.Watch()
	if !ok {
		e.index.Remove(id)
		delete(e.watched, id)
		return
	}
	if err := e.index.Add(w); err != nil {
		// Only a malformed stored alert gets here.
		e.log.Error("alert engine: alert not watched", "alert", string(id), "err", err)
		e.index.Remove(id)
		delete(e.watched, id)
	}
}

// tick triggers the alerts the tick crosses.
func (e *Engine) tick(ctx context.Context, ev eventstore.Event, t prices.PriceTicked) error {
	ids := e.index.AppendCrossed(e.buf[:0], t.Pair, t.Price)
	e.buf = ids[:0]
	if len(ids) == 0 {
		return nil
	}
	cmd := alerts.Trigger{Price: t.Price, TickPosition: ev.Position, At: t.At, Pair: t.Pair}
	meta := eventstore.Metadata{Actor: Actor, CausationID: ev.ID.String(), CorrelationID: ev.Metadata.CorrelationID,
		IdempotencyKey: "tick-" + strconv.FormatUint(ev.Position, 10)}
	for _, id := range ids {
		if err := e.trigger(ctx, id, cmd, meta); err != nil {
			return err
		}
	}
	return nil
}

// trigger executes cmd on alert id, retrying store errors a few times. It
// returns an error only when ctx is done.
func (e *Engine) trigger(ctx context.Context, id alerts.ID, cmd alerts.Trigger, meta eventstore.Metadata) error {
	delay := e.backoff
	for attempt := 1; ; attempt++ {
		var seen *alerts.Alert
		res, events, err := e.repo.Update(ctx, id.Stream(), meta, func(a *alerts.Alert) ([]alerts.Event, error) {
			seen = a
			return alerts.Decide(a, cmd)
		})
		if err == nil {
			for _, d := range events {
				alerts.Evolve(seen, d)
				e.logged(id, cmd, d)
			}
			if t := e.watched[id]; t != nil && res.NextRevision >= t.next {
				// The stream as loaded and appended to is at least as new
				// as what the log has shown so far: take it.
				t.alert, t.next = seen, res.NextRevision
				e.reindex(id, t)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		final := errors.Is(err, alerts.ErrValidation) || errors.Is(err, alerts.ErrNotFound) || attempt >= e.attempts
		if final {
			e.log.Error("alert engine: trigger failed", "alert", string(id), "tick_position", cmd.TickPosition,
				"attempts", attempt, "err", err)
			return nil
		}
		e.log.Warn("alert engine: trigger failed, retrying", "alert", string(id), "tick_position", cmd.TickPosition,
			"attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

func (e *Engine) logged(id alerts.ID, cmd alerts.Trigger, d alerts.Event) {
	switch d := d.(type) {
	case alerts.AlertTriggered:
		e.log.Info("alert triggered", "alert", string(id), "pair", d.Pair.String(), "price", d.Price.String(),
			"target", d.Target.String(), "seq", d.Seq, "tick_position", cmd.TickPosition)
	case alerts.AlertRearmed:
		e.log.Info("alert rearmed", "alert", string(id), "price", d.Price.String(), "tick_position", cmd.TickPosition)
	}
}

func (e *Engine) update(f func()) {
	e.mu.Lock()
	f()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// Position returns the position of the last event the engine has
// processed: every tick up to it has fired what it crosses, and the
// resulting events are durable.
func (e *Engine) Position() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pos
}

// Ready reports whether the engine is running and has caught up with the
// log as it was when Run started (its index is complete).
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ready && e.stopped == nil && e.running.Load()
}

// WaitFor blocks until the engine has processed every event up to
// position (so a tick at position has fired the alerts it crosses), ctx is
// done (ctx.Err()), or Run has returned (ErrStopped). Called before Run,
// it waits for Run to start.
func (e *Engine) WaitFor(ctx context.Context, position uint64) error {
	for {
		e.mu.Lock()
		pos, stopped, changed := e.pos, e.stopped, e.changed
		e.mu.Unlock()
		if pos >= position && stopped == nil && e.running.Load() {
			return nil
		}
		if stopped != nil {
			return fmt.Errorf("wait for position %d (at %d): %w", position, pos, stopped)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
