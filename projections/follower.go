package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coinledger/coinledger/eventstore"
)

// Follower is a consumer of the log that keeps its state in memory (an
// index, a scheduler, a side-effect worker) instead of in read-model tables.
// Follow makes one a Projection, so the Runner follows it like any other:
// from a durable position, with retries, parking, status and metrics.
//
// The Runner keeps a snapshot of a follower's state with its position in
// the read-model database (written every Options.SnapshotEvery events, when
// the log is quiet, and when Run returns) and at start restores the latest
// one and reads only the events after it. A snapshot of another Version is
// dropped: the follower starts empty and reads the log from the start.
//
// Handle folds one event into the state. It is called from one goroutine,
// in global order, never twice for one event within a process; after a
// restart from a snapshot older than the last event handled, the events
// since are handled again, so side effects must be idempotent (a
// deterministic event id, an expected version). When Handle fails it must
// leave the state as it was: the Runner calls it again for the same event
// (transient errors, see ErrTransient, with backoff) or parks the follower.
//
// Snapshot encodes the state as of the last event handled; Restore replaces
// the state with a snapshot's, or with the empty state for nil. Both are
// called from Handle's goroutine, never concurrently with it; readers of the
// state on other goroutines need the follower's own lock.
//
// A Follower may also be Selective (Wants), and a SideEffecting one.
type Follower interface {
	Name() string
	Version() int
	Handle(ctx context.Context, e eventstore.Event) error
	Snapshot() ([]byte, error)
	Restore(data []byte) error
}

// SideEffecting is an optional capability of a Follower that acts on the
// world (sends, appends) rather than only indexing: an operator may skip an
// event that parks it (Runner.Skip), which a read model could never afford.
type SideEffecting interface {
	SideEffects()
}

// Stream and event type the Runner records a skipped event with, one
// stream per follower.
const (
	// SkipStreamPrefix + follower name is the stream of its skips.
	SkipStreamPrefix = "follower-"
	// TypeEventSkipped: an operator skipped the event at Position for the
	// follower.
	TypeEventSkipped = "follower.event_skipped"
)

// EventSkipped is the data of TypeEventSkipped.
type EventSkipped struct {
	Follower string `json:"follower"`
	Position uint64 `json:"position"`
	EventID  string `json:"event_id"`
	Stream   string `json:"stream"`
	Type     string `json:"type"`
	Error    string `json:"error"`
}

// Follow returns f as a Projection for NewRunner.
func Follow(f Follower) Projection {
	return &memory{f: f, skips: map[uint64]bool{}}
}

// memory adapts a Follower to the Projection the Runner drives. Events at
// or before pos are already in f's state (a batch retried after its
// transaction failed is not handled twice).
type memory struct {
	f     Follower
	mu    sync.Mutex      // guards skips, which Skip writes
	skips map[uint64]bool // positions an operator skipped
	pos   uint64          // last event folded into f (or skipped)
	snap  uint64          // position of the last snapshot committed
	saved uint64          // position of the snapshot written in the transaction under way; 0 if none
	every uint64          // snapshot spacing, set by the Runner
	// shared: the database is shared with other runners (instances), whose
	// copies of the follower write the same snapshot row: a snapshot
	// replaces only an older one (or one of another version).
	shared bool
}

func (m *memory) Name() string { return m.f.Name() }

// Migrations: a follower has no tables; its snapshot lives in the Runner's.
func (m *memory) Migrations(Dialect) []string { return nil }

// Wants delegates to a Selective follower; others want every event.
func (m *memory) Wants(e eventstore.Event) bool {
	if s, ok := m.f.(Selective); ok {
		return s.Wants(e)
	}
	return true
}

func (m *memory) sideEffects() bool {
	_, ok := m.f.(SideEffecting)
	return ok
}

func (m *memory) skipped(pos uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.skips[pos]
}

func (m *memory) skip(pos uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.skips[pos] = true
}

