package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/backoff"
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
	// ErrParked: the projection stopped at an event that keeps failing and
	// waits for an operator's Retry; the other projections go on.
	ErrParked = errors.New("projection parked")
	// ErrNotParked: Retry was called on a projection that is not parked.
	ErrNotParked = errors.New("projection not parked")
	// ErrNotSkippable: Skip was called on a projection that is not a
	// SideEffecting Follower (a read model must not miss an event: rebuild
	// it or fix the event's handling instead).
	ErrNotSkippable = errors.New("only a side-effect follower may skip an event")
)

// State is what a projection is doing.
type State string

// The states of a projection.
const (
	// StateCatchingUp: applying events behind the head seen at start.
	StateCatchingUp State = "catching_up"
	// StateRunning: caught up, applying live events.
	StateRunning State = "running"
	// StateRetrying: the last attempt failed; it is retried with backoff
	// from the projection's checkpoint.
	StateRetrying State = "retrying"
	// StateParked: an event keeps failing; nothing is applied until Retry.
	StateParked State = "parked"
	// StateStopped: Run is not in progress.
	StateStopped State = "stopped"
	// StateStandby: another instance leads the projection's role (see
	// Options.Elector); this runner reads its stored checkpoint.
	StateStandby State = "standby"
)

// Owner of the runner's own migrations (the checkpoint table).
const runnerOwner = "projections"

func runnerMigrations(d Dialect) []string {
	return []string{
		`CREATE TABLE projection_checkpoints (
		name     TEXT PRIMARY KEY,
		position BIGINT NOT NULL
	)`,
		// The latest snapshot of each Follower's state, at position.
		`CREATE TABLE follower_snapshots (
		name     TEXT PRIMARY KEY,
		version  BIGINT NOT NULL,
		position BIGINT NOT NULL,
		state    ` + d.Bytes() + ` NOT NULL
	)`,
	}
}

// Options tune a Runner. The zero value is usable.
type Options struct {
	// MaxBatch is the most events folded into one transaction; a single
	// batch from the store is never split, so it may exceed this. Default
	// 50000: large batches let a projection fold many events into one write
	// per row (catch-up into Postgres runs about twice as fast as at 5000),
	// and on SQLite each commit rewrites every index page the batch touched,
	// which for keys spread over many accounts is most of them (the wallet
	// read models write half as much at 50000 as at 20000). The price is
	// memory: a catch-up holds about two batches of events.
	MaxBatch int
	// Linger is how long the runner waits for the next stored events to
	// fill a batch while it is behind the store's head (catching up). Live
	// events, once the head is reached, are applied at once. Default 20ms.
	Linger time.Duration
	// RetryMin and RetryMax bound the wait before a failed projection is
	// retried: it doubles from RetryMin with every consecutive failure, up
	// to RetryMax, with jitter. Defaults 100ms and 30s.
	RetryMin, RetryMax time.Duration
	// ParkAfter is how many consecutive failed batches at one position park
	// a projection even when each failure looked transient. Default 10.
	// Failures to reach the database at all (reading the checkpoint before
	// a retry) never park: an outage is waited out.
	ParkAfter int
	// Logger gets a line per retry and per parked projection. Default
	// slog.Default().
	Logger *slog.Logger
	// SnapshotEvery is how many events pass between two snapshots of a
	// Follower's state (see Follow). Default 10000.
	SnapshotEvery uint64
	// Elector and Roles make singletons of some projections when several
	// instances run: a projection named in Roles runs only while this
	// instance leads its role (Elector.Lead); the others stand by (state
	// StateStandby) and read its stored checkpoint. Projections not in
	// Roles run on every instance. Nil Elector: every projection runs here.
	Elector Elector
	Roles   map[string]string
	// Shared: the database is shared with other runners (instances). A
	// Follower not in Roles then runs on every instance with a checkpoint
	// of its own, in memory (it reads from the shared snapshot, which each
	// instance only moves forward), so instances never collide on it.
	// Read models must have a role when Shared.
	Shared bool
}

func (o *Options) setDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 50000
	}
	if o.Linger <= 0 {
		o.Linger = 20 * time.Millisecond
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 30 * time.Second
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.ParkAfter <= 0 {
		o.ParkAfter = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = 10_000
	}
}

