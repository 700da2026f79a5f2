package alerting

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// Actor is the metadata actor of the events the engine appends.
const Actor = "alert-engine"

// EngineName is the engine's name as a follower (status, metrics,
// snapshots).
const EngineName = "alert_engine"

// engineVersion is the version of the engine's fold and snapshot format:
// bump it when either changes, and the engine's stored snapshot is dropped
// (it rebuilds from the start of the log).
const engineVersion = 1

// Engine fires alerts on price ticks. It is a projections.Follower with
// side effects (it appends to alert streams): a projections.Runner feeds it
// the log in order, from the position of its latest snapshot, and keeps
// that snapshot. Run one per event store (several would only do the same
// work twice; the decider keeps the result correct).
//
// The engine folds every alert stream into its state and the alert's watch
// (alerts.Alert.Watch) into an alerts.Index. For each prices.ticked it
// looks up the alerts the tick crosses (O(log n + k)) and executes
// alerts.Trigger with the tick's price, position and time on each of their
// streams through a Repository: load, decide, append with the expected
// version. The decider makes this idempotent: a tick at or before the last
// tick that changed an alert decides nothing, so handling ticks again (a
// restart from a snapshot older than the last tick handled, a retried
// tick) never fires an alert twice. Because ticks are taken in log order
// and only alerts already in the index are tried, a tick only ever fires
// alerts created before it. Ticks recorded while the engine was stopped
// are taken in order when it starts, and fire what they cross.
//
// Memory holds the state of every watched alert; fired one-shot and
// deleted alerts are dropped. A snapshot is that state as compact JSON,
// in index order, so a restored engine tries crossed alerts in the same
// order as one that never stopped.
//
// A store error while triggering an alert fails Handle with
// projections.ErrTransient (the Runner retries the tick with backoff, and
// parks the engine if it keeps failing), except for errors no retry can
// mend (a closed or failed store, an event the store refuses): those park
// it at once. An alert the decider refuses to trigger (ErrValidation,
// ErrNotFound) is logged and passed over.
type Engine struct {
	log        *slog.Logger
	repo       *eventstore.Repository[*alerts.Alert, alerts.Event]
	alertCodec *eventstore.Codec[alerts.Event]
	priceCodec *eventstore.Codec[prices.Event]

	// State, owned by the goroutine that calls Handle, Snapshot and
	// Restore.
	index   *alerts.Index
	watched map[alerts.ID]*tracked
	seq     uint64 // last tracked.seq handed out
	buf     []alerts.ID
}

var (
	_ projections.Follower      = (*Engine)(nil)
	_ projections.Selective     = (*Engine)(nil)
	_ projections.SideEffecting = (*Engine)(nil)
)

// tracked is an alert as the engine knows it.
type tracked struct {
	alert *alerts.Alert
	next  uint64 // revision of the next event of its stream to apply
	seq   uint64 // when its index entry was last put: the index's order
}

// NewEngine returns an engine with an empty state over store that logs to
// logger (nil: no logging). It does no I/O.
func NewEngine(store eventstore.Store, logger *slog.Logger) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	codec := eventstore.NewCodecOf(alerts.Events()...)
	return &Engine{log: logger, repo: eventstore.NewRepository(store, codec, aggregate),
		alertCodec: codec, priceCodec: eventstore.NewCodecOf(prices.Events()...),
		index: alerts.NewIndex(), watched: map[alerts.ID]*tracked{}}
}

// Name is the engine's follower name, EngineName.
func (e *Engine) Name() string { return EngineName }

// Version is the version of the engine's fold and snapshot format.
func (e *Engine) Version() int { return engineVersion }

// SideEffects marks the engine as a follower that appends to the log.
func (e *Engine) SideEffects() {}

// Wants reports whether ev is a price tick or an alert event: the engine
// ignores everything else.
func (e *Engine) Wants(ev eventstore.Event) bool { return isTick(ev) || e.isAlert(ev) }

