package projections

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/eventstore"
)

// Runner errors.
var (
	// ErrUnknownProjection: no projection of that name was given to the runner.
	ErrUnknownProjection = errors.New("unknown projection")
	// ErrStopped: the runner stopped before the projection reached the
	// awaited position.
	ErrStopped = errors.New("projection runner stopped")
	// ErrCheckpointMoved: the stored checkpoint is not where this runner
	// left it; another runner is writing the same projection into the same
	// database. Nothing was applied.
	ErrCheckpointMoved = errors.New("checkpoint moved by another runner")
	// ErrRunning: Run was called while the runner was already running.
	ErrRunning = errors.New("projection runner already running")
)

// Owner of the runner's own migrations (the checkpoint table).
const runnerOwner = "projections"

var runnerMigrations = []string{
	`CREATE TABLE projection_checkpoints (
		name     TEXT PRIMARY KEY,
		position BIGINT NOT NULL
	)`,
}

// Options tune a Runner. The zero value is usable.
type Options struct {
	// MaxBatch is the most events folded into one transaction; a single
	// batch from the store is never split, so it may exceed this. Default
	// 20000: large batches let a projection fold many events into one write
	// per row (catch-up into Postgres runs about twice as fast as at 5000).
	MaxBatch int
	// Linger is how long the runner waits for more stored events to fill a
	// batch while it is behind the store's head (catching up). Live events,
	// once the head is reached, are applied at once. Default 20ms.
	Linger time.Duration
}

func (o *Options) setDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 20000
	}
	if o.Linger <= 0 {
		o.Linger = 20 * time.Millisecond
	}
}

// Runner feeds projections from an event store into one read-model database.
// Each projection runs on its own subscription from its own checkpoint; its
// rows and its checkpoint are committed in one transaction, so each event
// takes effect exactly once across crashes and restarts.
type Runner struct {
	db       DB
	store    eventstore.Store
	projs    []Projection
	opts     Options
	progress map[string]*progress
	running  atomic.Bool
}

// progress is a projection's committed checkpoint as this process knows it,
// with a broadcast channel closed and replaced on every change.
type progress struct {
	mu      sync.Mutex
	pos     uint64
	loaded  bool          // pos was read from or committed to the database
	changed chan struct{} // closed when pos, loaded or stopped change
	stopped error         // set when Run has returned, nil while it may run
}

func (p *progress) update(f func()) {
	p.mu.Lock()
	f()
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// NewRunner returns a runner of projections over db, fed from store. It does
// no I/O. It panics if two projections share a name: that is a wiring bug.
func NewRunner(db DB, store eventstore.Store, opts Options, projections ...Projection) *Runner {
	opts.setDefaults()
	r := &Runner{db: db, store: store, projs: projections, opts: opts, progress: make(map[string]*progress, len(projections))}
	for _, p := range projections {
		name := p.Name()
		if name == "" {
			panic("projections: projection with empty name")
		}
		if _, dup := r.progress[name]; dup {
			panic("projections: two projections named " + name)
		}
		r.progress[name] = &progress{changed: make(chan struct{})}
	}
	return r
}

// Run migrates the checkpoint table and every projection's schema, then runs
// every projection (one applier goroutine each, fed by one shared subscription) until
// ctx is done, when it returns nil (whatever the interrupted statements
// reported: they committed nothing), or one fails, when it stops the others
// and returns that error wrapped with the projection's name and checkpoint.
// Only one Run may be in progress at a time; after it returns, Run may be
// called again and resumes from the stored checkpoints.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	for _, p := range r.progress {
		p.update(func() { p.stopped = nil })
	}
	err := r.run(ctx)
	stopped := ErrStopped
	if err != nil {
		stopped = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	for _, p := range r.progress {
		p.update(func() { p.stopped = stopped })
	}
	if ctx.Err() != nil {
		// Shutting down: errors from interrupted statements are expected
		// and nothing half-done was committed.
		return nil
	}
	return err
}