// Runner feeds projections from an event store into one read-model database.
// Its rows and its checkpoint are committed in one transaction, so each
// event takes effect exactly once across crashes and restarts.
//
// Faults stop only the projection that hit them. A failed batch is retried
// from the projection's checkpoint, with backoff, on a subscription of its
// own (the other projections stay on the shared one). An error that is not
// transient (see Transient) narrows the retry to one event at a time, so
// the events before the failing one are applied; an event that still fails
// (non-transient, or ParkAfter times in a row) parks the projection (state
// StateParked, with the position and the error in Status) until Retry.
type Runner struct {
	db       DB
	store    eventstore.Store
	projs    []Projection
	opts     Options
	progress map[string]*progress
	running  atomic.Bool
	jobs     *jobs // rebuilds; see rebuild.go
}

// progress is a projection's committed checkpoint as this process knows it,
// with a broadcast channel closed and replaced on every change.
type progress struct {
	mu       sync.Mutex
	pos      uint64
	loaded   bool          // pos was read from or committed to the database
	changed  chan struct{} // closed when any field changes
	stopped  error         // set when Run has returned, nil while it may run
	state    State
	err      string // the last failure, "" once an attempt succeeds
	parkedAt uint64 // position of the event it is parked at
	failures uint64 // failed attempts since NewRunner
	retry    chan struct{}
	readyAt  uint64         // the store's head when Run started
	pause    chan *pauseReq // a rebuild asks the applier to hold; see rebuild.go
	// term is the leadership the applier writes under (nil: no role);
	// set before the applier starts, read by it alone.
	term *Term
	// follower: the projection is a Follower's; local: one that runs on
	// every instance of a shared database, with its checkpoint in memory
	// (see Options.Shared). Both set by NewRunner.
	follower, local bool
	// stored is the checkpoint another instance stored, as last read for
	// WaitFor on a standby projection (see storedCheckpoint).
	stored struct {
		sync.Mutex
		pos uint64
		at  time.Time
	}
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
	r := &Runner{db: db, store: store, projs: projections, opts: opts, progress: make(map[string]*progress, len(projections)),
		jobs: newJobs()}
	for _, p := range projections {
		name := p.Name()
		if name == "" {
			panic("projections: projection with empty name")
		}
		if _, dup := r.progress[name]; dup {
			panic("projections: two projections named " + name)
		}
		pr := &progress{changed: make(chan struct{}), state: StateStopped, retry: make(chan struct{}, 1),
			pause: make(chan *pauseReq)}
		if m, ok := p.(*memory); ok {
			m.shared = opts.Shared
			pr.follower, pr.local = true, opts.Shared && r.role(name) == ""
		}
		r.progress[name] = pr
	}
	return r
}

// role returns the role projection name runs under, "" when it runs on
// every instance.
func (r *Runner) role(name string) string {
	if r.opts.Elector == nil {
		return ""
	}
	return r.opts.Roles[name]
}

// local reports whether follower m runs on every instance of a shared
// database, with its checkpoint in memory.
func (r *Runner) local(m *memory) bool { return r.progress[m.Name()].local }

// Run migrates the checkpoint table and every projection's schema, then runs
// every projection (one applier goroutine each, fed by one shared
// subscription) until ctx is done, when it returns nil. A failing
// projection is retried or parked (see Runner); it never stops the others,
// and a failed subscription is retried with backoff too. Run returns an
// error only when the start-up migrations fail with a non-transient error
// or another runner writes the same projection (ErrCheckpointMoved).
// Only one Run may be in progress at a time; after it returns, Run may be
// called again and resumes from the stored checkpoints.
func (r *Runner) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	for _, p := range r.progress {
		p.update(func() {
			p.stopped, p.state, p.err, p.parkedAt, p.readyAt = nil, StateCatchingUp, "", 0, math.MaxUint64
		})
		select {
		case <-p.retry:
		default:
		}
	}
	err := r.run(ctx)
	stopped := ErrStopped
	if err != nil {
		stopped = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	for _, p := range r.progress {
		p.update(func() { p.stopped, p.state = stopped, StateStopped })
	}
	if ctx.Err() != nil {
		// Shutting down: errors from interrupted statements are expected
		// and nothing half-done was committed.
		return nil
	}
	return err
}

// errLeft ends a subscription whose every reader has left.
var errLeft = errors.New("every reader left")

// feed carries a subscription's batches to one projection's applier.
type feed struct {
	from    uint64 // deliver only events after this position
	batches chan []eventstore.Event
	errc    chan error    // the subscription's failure, at most one
	gone    chan struct{} // closed when the applier leaves
	once    sync.Once
	stop    context.CancelFunc // ends a private subscription; nil for the shared one
}

// newFeed returns a feed after position from that buffers up to depth
// store batches.
func newFeed(from uint64, depth int, stop context.CancelFunc) *feed {
	return &feed{from: from, batches: make(chan []eventstore.Event, depth), errc: make(chan error, 1),
		gone: make(chan struct{}), stop: stop}
}