func isTick(ev eventstore.Event) bool {
	return ev.Type == prices.TypePriceTicked && strings.HasPrefix(ev.Stream, prices.StreamPrefix)
}

func (e *Engine) isAlert(ev eventstore.Event) bool {
	return strings.HasPrefix(ev.Stream, alerts.StreamPrefix) && e.alertCodec.Knows(ev.Type)
}

// Handle takes one event of the log: it folds an alert event into the
// state and triggers the alerts a tick crosses. An event it cannot decode
// is logged and passed over. On failure (see Engine) the state is as it
// was, so the Runner may hand it the same tick again.
func (e *Engine) Handle(ctx context.Context, ev eventstore.Event) error {
	switch {
	case isTick(ev):
		d, err := e.priceCodec.Decode(ev)
		if err != nil {
			e.log.Error("alert engine: undecodable tick", "stream", ev.Stream, "position", ev.Position, "err", err)
			return nil
		}
		if t, ok := d.(prices.PriceTicked); ok {
			return e.tick(ctx, ev, t)
		}
	case e.isAlert(ev):
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
		return
	}
	e.seq++
	t.seq = e.seq
}

// loaded is an alert's stream as trigger loaded (and appended to) it.
type loaded struct {
	id    alerts.ID
	alert *alerts.Alert
	next  uint64
}

// tick triggers the alerts the tick crosses. The state takes the alerts'
// new states only once every one of them has been triggered.
func (e *Engine) tick(ctx context.Context, ev eventstore.Event, t prices.PriceTicked) error {
	ids := e.index.AppendCrossed(e.buf[:0], t.Pair, t.Price)
	e.buf = ids[:0]
	if len(ids) == 0 {
		return nil
	}
	cmd := alerts.Trigger{Price: t.Price, TickPosition: ev.Position, At: t.At, Pair: t.Pair}
	meta := eventstore.Metadata{Actor: Actor, CausationID: ev.ID.String(), CorrelationID: ev.Metadata.CorrelationID,
		IdempotencyKey: "tick-" + strconv.FormatUint(ev.Position, 10)}
	done := make([]loaded, 0, len(ids))
	for _, id := range ids {
		l, ok, err := e.trigger(ctx, id, cmd, meta)
		if err != nil {
			return err
		}
		if ok {
			done = append(done, l)
		}
	}
	for _, l := range done {
		if t := e.watched[l.id]; t != nil && l.next >= t.next {
			// The stream as loaded and appended to is at least as new
			// as what the log has shown so far: take it.
			t.alert, t.next = l.alert, l.next
			e.reindex(l.id, t)
		}
	}
	return nil
}