// Apply hands f the events it has not handled yet and writes a snapshot in
// tx once SnapshotEvery events have passed since the last one.
func (m *memory) Apply(ctx context.Context, tx Tx, events []eventstore.Event) error {
	for _, e := range events {
		if e.Position <= m.pos {
			continue
		}
		if !m.skipped(e.Position) {
			if err := m.f.Handle(ctx, e); err != nil {
				return fmt.Errorf("follower %s at %d (%s %s): %w", m.f.Name(), e.Position, e.Stream, e.Type, err)
			}
		}
		m.pos = e.Position
	}
	if m.snapshotDue(m.pos) {
		return m.save(ctx, tx)
	}
	return nil
}

// snapshotDue reports whether handling the events up to position last
// makes a snapshot due (Apply then writes it in its transaction).
func (m *memory) snapshotDue(last uint64) bool { return m.every > 0 && last-m.snap >= m.every }

// save writes f's snapshot at m.pos in tx.
func (m *memory) save(ctx context.Context, tx Tx) error {
	data, err := m.f.Snapshot()
	if err != nil {
		return fmt.Errorf("follower %s: snapshot: %w", m.f.Name(), err)
	}
	if data == nil {
		data = []byte{} // NOT NULL: nil would be NULL on Postgres
	}
	q := `INSERT INTO follower_snapshots (name, version, position, state) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version, position = excluded.position, state = excluded.state`
	if m.shared {
		// A follower's state is a function of the log up to its position:
		// any instance's is as good as ours, the newest is best.
		q += ` WHERE follower_snapshots.position < excluded.position OR follower_snapshots.version <> excluded.version`
	}
	_, err = tx.Exec(ctx, q, m.f.Name(), int64(m.f.Version()), int64(m.pos), data)
	if err != nil {
		return fmt.Errorf("follower %s: write snapshot at %d: %w", m.f.Name(), m.pos, err)
	}
	m.saved = m.pos
	return nil
}

// settle ends a transaction that may have written a snapshot (see save):
// once it committed, that snapshot is the latest; when it failed, it was
// rolled back (or its outcome lost) and is written again later.
func (m *memory) settle(committed bool) {
	if committed {
		m.snap = max(m.snap, m.saved)
	}
	m.saved = 0
}

// restore loads f's snapshot (if there is one of f's version) into f and
// returns its position; 0 with an empty state otherwise.
func (m *memory) restore(ctx context.Context, db DB) (uint64, error) {
	var (
		version, pos int64
		data         []byte
	)
	err := db.QueryRow(ctx, `SELECT version, position, state FROM follower_snapshots WHERE name = ?`, m.f.Name()).
		Scan(&version, &pos, &data)
	switch {
	case errors.Is(err, ErrNoRows) || (err == nil && version != int64(m.f.Version())):
		pos, data = 0, nil
	case err != nil:
		return 0, fmt.Errorf("follower %s: read snapshot: %w", m.f.Name(), err)
	}
	if err := m.f.Restore(data); err != nil {
		if data == nil {
			return 0, fmt.Errorf("follower %s: reset: %w", m.f.Name(), err)
		}
		// A snapshot the code cannot read is a cache miss, not a failure.
		if err := m.f.Restore(nil); err != nil {
			return 0, fmt.Errorf("follower %s: reset: %w", m.f.Name(), err)
		}
		pos = 0
	}
	m.pos, m.snap = uint64(pos), uint64(pos)
	return m.pos, nil
}

// skipEvent is the event that records an operator's skip.
func skipEvent(name string, e eventstore.Event, failure string) (eventstore.EventData, error) {
	data, err := json.Marshal(EventSkipped{Follower: name, Position: e.Position, EventID: e.ID.String(),
		Stream: e.Stream, Type: e.Type, Error: failure})
	if err != nil {
		return eventstore.EventData{}, err
	}
	return eventstore.EventData{Type: TypeEventSkipped, Data: data}, nil
}

// transientStore marks a failed read of the store as worth retrying, unless
// the store is closed.
func transientStore(err error) error {
	if err == nil || errors.Is(err, eventstore.ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrTransient, err)
}