// leave detaches the applier: the subscription stops sending to it.
func (f *feed) leave() {
	f.once.Do(func() {
		close(f.gone)
		if f.stop != nil {
			f.stop()
		}
	})
}

func (f *feed) fail(err error) {
	select {
	case f.errc <- err:
	default:
	}
}

// deliver sends the events after f.from; errLeft when the applier left.
// Store batches are shared read-only: appliers copy before they merge.
func (f *feed) deliver(ctx context.Context, events []eventstore.Event) error {
	select {
	case <-f.gone:
		return errLeft
	default:
	}
	mine := events
	if mine[0].Position <= f.from {
		if mine = mine[upTo(mine, f.from):]; len(mine) == 0 {
			return nil
		}
	}
	select {
	case f.batches <- mine:
		return nil
	case <-f.gone:
		return errLeft
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Runner) run(ctx context.Context) error {
	d := r.db.Dialect()
	err := r.retryTransient(ctx, "migrate", func() error {
		if err := r.db.Migrate(ctx, runnerOwner, runnerMigrations(d)); err != nil {
			return fmt.Errorf("run projections: %w", err)
		}
		for _, p := range r.projs {
			if err := r.db.Migrate(ctx, p.Name(), p.Migrations(d)); err != nil {
				return fmt.Errorf("run projection %s: %w", p.Name(), err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(r.projs) == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	var local []Projection
	led := map[string][]Projection{}
	var roles []string
	for _, p := range r.projs {
		role := r.role(p.Name())
		if role == "" {
			local = append(local, p)
			continue
		}
		if led[role] == nil {
			roles = append(roles, role)
		}
		led[role] = append(led[role], p)
	}
	// One subscription feeds every projection, from the oldest
	// checkpoint: each gets the events after its own, and an applier
	// goroutine of its own, so reading the next batch overlaps writing the
	// current one (the slowest projection sets the pace). A projection that
	// fails leaves it for a subscription of its own.
	var start uint64
	err = r.retryTransient(ctx, "read head", func() (err error) {
		start, err = r.store.Head(ctx)
		return transientStore(err)
	})
	if err != nil {
		return fmt.Errorf("run projections: read head: %w", err)
	}
	feeds := make([]*feed, len(local))
	oldest := uint64(math.MaxUint64)
	for i, p := range local {
		var pos uint64
		err := r.retryTransient(ctx, "load checkpoint", func() (err error) {
			pos, err = r.load(ctx, p)
			return err
		})
		if err != nil {
			return fmt.Errorf("projection %s: %w", p.Name(), err)
		}
		pr := r.progress[p.Name()]
		pr.update(func() { pr.pos, pr.loaded, pr.readyAt = pos, true, start })
		feeds[i] = newFeed(pos, r.feedDepth(), nil)
		oldest = min(oldest, pos)
	}
	g, gctx := errgroup.WithContext(ctx)
	if len(feeds) > 0 {
		g.Go(func() error { r.pump(gctx, oldest, feeds); return nil })
	}
	if r.rebuildRole() == "" {
		g.Go(func() error { return r.rebuilds(gctx, g) })
	}
	for i, p := range local {
		g.Go(func() error { return r.follow(gctx, g, p, feeds[i]) })
	}
	for _, role := range roles {
		g.Go(func() error { r.lead(gctx, role, led[role]); return nil })
	}
	err = g.Wait()
	r.saveFollowers(local)
	return err
}

// rebuildRole is the role of the read models, whose leader alone rebuilds
// them; "" when they run on every instance.
func (r *Runner) rebuildRole() string {
	for _, p := range r.projs {
		if _, ok := p.(*memory); !ok {
			if role := r.role(p.Name()); role != "" {
				return role
			}
		}
	}
	return ""
}

// lead runs projs, the projections of role, while this instance leads
// role, until ctx is done; they stand by in between. A term whose write
// was refused (ErrDeposed, ErrCheckpointMoved: another instance wrote) or
// that failed otherwise is resigned: this runner steps down and stands
// for election again.
func (r *Runner) lead(ctx context.Context, role string, projs []Projection) {
	for {
		for _, p := range projs {
			pr := r.progress[p.Name()]
			pr.update(func() { pr.state, pr.loaded, pr.term, pr.err, pr.parkedAt = StateStandby, false, nil, "", 0 })
		}
		t, err := r.opts.Elector.Lead(ctx, role)
		if err != nil {
			return // ctx is done
		}
		r.opts.Logger.Info("projections leading", "role", role, "epoch", t.Epoch)
		err = r.runTerm(ctx, t, projs)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.opts.Logger.Warn("projections stepped down", "role", role, "epoch", t.Epoch, "err", err)
			r.opts.Elector.Resign(t)
		}
		select {
		case <-t.Done:
		case <-ctx.Done():
			return
		}
	}
}

// runTerm runs projs under term t, each from its stored checkpoint on a
// subscription of its own, until t ends, ctx is done (nil) or one of them
// fails with an error Runner.follow returns.
func (r *Runner) runTerm(ctx context.Context, t Term, projs []Projection) error {
	tctx, cancel := t.Context(ctx)
	defer cancel()
	var head uint64
	err := r.retryTransient(tctx, "read head", func() (err error) {
		head, err = r.store.Head(tctx)
		return transientStore(err)
	})
	if err != nil {
		if tctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("run projections of %s: read head: %w", t.Role, err)
	}
	g, gctx := errgroup.WithContext(tctx)
	if r.rebuildRole() == t.Role {
		g.Go(func() error { return r.rebuilds(gctx, g) })
	}
	for _, p := range projs {
		g.Go(func() error {
			pr := r.progress[p.Name()]
			pr.update(func() { pr.term, pr.state = &t, StateCatchingUp })
			var pos uint64
			err := r.retryTransient(gctx, "load checkpoint", func() (err error) {
				pos, err = r.load(gctx, p)
				return err
			})
			if gctx.Err() != nil {
				return nil
			}
			if err != nil {
				return fmt.Errorf("projection %s: %w", p.Name(), err)
			}
			pr.update(func() { pr.pos, pr.loaded, pr.readyAt = pos, true, head })
			return r.follow(gctx, g, p, r.subscribe(gctx, g, pos))
		})
	}
	err = g.Wait()
	r.saveFollowers(projs)
	return err
}

// load returns p's checkpoint, restoring a follower from its snapshot.
func (r *Runner) load(ctx context.Context, p Projection) (uint64, error) {
	if m, ok := p.(*memory); ok {
		return r.resume(ctx, m)
	}
	return r.loadCheckpoint(ctx, p.Name())
}

// feedDepth is how many store batches a feed buffers: enough for the
// subscription to read the next MaxBatch events (in store pages of a few
// thousand) while the projection applies the last, so catch-up reads and
// writes overlap and every transaction is a full one.
func (r *Runner) feedDepth() int { return max(4, r.opts.MaxBatch/4096+2) }

// subscribe starts a subscription of one projection's own, after position
// after, in g; it ends when the projection leaves the feed or ctx is done.
func (r *Runner) subscribe(ctx context.Context, g *errgroup.Group, after uint64) *feed {
	sctx, cancel := context.WithCancel(ctx)
	f := newFeed(after, r.feedDepth(), cancel)
	g.Go(func() error { r.pump(sctx, after, []*feed{f}); return nil })
	return f
}

// pump runs one subscription after position after, delivering to every
// feed, until each has left or ctx is done. When the subscription fails it
// hands the error to every feed: each applier then retries on a
// subscription of its own.
func (r *Runner) pump(ctx context.Context, after uint64, feeds []*feed) {
	err := r.store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		left := 0
		for _, f := range feeds {
			if err := f.deliver(ctx, events); errors.Is(err, errLeft) {
				left++
			} else if err != nil {
				return err
			}
		}
		if left == len(feeds) {
			return errLeft
		}
		return nil
	})
	if ctx.Err() != nil || errors.Is(err, errLeft) {
		return
	}
	if err == nil {
		err = errors.New("subscription ended")
	}
	err = fmt.Errorf("subscribe after %d: %w", after, err)
	for _, f := range feeds {
		f.fail(err)
	}
}

// retryTransient runs f until it succeeds, fails with an error that is not
// transient, or ctx is done, waiting with backoff between attempts.
func (r *Runner) retryTransient(ctx context.Context, op string, f func() error) error {
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || !Transient(err) || ctx.Err() != nil {
			return err
		}
		d := backoff.Jitter(backoff.Exp(r.opts.RetryMin, r.opts.RetryMax, attempt-1))
		r.opts.Logger.Warn("projections retrying", "op", op, "attempt", attempt, "backoff", d, "err", err)
		if !backoff.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// applyError is a batch that failed to commit.
type applyError struct {
	first, last uint64
	n           int
	err         error
}

func (e *applyError) Error() string {
	return fmt.Sprintf("apply positions %d..%d (%d events): %v", e.first, e.last, e.n, e.err)
}

func (e *applyError) Unwrap() error { return e.err }

// follow runs projection p from f until ctx is done, retrying and parking
// it on failures (see Runner). It returns an error only for
// ErrCheckpointMoved.
func (r *Runner) follow(ctx context.Context, g *errgroup.Group, p Projection, f *feed) error {
	name := p.Name()
	pr := r.progress[name]
	pr.mu.Lock()
	checkpoint := pr.pos
	pr.mu.Unlock()
	var (
		attempted uint64 // checkpoint the last write tried to store
		fails     int    // consecutive failures at failAt (sets the backoff)
		applies   int    // of which failed batches (may park)
		failAt    uint64 // checkpoint of the last failure
		narrow    uint64 // commit one event at a time up to this position
	)
	for {
		var err error
		if f == nil {
			// After a failure: a write whose outcome was lost (the
			// connection dropped during COMMIT) may have committed.
			if err = r.reload(ctx, pr, name, &checkpoint, attempted); err == nil {
				f = r.subscribe(ctx, g, checkpoint)
			}
		}
		if f != nil {
			err = r.apply(ctx, p, pr, &checkpoint, &attempted, narrow, f)
			f.leave()
			f = nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrCheckpointMoved) || errors.Is(err, ErrDeposed) {
			return err
		}
		if errors.Is(err, errResubscribe) {
			continue
		}
		if checkpoint != failAt {
			fails, applies, failAt = 0, 0, checkpoint
		}
		fails++
		at, park := checkpoint+1, false
		var ae *applyError
		if errors.As(err, &ae) {
			applies++
			at = ae.first
			switch {
			case ae.n > 1 && (!Transient(err) || applies >= r.opts.ParkAfter):
				// Find the failing event before parking, so that the park
				// (and an operator's skip) names it, not its batch's first.
				narrow = ae.last
			case !Transient(err), applies >= r.opts.ParkAfter:
				park = true
			}
		} // else reading the log or the checkpoint failed: retried for ever
		msg := err.Error()
		if park {
			pr.update(func() { pr.state, pr.err, pr.parkedAt, pr.failures = StateParked, msg, at, pr.failures+1 })
			r.opts.Logger.Error("projection parked", "projection", name, "position", at, "err", err)
			for waiting := true; waiting; {
				select {
				case <-pr.retry:
					waiting = false
				case req := <-pr.pause: // a rebuild may replace what it is parked on
					waiting = !r.holdParked(ctx, pr, req, &checkpoint)
				case <-ctx.Done():
					return nil
				}
			}
			fails, applies = 0, 0
			r.opts.Logger.Info("projection retried", "projection", name, "position", at)
			continue
		}
		d := backoff.Jitter(backoff.Exp(r.opts.RetryMin, r.opts.RetryMax, fails-1))
		pr.update(func() { pr.state, pr.err, pr.failures = StateRetrying, msg, pr.failures+1 })
		r.opts.Logger.Warn("projection retrying", "projection", name, "position", at, "attempt", fails,
			"backoff", d, "err", err)
		if !backoff.Sleep(ctx, d) {
			return nil
		}
	}
}

// reload reads the stored checkpoint after a failure. It moves *checkpoint
// to it when it is the one the failed write attempted (that write
// committed after all) and fails with ErrCheckpointMoved when it is
// neither.
func (r *Runner) reload(ctx context.Context, pr *progress, name string, checkpoint *uint64, attempted uint64) error {
	if pr.local {
		return nil // the checkpoint is in memory
	}
	stored, err := r.loadCheckpoint(ctx, name)
	if err != nil {
		return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
	}
	switch stored {
	case *checkpoint:
	case attempted:
		*checkpoint = stored
		pr.update(func() { pr.pos = max(pr.pos, stored) })
	default:
		return fmt.Errorf("projection %s at %d: stored checkpoint %d: %w", name, *checkpoint, stored, ErrCheckpointMoved)
	}
	return nil
}

// StoredCheckpoint reads projection name's checkpoint in db as a runner
// over db last stored it: the position up to which its stored state has
// applied the log, 0 when it has none. For readers outside the runner
// (audit verify compares a read model's rows at it).
func StoredCheckpoint(ctx context.Context, db DB, name string) (uint64, error) {
	var pos int64
	err := db.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = ?`, name).Scan(&pos)
	if errors.Is(err, ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("checkpoint of %s: %w", name, err)
	}
	return uint64(pos), nil
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

// apply takes batches from f and commits them, moving *checkpoint, until
// it fails or ctx is done. It folds whatever batches are already waiting
// into one transaction, up to MaxBatch events; while behind the head seen
// at start (or at the last full batch) it also waits up to Linger for each
// next store batch, so catch-up commits full batches while live events are
// applied at once.
// Events up to narrow are committed one at a time. Before each write it sets
// *attempted to the checkpoint that write stores.
func (r *Runner) apply(ctx context.Context, p Projection, pr *progress, checkpoint, attempted *uint64, narrow uint64, f *feed) error {
	name := p.Name()
	m, _ := p.(*memory)
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("projection %s at %d: read head: %w", name, *checkpoint, err)
	}
	var buf []eventstore.Event // owned here, reused; store batches are never appended to
	var skipped uint64         // position reached by skipping, beyond checkpoint
	var flushedAt time.Time    // when a skipped position was last stored (Shared)
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	for {
		var batch []eventstore.Event
		if skipped > *checkpoint || (m != nil && m.pos > m.snap) {
			idle.Reset(skippedFlush)
		}
		select {
		case batch = <-f.batches:
		case err := <-f.errc:
			return err
		case <-idle.C:
			// Quiet: store the position reached by skipping, so that the
			// stored checkpoint (projections status) is current, and a
			// follower's state as of now.
			to := max(skipped, *checkpoint)
			*attempted = to
			if err := r.flush(ctx, name, m, *checkpoint, to); err != nil {
				return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
			}
			*checkpoint = to
			continue
		case req := <-pr.pause:
			if err := r.holdForRebuild(ctx, pr, req, checkpoint, &skipped); err != nil {
				return err
			}
			continue
		case <-ctx.Done():
			if skipped > *checkpoint {
				// Stopping: store the position reached by skipping, so that
				// a restart does not read those events again.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if r.flush(sctx, name, m, *checkpoint, skipped) == nil {
					*checkpoint = skipped
				}
				cancel()
			}
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
			case b := <-f.batches:
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
			case b := <-f.batches:
				merge(b)
				// The store is still delivering: wait up to Linger for
				// the next batch too, so that catch-up batches fill up
				// however long each read takes.
				linger.Reset(r.opts.Linger)
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
		switch {
		case skip(p, events) && last-*checkpoint < CheckpointInterval:
			skipped = last // nothing of this projection's: move on in memory only
			if m != nil {
				m.pos = max(m.pos, last) // its state is the same as of last
			}
			if r.opts.Shared && m == nil && time.Since(flushedAt) >= sharedSkipFlush {
				// Other instances wait on the stored checkpoint (WaitFor
				// on standby): under load the quiet second never comes,
				// so store the position reached now and then.
				*attempted = skipped
				if err := r.flush(ctx, name, nil, *checkpoint, skipped); err != nil {
					return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
				}
				*checkpoint, flushedAt = skipped, time.Now()
			}
		case m != nil && events[0].Position > narrow && !m.snapshotDue(last) && last-*checkpoint < CheckpointInterval:
			// A follower's state is in memory and resumes from its
			// snapshot (resume), so a batch needs no transaction: the
			// checkpoint is stored with the next snapshot, after a quiet
			// second (flush) or every CheckpointInterval events. A
			// transaction per batch per follower was a third of the
			// command path's CPU.
			*attempted = last
			if err := m.Apply(ctx, nil, events); err != nil {
				err = &applyError{first: events[0].Position, last: last, n: len(events), err: err}
				return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
			}
			skipped = last
		case events[0].Position <= narrow:
			for i, e := range events {
				*attempted = e.Position
				if err := r.commit(ctx, p, *checkpoint, events[i:i+1]); err != nil {
					return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
				}
				*checkpoint = e.Position
				r.committed(pr, e.Position, head)
			}
		default:
			*attempted = last
			if err := r.commit(ctx, p, *checkpoint, events); err != nil {
				return fmt.Errorf("projection %s at %d: %w", name, *checkpoint, err)
			}
			*checkpoint = last
		}
		r.committed(pr, last, head)
		if len(events) >= r.opts.MaxBatch {
			// A full batch: still catching up, learn how far there is to go.
			if head, err = r.store.Head(ctx); err != nil {
				return fmt.Errorf("projection %s at %d: read head: %w", name, *checkpoint, err)
			}
		}
		clear(buf) // drop references to event data
	}
}

// committed records that pr reached position pos (committed or skipped),
// with head the store's head as last read: the projection is running again.
func (r *Runner) committed(pr *progress, pos, head uint64) {
	pr.update(func() {
		pr.pos = max(pr.pos, pos)
		pr.state, pr.err, pr.parkedAt = StateRunning, "", 0
		if pos < head {
			pr.state = StateCatchingUp
		}
	})
}

// skippedFlush is how long a projection that skipped events waits, idle,
// before it stores the position it reached.
const skippedFlush = time.Second

// sharedSkipFlush: on a shared database, a read model that skips events
// stores the position it reached at least this often while events flow,
// for the instances that wait on its stored checkpoint.
const sharedSkipFlush = 20 * time.Millisecond

// flush moves a checkpoint from from to to without applying anything (the
// events between were not the projection's) and writes follower m's
// snapshot if it has moved since the last (m may be nil).
func (r *Runner) flush(ctx context.Context, name string, m *memory, from, to uint64) error {
	err := r.db.Update(ctx, func(tx Tx) error {
		if to != from {
			if err := r.move(ctx, tx, name, from, to); err != nil {
				return err
			}
		}
		if m != nil && m.pos > m.snap {
			return m.save(ctx, tx)
		}
		return nil
	})
	if m != nil {
		m.settle(err == nil)
	}
	return err
}

// move moves projection name's checkpoint from from to to in tx, fenced
// by its term when it has one (see fence); a local follower's checkpoint is
// in memory, nothing is written.
func (r *Runner) move(ctx context.Context, tx Tx, name string, from, to uint64) error {
	if err := r.fence(ctx, tx, name); err != nil {
		return err
	}
	if r.progress[name].local {
		return nil
	}
	return moveCheckpoint(ctx, tx, name, from, to)
}

// fence checks in tx that the term projection name writes under is still
// the current one (ErrDeposed otherwise), when it has a term and the
// elector records terms in this (shared) database.
func (r *Runner) fence(ctx context.Context, tx Tx, name string) error {
	f, ok := r.opts.Elector.(Fencer)
	t := r.progress[name].term
	if !ok || t == nil || !r.opts.Shared {
		return nil
	}
	return f.Fence(ctx, tx, *t)
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
		if err := r.move(ctx, tx, p.Name(), checkpoint, last); err != nil {
			return err
		}
		return p.Apply(ctx, tx, events)
	})
	if m, ok := p.(*memory); ok {
		m.settle(err == nil)
	}
	if err != nil {
		return &applyError{first: first, last: last, n: len(events), err: err}
	}
	return nil
}

// upTo returns how many of events (in global order) are at or before
// position pos.
func upTo(events []eventstore.Event, pos uint64) int {
	return sort.Search(len(events), func(i int) bool { return events[i].Position > pos })
}

// projection returns the projection named name, nil if there is none.
func (r *Runner) projection(name string) Projection {
	for _, p := range r.projs {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// WaitFor blocks until projection name has committed every event up to
// position (for read-your-writes: pass the Position an append returned). It
// returns nil at once for position 0 or a position already reached, ctx's
// error wrapped when ctx is done first, ErrStopped wrapped (with the reason)
// when Run has returned, ErrParked wrapped (with the failure) at once while
// the projection is parked, and ErrUnknownProjection for a name the runner
// does not have. Before Run starts it waits. It does not poll: the runner
// wakes waiters on every commit.
func (r *Runner) WaitFor(ctx context.Context, name string, position uint64) error {
	p, ok := r.progress[name]
	if !ok {
		return fmt.Errorf("wait for %s@%d: %w", name, position, ErrUnknownProjection)
	}
	for {
		p.mu.Lock()
		pos, loaded, stopped, changed := p.pos, p.loaded, p.stopped, p.changed
		state, failure := p.state, p.err
		p.mu.Unlock()
		if position == 0 || (loaded && pos >= position) {
			return nil
		}
		if state == StateStandby && !p.follower {
			// Another instance applies it: wait on the stored checkpoint.
			// (A follower's state is in this process: it waits until it
			// runs here.)
			stored, err := r.storedCheckpoint(ctx, p, name)
			if err == nil && stored >= position {
				return nil
			}
			if err == nil {
				pos = stored
			}
			t := time.NewTimer(standbyPoll)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("wait for %s@%d (at %d): %w", name, position, pos, ctx.Err())
			}
			t.Stop()
			continue
		}
		if stopped != nil {
			return fmt.Errorf("wait for %s@%d (at %d): %w", name, position, pos, stopped)
		}
		if state == StateParked {
			return fmt.Errorf("wait for %s@%d (at %d): %w: %s", name, position, pos, ErrParked, failure)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s@%d (at %d): %w", name, position, pos, ctx.Err())
		}
	}
}

// standbyPoll is how often WaitFor reads the stored checkpoint of a
// projection another instance applies.
const standbyPoll = 20 * time.Millisecond

// storedCheckpoint is StoredCheckpoint as read at most standbyPoll ago:
// however many requests wait on a standby projection, this instance reads
// its checkpoint once per interval (one waiter reads, the others take
// its answer).
func (r *Runner) storedCheckpoint(ctx context.Context, p *progress, name string) (uint64, error) {
	p.stored.Lock()
	defer p.stored.Unlock()
	if !p.stored.at.IsZero() && time.Since(p.stored.at) < standbyPoll {
		return p.stored.pos, nil
	}
	pos, err := StoredCheckpoint(ctx, r.db, name)
	if err != nil {
		return 0, err
	}
	p.stored.pos, p.stored.at = pos, time.Now()
	return pos, nil
}

// CaughtUp waits until projection name has committed every event the store
// held when it was called: WaitFor with the store's head.
func (r *Runner) CaughtUp(ctx context.Context, name string) error {
	head, err := r.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("wait for %s: read head: %w", name, err)
	}
	return r.WaitFor(ctx, name, head)
}

// Kinds of projection in Status.
const (
	KindReadModel = "read_model" // tables in the read-model database
	KindFollower  = "follower"   // a Follower's state in memory (see Follow)
)

// Status is where a projection stands.
type Status struct {
	Name string
	// Kind is KindReadModel or KindFollower.
	Kind string
	// Skippable: a SideEffecting follower, whose parked event an operator
	// may Skip.
	Skippable bool
	// Ready reports that the projection has caught up to the store's head
	// as it was when Run started (it may lag since) and is not parked.
	Ready bool
	// Position is the global position of the last event committed.
	Position uint64
	// Head is the store's newest position when Status was called.
	Head uint64
	// Lag is Head - Position (0 when the projection is ahead of the Head read).
	Lag uint64
	// Running reports whether Run is in progress.
	Running bool
	// State is what the projection is doing (StateStopped when Run is not
	// in progress).
	State State
	// Error is the last failure while State is StateRetrying or
	// StateParked; "" otherwise.
	Error string
	// ParkedAt is the position of the event the projection is parked at
	// (0 unless parked).
	ParkedAt uint64
	// Failures counts the failed attempts to apply events (or to read
	// them) since the runner was made.
	Failures uint64
}

// Retry un-parks projection name: it resumes from its checkpoint, applying
// the failed event again. It returns ErrUnknownProjection for a name the
// runner does not have and ErrNotParked when the projection is not parked.
func (r *Runner) Retry(name string) error {
	p, ok := r.progress[name]
	if !ok {
		return fmt.Errorf("retry %s: %w", name, ErrUnknownProjection)
	}
	parked := false
	p.update(func() {
		if parked = p.state == StateParked; parked {
			p.state = StateRetrying
		}
	})
	if !parked {
		return fmt.Errorf("retry %s: %w", name, ErrNotParked)
	}
	select {
	case p.retry <- struct{}{}:
	default:
	}
	return nil
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
	var (
		stored    map[string]uint64
		storedErr error
	)
	for i, p := range r.projs {
		name := p.Name()
		pr := r.progress[name]
		pr.mu.Lock()
		pos, loaded := pr.pos, pr.loaded
		st := Status{Name: name, Kind: KindReadModel, Head: head, Running: running, State: pr.state, Error: pr.err,
			ParkedAt: pr.parkedAt, Failures: pr.failures,
			Ready: running && (loaded && pr.pos >= pr.readyAt && pr.state != StateParked || pr.state == StateStandby)}
		pr.mu.Unlock()
		if m, ok := p.(*memory); ok {
			st.Kind, st.Skippable = KindFollower, m.sideEffects()
		}
		if !loaded {
			if stored == nil && storedErr == nil {
				stored, storedErr = r.storedCheckpoints(ctx)
			}
			switch {
			case storedErr == nil:
				pos = stored[name]
			case st.State == StateStandby:
				// The database is out of reach (this runner lost its
				// leadership with it, most likely): the last position known.
				st.Error = storedErr.Error()
			default:
				return nil, storedErr
			}
		}
		st.Position = pos
		if head > pos {
			st.Lag = head - pos
		}
		out[i] = st
	}
	return out, nil
}

func (r *Runner) storedCheckpoints(ctx context.Context) (map[string]uint64, error) {
	// The checkpoint table may not exist yet if no runner ever ran here.
	if err := r.db.Migrate(ctx, runnerOwner, runnerMigrations(r.db.Dialect())); err != nil {
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