// trigger executes cmd on alert id and returns the stream's state after it
// (ok false: the decider refused, logged). It changes nothing in the
// engine's state.
func (e *Engine) trigger(ctx context.Context, id alerts.ID, cmd alerts.Trigger, meta eventstore.Metadata) (loaded, bool, error) {
	var seen *alerts.Alert
	res, events, err := e.repo.Update(ctx, id.Stream(), meta, func(a *alerts.Alert) ([]alerts.Event, error) {
		seen = a
		return alerts.Decide(a, cmd)
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return loaded{}, false, ctx.Err()
	case errors.Is(err, alerts.ErrValidation) || errors.Is(err, alerts.ErrNotFound):
		e.log.Error("alert engine: trigger refused", "alert", string(id), "tick_position", cmd.TickPosition, "err", err)
		return loaded{}, false, nil
	case errors.Is(err, eventstore.ErrInvalidEvent) || errors.Is(err, eventstore.ErrClosed) ||
		errors.Is(err, eventstore.ErrStoreFailed):
		return loaded{}, false, fmt.Errorf("trigger alert %s at tick %d: %w", id, cmd.TickPosition, err)
	default:
		return loaded{}, false, fmt.Errorf("%w: trigger alert %s at tick %d: %w", projections.ErrTransient, id,
			cmd.TickPosition, err)
	}
	for _, d := range events {
		alerts.Evolve(seen, d)
		e.logged(id, cmd, d)
	}
	return loaded{id: id, alert: seen, next: res.NextRevision}, true, nil
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

// snapshot is the engine's state as stored: the watched alerts in the
// order of their index entries.
type snapshot struct {
	Alerts []snapshotAlert `json:"alerts"`
}

// snapshotAlert is a watched alert's state and the revision of the next
// event of its stream to fold. Deleted alerts are never watched: no
// DeletedAt.
type snapshotAlert struct {
	Next        uint64           `json:"next"`
	ID          alerts.ID        `json:"id"`
	Owner       string           `json:"owner"`
	Pair        prices.Pair      `json:"pair"`
	Direction   alerts.Direction `json:"dir"`
	Target      prices.Price     `json:"target"`
	Channels    alerts.Channels  `json:"ch"`
	Rearm       *alerts.Rearm    `json:"rearm,omitempty"`
	CreatedAt   time.Time        `json:"created"`
	Status      alerts.Status    `json:"status"`
	Fired       int              `json:"fired,omitempty"`
	LastPrice   prices.Price     `json:"last_price"`
	TriggeredAt time.Time        `json:"triggered"`
	LastTick    uint64           `json:"last_tick,omitempty"`
}

// Snapshot encodes the engine's state.
func (e *Engine) Snapshot() ([]byte, error) {
	ts := make([]*tracked, 0, len(e.watched))
	for _, t := range e.watched {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b *tracked) int { return cmp.Compare(a.seq, b.seq) })
	s := snapshot{Alerts: make([]snapshotAlert, len(ts))}
	for i, t := range ts {
		a := t.alert
		s.Alerts[i] = snapshotAlert{Next: t.next, ID: a.ID, Owner: a.Owner, Pair: a.Pair, Direction: a.Direction,
			Target: a.Target, Channels: a.Channels, Rearm: a.Rearm, CreatedAt: a.CreatedAt, Status: a.Status,
			Fired: a.Fired, LastPrice: a.LastPrice, TriggeredAt: a.TriggeredAt, LastTick: a.LastTick}
	}
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("alert engine: snapshot: %w", err)
	}
	return data, nil
}

// Restore replaces the engine's state with a snapshot's, or with the
// empty state for nil. On error the state is unchanged.
func (e *Engine) Restore(data []byte) error {
	index, watched := alerts.NewIndex(), map[alerts.ID]*tracked{}
	var s snapshot
	if data != nil {
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("alert engine: restore: %w", err)
		}
	}
	entries := make([]alerts.Entry, 0, len(s.Alerts))
	for i, sa := range s.Alerts {
		a := &alerts.Alert{ID: sa.ID, Owner: sa.Owner, Pair: sa.Pair, Direction: sa.Direction, Target: sa.Target,
			Channels: sa.Channels, Rearm: sa.Rearm, CreatedAt: sa.CreatedAt, Status: sa.Status, Fired: sa.Fired,
			LastPrice: sa.LastPrice, TriggeredAt: sa.TriggeredAt, LastTick: sa.LastTick}
		w, ok := a.Watch()
		if !ok || w.ID == "" {
			return fmt.Errorf("alert engine: restore: alert %q is not watched", sa.ID)
		}
		if _, dup := watched[sa.ID]; dup {
			return fmt.Errorf("alert engine: restore: alert %q twice", sa.ID)
		}
		watched[sa.ID] = &tracked{alert: a, next: sa.Next, seq: uint64(i) + 1}
		entries = append(entries, w)
	}
	if err := index.Rebuild(entries); err != nil {
		return fmt.Errorf("alert engine: restore: %w", err)
	}
	e.index, e.watched, e.seq, e.buf = index, watched, uint64(len(entries)), nil
	return nil
}