func (r *Runner) run(ctx context.Context) error {
	d := r.db.Dialect()
	if err := r.db.Migrate(ctx, runnerOwner, runnerMigrations); err != nil {
		return fmt.Errorf("run projections: %w", err)
	}
	for _, p := range r.projs {
		if err := r.db.Migrate(ctx, p.Name(), p.Migrations(d)); err != nil {
			return fmt.Errorf("run projection %s: %w", p.Name(), err)
		}
	}
	if len(r.projs) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	// One subscription feeds every projection, from the oldest
	// checkpoint: each gets the events after its own, and an applier
	// goroutine of its own, so reading the next batch overlaps writing the
	// current one (the slowest projection sets the pace).
	type feed struct {
		from    uint64
		batches chan []eventstore.Event
	}
	feeds := make([]feed, len(r.projs))
	oldest := uint64(math.MaxUint64)
	for i, p := range r.projs {
		pos, err := r.loadCheckpoint(ctx, p.Name())
		if err != nil {
			return fmt.Errorf("projection %s: %w", p.Name(), err)
		}
		pr := r.progress[p.Name()]
		pr.update(func() { pr.pos, pr.loaded = pos, true })
		feeds[i] = feed{from: pos, batches: make(chan []eventstore.Event, 4)}
		oldest = min(oldest, pos)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := r.store.Subscribe(gctx, oldest, func(ctx context.Context, events []eventstore.Event) error {
			for _, f := range feeds {
				// Store batches are shared read-only: appliers copy before
				// they merge.
				mine := events
				if mine[0].Position <= f.from {
					i := sort.Search(len(mine), func(i int) bool { return mine[i].Position > f.from })
					if mine = mine[i:]; len(mine) == 0 {
						continue
					}
				}
				select {
				case f.batches <- mine:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		if err == nil {
			err = errors.New("subscription ended")
		}
		return fmt.Errorf("projections: subscribe after %d: %w", oldest, err)
	})
	for i, p := range r.projs {
		g.Go(func() error { return r.apply(gctx, p, r.progress[p.Name()], feeds[i].from, feeds[i].batches) })
	}
	return g.Wait()
}

// loadCheckpoint creates the projection's checkpoint row if it is missing and
// returns its position.
func (r *Runner) loadCheckpoint(ctx context.Context, name string) (uint64, error) {
	var pos int64
	err := r.db.Update(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING`, name); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = ?`, name).Scan(&pos)
	})
	if err != nil {
		return 0, fmt.Errorf("load checkpoint: %w", err)
	}
	return uint64(pos), nil
}

// apply takes batches from the subscription and commits them. It folds
// whatever batches are already waiting into one transaction, up to MaxBatch
// events; while behind the head seen at start (or at the last full batch) it
// also waits up to Linger for more, so catch-up commits large batches while
// live events are applied at once.
func (r *Runner) apply(ctx context.Context, p Projection, pr *progress, checkpoint uint64, batches <-chan []eventstore.Event) error {
	name := p.Name()
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("projection %s at %d: read head: %w", name, checkpoint, err)
	}
	var buf []eventstore.Event // owned here, reused; store batches are never appended to
	var skipped uint64         // position reached by skipping, beyond checkpoint
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		var batch []eventstore.Event
		if skipped > checkpoint {
			idle.Reset(skippedFlush)
		}
		select {
		case batch = <-batches:
		case <-idle.C:
			// Quiet: store the position reached by skipping, so that the
			// stored checkpoint (projections status) is current.
			if err := r.advance(ctx, name, checkpoint, skipped); err != nil {
				return fmt.Errorf("projection %s at %d: %w", name, checkpoint, err)
			}
			checkpoint = skipped
			continue
		case <-ctx.Done():
			return ctx.Err()
		}
		idle.Stop()
		events := batch
		merged := false
		merge := func(b []eventstore.Event) {
			if !merged {
				buf = append(buf[:0], events...)
				merged = true
			}
			buf = append(buf, b...)
			events = buf
		}
		var linger *time.Timer
	fill:
		for len(events) < r.opts.MaxBatch {
			select {
			case b := <-batches:
				merge(b)
				continue
			default:
			}
			if events[len(events)-1].Position >= head {
				break
			}
			if linger == nil {
				linger = time.NewTimer(r.opts.Linger)
			}
			select {
			case b := <-batches:
				merge(b)
			case <-linger.C:
				break fill
			case <-ctx.Done():
				linger.Stop()
				return ctx.Err()
			}
		}
		if linger != nil {
			linger.Stop()
		}

		last := events[len(events)-1].Position
		if skip(p, events) && last-checkpoint < CheckpointInterval {
			skipped = last // nothing of this projection's: move on in memory only
		} else {
			if err := r.commit(ctx, p, checkpoint, events); err != nil {
				return fmt.Errorf("projection %s at %d: %w", name, checkpoint, err)
			}
			checkpoint = last
		}
		pr.update(func() { pr.pos = last })
		if len(events) >= r.opts.MaxBatch {
			// A full batch: still catching up, learn how far there is to go.
			if head, err = r.store.Head(ctx); err != nil {
				return fmt.Errorf("projection %s at %d: read head: %w", name, checkpoint, err)
			}
		}
		clear(buf) // drop references to event data
	}
}

// skippedFlush is how long a projection that skipped events waits, idle,
// before it stores the position it reached.
const skippedFlush = time.Second

// advance moves a checkpoint from from to to without applying anything
// (the events between were not the projection's).
func (r *Runner) advance(ctx context.Context, name string, from, to uint64) error {
	return r.db.Update(ctx, func(tx Tx) error { return moveCheckpoint(ctx, tx, name, from, to) })
}