// resume restores follower m from its snapshot, loads the skips recorded
// for it, and moves its checkpoint to the snapshot's position, which it
// returns: the follower reads only the events after it. A local follower
// (see Runner.local) keeps no checkpoint row.
func (r *Runner) resume(ctx context.Context, m *memory) (uint64, error) {
	m.every = r.opts.SnapshotEvery
	pos, err := m.restore(ctx, r.db)
	if err != nil {
		return 0, err
	}
	if m.sideEffects() {
		if err := r.loadSkips(ctx, m); err != nil {
			return 0, err
		}
	}
	if r.local(m) {
		return pos, nil
	}
	err = r.db.Update(ctx, func(tx Tx) error {
		if err := r.fence(ctx, tx, m.Name()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET position = excluded.position`, m.Name(), int64(pos))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("follower %s: set checkpoint to snapshot at %d: %w", m.Name(), pos, err)
	}
	return pos, nil
}

// loadSkips reads the events an operator skipped for m from its stream.
func (r *Runner) loadSkips(ctx context.Context, m *memory) error {
	stream := SkipStreamPrefix + m.Name()
	for from := uint64(0); ; {
		events, err := r.store.ReadStream(ctx, stream, from, 256)
		if err != nil {
			return transientStore(fmt.Errorf("follower %s: read skips: %w", m.Name(), err))
		}
		for _, e := range events {
			var s EventSkipped
			if e.Type != TypeEventSkipped {
				continue
			}
			if err := json.Unmarshal(e.Data, &s); err != nil {
				return fmt.Errorf("follower %s: read skip %s: %w", m.Name(), e, err)
			}
			m.skip(s.Position)
		}
		if len(events) < 256 {
			return nil
		}
		from = events[len(events)-1].Revision + 1
	}
}

// saveFollowers writes the snapshot of every follower of projs that is
// behind its state, when their appliers have returned (Run ends, a term
// ends).
func (r *Runner) saveFollowers(projs []Projection) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range projs {
		m, ok := p.(*memory)
		if !ok || m.pos <= m.snap {
			continue
		}
		err := r.db.Update(ctx, func(tx Tx) error { return m.save(ctx, tx) })
		m.settle(err == nil)
		if err != nil {
			r.opts.Logger.Warn("follower snapshot not saved", "follower", m.Name(), "position", m.pos, "err", err)
		}
	}
}

// Skip gives up on the event a SideEffecting follower is parked at: it
// records the skip in the log (TypeEventSkipped in the follower's stream,
// with actor as the actor), so a replay skips it too, and resumes the
// follower after it. It returns the skipped event's position;
// ErrUnknownProjection, ErrNotSkippable or ErrNotParked when it cannot.
func (r *Runner) Skip(ctx context.Context, name, actor string) (uint64, error) {
	pr, ok := r.progress[name]
	if !ok {
		return 0, fmt.Errorf("skip %s: %w", name, ErrUnknownProjection)
	}
	m, _ := r.projection(name).(*memory)
	if m == nil || !m.sideEffects() {
		return 0, fmt.Errorf("skip %s: %w", name, ErrNotSkippable)
	}
	pr.mu.Lock()
	state, at, failure := pr.state, pr.parkedAt, pr.err
	pr.mu.Unlock()
	if state != StateParked || at == 0 {
		return 0, fmt.Errorf("skip %s: %w", name, ErrNotParked)
	}
	events, err := r.store.ReadAll(ctx, at-1, 1)
	if err != nil {
		return 0, fmt.Errorf("skip %s at %d: read event: %w", name, at, err)
	}
	if len(events) == 0 || events[0].Position != at {
		return 0, fmt.Errorf("skip %s: no event at %d", name, at)
	}
	ev, err := skipEvent(name, events[0], failure)
	if err != nil {
		return 0, fmt.Errorf("skip %s at %d: %w", name, at, err)
	}
	// One skip of one event, however often asked.
	ev.Metadata = eventstore.Metadata{Actor: actor, IdempotencyKey: fmt.Sprintf("skip %s %d", name, at)}
	if _, err := r.store.Append(ctx, SkipStreamPrefix+name, eventstore.Any, ev); err != nil {
		return 0, fmt.Errorf("skip %s at %d: record: %w", name, at, err)
	}
	m.skip(at)
	r.opts.Logger.Warn("follower event skipped", "follower", name, "position", at, "actor", actor)
	if err := r.Retry(name); err != nil && !errors.Is(err, ErrNotParked) {
		return 0, err
	}
	return at, nil
}