// moveCheckpoint moves name's checkpoint from from to to, fenced: a second
// runner on the same projection blocks here (Postgres row lock, SQLite
// single writer) and then finds the checkpoint moved (ErrCheckpointMoved),
// before doing any work.
func moveCheckpoint(ctx context.Context, tx Tx, name string, from, to uint64) error {
	n, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET position = ? WHERE name = ? AND position = ?`,
		int64(to), name, int64(from))
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if n != 1 {
		return ErrCheckpointMoved
	}
	return nil
}

// skip reports whether p is Selective and wants none of events.
func skip(p Projection, events []eventstore.Event) bool {
	sel, ok := p.(Selective)
	if !ok {
		return false
	}
	for _, e := range events {
		if sel.Wants(e) {
			return false
		}
	}
	return true
}

// commit applies events and moves the checkpoint from checkpoint to the last
// event's position in one transaction.
func (r *Runner) commit(ctx context.Context, p Projection, checkpoint uint64, events []eventstore.Event) error {
	prev := checkpoint
	for _, e := range events {
		if e.Position <= prev {
			return fmt.Errorf("store delivered position %d after %d", e.Position, prev)
		}
		prev = e.Position
	}
	first, last := events[0].Position, events[len(events)-1].Position
	err := r.db.Update(ctx, func(tx Tx) error {
		// Fence first, before doing any work.
		if err := moveCheckpoint(ctx, tx, p.Name(), checkpoint, last); err != nil {
			return err
		}
		return p.Apply(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("apply positions %d..%d (%d events): %w", first, last, len(events), err)
	}
	return nil
}

// WaitFor blocks until projection name has committed every event up to
// position (for read-your-writes: pass the Position an append returned). It
// returns nil at once for position 0 or a position already reached, ctx's
// error wrapped when ctx is done first, ErrStopped wrapped (with the reason)
// when Run has returned, and ErrUnknownProjection for a name the runner does
// not have. Before Run starts it waits. It does not poll: the runner wakes
// waiters on every commit.
func (r *Runner) WaitFor(ctx context.Context, name string, position uint64) error {
	p, ok := r.progress[name]
	if !ok {
		return fmt.Errorf("wait for %s@%d: %w", name, position, ErrUnknownProjection)
	}
	for {
		p.mu.Lock()
		pos, loaded, stopped, changed := p.pos, p.loaded, p.stopped, p.changed
		p.mu.Unlock()
		if position == 0 || (loaded && pos >= position) {
			return nil
		}
		if stopped != nil {
			return fmt.Errorf("wait for %s@%d (at %d): %w", name, position, pos, stopped)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s@%d (at %d): %w", name, position, pos, ctx.Err())
		}
	}
}

// Status is where a projection stands.
type Status struct {
	Name string
	// Position is the global position of the last event committed.
	Position uint64
	// Head is the store's newest position when Status was called.
	Head uint64
	// Lag is Head - Position (0 when the projection is ahead of the Head read).
	Lag uint64
	// Running reports whether Run is in progress.
	Running bool
}

// Status reports every projection's checkpoint and lag behind the store's
// head, in the order given to NewRunner. A projection this runner has loaded
// reports its in-memory checkpoint; others are read from the database (a
// projection that never ran reports 0; the checkpoint table is created if it
// is missing).
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	head, err := r.store.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("projection status: read head: %w", err)
	}
	running := r.running.Load()
	out := make([]Status, len(r.projs))
	var stored map[string]uint64
	for i, p := range r.projs {
		name := p.Name()
		pr := r.progress[name]
		pr.mu.Lock()
		pos, loaded := pr.pos, pr.loaded
		pr.mu.Unlock()
		if !loaded {
			if stored == nil {
				if stored, err = r.storedCheckpoints(ctx); err != nil {
					return nil, err
				}
			}
			pos = stored[name]
		}
		st := Status{Name: name, Position: pos, Head: head, Running: running}
		if head > pos {
			st.Lag = head - pos
		}
		out[i] = st
	}
	return out, nil
}

func (r *Runner) storedCheckpoints(ctx context.Context) (map[string]uint64, error) {
	// The checkpoint table may not exist yet if no runner ever ran here.
	if err := r.db.Migrate(ctx, runnerOwner, runnerMigrations); err != nil {
		return nil, fmt.Errorf("projection status: %w", err)
	}
	rows, err := r.db.Query(ctx, `SELECT name, position FROM projection_checkpoints`)
	if err != nil {
		return nil, fmt.Errorf("projection status: read checkpoints: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return nil, fmt.Errorf("projection status: read checkpoints: %w", err)
		}
		out[name] = uint64(pos)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("projection status: read checkpoints: %w", err)
	}
	return out, nil
}
