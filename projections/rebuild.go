package projections

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coinledger/coinledger/eventstore"
)

// Rebuild errors.
var (
	// ErrRebuilding: a rebuild of the projection is already in progress.
	ErrRebuilding = errors.New("projection already rebuilding")
	// ErrJobNotFound: no rebuild job has that id (jobs live in memory and
	// are forgotten at a restart).
	ErrJobNotFound = errors.New("rebuild job not found")
	// ErrNoShadow: the read-model database cannot hold a shadow copy (it
	// does not implement Shadowing).
	ErrNoShadow = errors.New("read-model database cannot rebuild beside the live tables")
)

// Versioned is an optional capability of a read-model Projection: the
// version of the code that folds it. Bump it when Apply changes what it
// writes for the same events; the Runner stores the version a read model
// was built with, and at start rebuilds (blue/green, see Runner.Rebuild) a
// read model built with another version while the old one keeps serving.
// A read model built before versions were recorded counts as version 1.
// Until the swap the live tables serve and go on being followed, by the
// new code (their schema migrated as usual): rows written before the start
// are the old version's.
type Versioned interface {
	Version() int
}

// Shadowing is an optional capability of a DB: a second, empty database
// beside it in which a projection is rebuilt while its live tables serve
// (a separate SQLite file, a separate Postgres schema). The projection's
// SQL, written with fixed table names, runs unchanged against the shadow.
type Shadowing interface {
	// OpenShadow creates an empty shadow database for a rebuild of the
	// projection named name, replacing whatever an earlier, interrupted
	// rebuild of that name left behind.
	OpenShadow(ctx context.Context, name string) (Shadow, error)
}

// Shadow is the database a projection is rebuilt in.
type Shadow interface {
	DB
	// Swap moves the shadow's tables into the live database in one live
	// transaction: every table of the shadow except schema_migrations
	// replaces the live table of the same name (rows and indexes), and fn
	// runs in the same transaction. Readers of the live database see the
	// old tables until it commits and the new ones after, never neither.
	Swap(ctx context.Context, fn func(tx Tx) error) error
	// Drop closes the shadow and deletes it with whatever tables it still
	// holds.
	Drop(ctx context.Context) error
}

// JobState is where a rebuild job stands.
type JobState string

// The states of a rebuild job.
const (
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// Job is a rebuild of one read model, as Runner.Rebuild started it.
type Job struct {
	ID         string
	Projection string
	State      JobState
	// Reason is "requested" (Runner.Rebuild) or "version" (the code's
	// version differs from the stored one).
	Reason string
	// Position is the position the shadow copy has reached; Head the
	// store's head as last read.
	Position, Head uint64
	// Events counts the events read so far; EventsPerSecond is the rate
	// since the start.
	Events, EventsPerSecond uint64
	StartedAt               time.Time
	FinishedAt              time.Time // zero while running
	Error                   string    // why it failed
}

// Job reasons.
const (
	ReasonRequested = "requested"
	ReasonVersion   = "version"
)

// jobs holds the rebuild jobs of a Runner.
type jobs struct {
	mu      sync.Mutex
	all     []*Job
	active  map[string]*Job // projection → its running job
	pending []*Job          // accepted, not yet started by Run
	wake    chan struct{}   // a job is pending
}

func newJobs() *jobs { return &jobs{active: map[string]*Job{}, wake: make(chan struct{}, 1)} }

// maxJobs bounds how many finished jobs are remembered.
const maxJobs = 100

// add records a new running job for name, or fails with ErrRebuilding.
func (js *jobs) add(name, reason string) (Job, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	js.mu.Lock()
	defer js.mu.Unlock()
	if _, busy := js.active[name]; busy {
		return Job{}, fmt.Errorf("rebuild %s: %w", name, ErrRebuilding)
	}
	j := &Job{ID: hex.EncodeToString(id[:]), Projection: name, State: JobRunning, Reason: reason, StartedAt: time.Now().UTC()}
	js.active[name] = j
	js.pending = append(js.pending, j)
	js.all = append(js.all, j)
	if len(js.all) > maxJobs {
		if i := slices.IndexFunc(js.all, func(j *Job) bool { return j.State != JobRunning }); i >= 0 {
			js.all = slices.Delete(js.all, i, i+1)
		}
	}
	select {
	case js.wake <- struct{}{}:
	default:
	}
	return *j, nil
}

// take returns the pending jobs and forgets them.
func (js *jobs) take() []*Job {
	js.mu.Lock()
	defer js.mu.Unlock()
	p := js.pending
	js.pending = nil
	return p
}

// update changes j under the lock.
func (js *jobs) update(j *Job, f func(j *Job)) {
	js.mu.Lock()
	defer js.mu.Unlock()
	f(j)
}

// finish ends j with err (nil: done).
func (js *jobs) finish(j *Job, err error) {
	js.mu.Lock()
	defer js.mu.Unlock()
	j.State, j.FinishedAt = JobDone, time.Now().UTC()
	if err != nil {
		j.State, j.Error = JobFailed, err.Error()
	}
	if js.active[j.Projection] == j {
		delete(js.active, j.Projection)
	}
}

// Rebuild starts a blue/green rebuild of the read model name and returns
// its job; the rebuild runs within Run (a job accepted while Run is not in
// progress starts when it is). The rebuild folds the whole log, from
// position 0, into a shadow copy (see Shadowing) in large transactions
// while the live tables keep serving and the live projection keeps
// following; once the shadow has caught up, the live projection is held at
// its checkpoint, the shadow brought to exactly that position, and the
// tables swapped in one transaction that also sets the checkpoint and the
// code version (the schema version is the code's already: Run migrated the
// live tables with the same steps); the live projection then goes on
// from there and the old tables are dropped. Queries see the old model or
// the new one, never an empty or half-built one. Nothing but the shadow's
// tables is written, so a rebuild fires no side effect.
//
// It fails with ErrUnknownProjection for a name that is not a read model of
// this runner (followers, see Follow, are never rebuilt this way: one of a
// new version starts over from the first event by itself), ErrRebuilding
// while one is in progress, and ErrNoShadow when the database cannot hold
// a shadow.
func (r *Runner) Rebuild(name string) (Job, error) {
	if _, ok := r.readModel(name); !ok {
		return Job{}, fmt.Errorf("rebuild %s: %w", name, ErrUnknownProjection)
	}
	if _, ok := r.db.(Shadowing); !ok {
		return Job{}, fmt.Errorf("rebuild %s: %w", name, ErrNoShadow)
	}
	return r.jobs.add(name, ReasonRequested)
}

// Job returns the rebuild job id, or ErrJobNotFound.
func (r *Runner) Job(id string) (Job, error) {
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	for _, j := range r.jobs.all {
		if j.ID == id {
			return *j, nil
		}
	}
	return Job{}, fmt.Errorf("rebuild job %s: %w", id, ErrJobNotFound)
}

// Jobs returns the rebuild jobs of this process, oldest first (the last
// hundred finished ones and every running one).
func (r *Runner) Jobs() []Job {
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	out := make([]Job, len(r.jobs.all))
	for i, j := range r.jobs.all {
		out[i] = *j
	}
	return out
}

// ReadModel is a read model's status with its code version and the
// rebuild in progress, if any.
type ReadModel struct {
	Status
	// Version is the code's version (see Versioned; 0 when unversioned).
	Version int
	// Rebuild is the id of the running rebuild job ("" when none).
	Rebuild string
}

// ReadModels reports the status of every read model (every projection
// but the followers), in the order given to NewRunner.
func (r *Runner) ReadModels(ctx context.Context) ([]ReadModel, error) {
	st, err := r.Status(ctx)
	if err != nil {
		return nil, err
	}
	r.jobs.mu.Lock()
	defer r.jobs.mu.Unlock()
	var out []ReadModel
	for i, p := range r.projs {
		if _, follower := p.(*memory); follower {
			continue
		}
		m := ReadModel{Status: st[i], Version: versionOf(p)}
		if j := r.jobs.active[p.Name()]; j != nil {
			m.Rebuild = j.ID
		}
		out = append(out, m)
	}
	return out, nil
}

// readModel returns the projection name unless it is unknown or a follower.
func (r *Runner) readModel(name string) (Projection, bool) {
	p := r.projection(name)
	_, follower := p.(*memory)
	return p, p != nil && !follower
}

func versionOf(p Projection) int {
	if v, ok := p.(Versioned); ok {
		return v.Version()
	}
	return 0
}

// Owner of the table of read-model code versions.
const versionsOwner = "projection_versions"

var versionsMigrations = []string{
	`CREATE TABLE projection_versions (
		name    TEXT PRIMARY KEY,
		version BIGINT NOT NULL
	)`,
}

// rebuilds runs within Run (in g): it records the code version of new
// read models, starts a rebuild of those whose stored version differs
// (when the database can shadow), then starts every job Rebuild accepts,
// until ctx is done. A failed rebuild fails its job, never the runner.
func (r *Runner) rebuilds(ctx context.Context, g interface{ Go(func() error) }) error {
	if _, ok := r.db.(Shadowing); ok {
		err := r.retryTransient(ctx, "check versions", func() error { return r.checkVersions(ctx) })
		if err != nil && ctx.Err() == nil {
			r.opts.Logger.Error("projections version check failed", "err", err)
		}
	}
	for {
		for _, j := range r.jobs.take() {
			g.Go(func() error {
				// A transient failure (the database restarting) starts
				// the rebuild over after a backoff.
				err := r.retryTransient(ctx, "rebuild "+j.Projection, func() error { return r.rebuild(ctx, j) })
				r.jobs.finish(j, err)
				if err != nil {
					r.opts.Logger.Error("projection rebuild failed", "projection", j.Projection, "job", j.ID, "err", err)
				} else {
					r.opts.Logger.Info("projection rebuilt", "projection", j.Projection, "job", j.ID,
						"position", j.Position, "events", j.Events)
				}
				return nil
			})
		}
		select {
		case <-r.jobs.wake:
		case <-ctx.Done():
			return nil // jobs not yet taken stay pending for the next Run
		}
	}
}

// checkVersions compares each versioned read model's stored version with
// the code's: it stores the code's for a read model never built or built
// before versions were recorded (as version 1), and starts a rebuild of
// one built with another version.
func (r *Runner) checkVersions(ctx context.Context) error {
	if err := r.db.Migrate(ctx, versionsOwner, versionsMigrations); err != nil {
		return fmt.Errorf("check versions: %w", err)
	}
	stored := map[string]int64{}
	rows, err := r.db.Query(ctx, `SELECT name, version FROM projection_versions`)
	if err != nil {
		return fmt.Errorf("check versions: %w", err)
	}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			rows.Close()
			return fmt.Errorf("check versions: %w", err)
		}
		stored[name] = v
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("check versions: %w", err)
	}
	for _, p := range r.projs {
		v, ok := p.(Versioned) // never a follower: memory has no Version
		if !ok {
			continue
		}
		name, code := p.Name(), int64(v.Version())
		have, known := stored[name]
		if !known {
			pr := r.progress[name]
			pr.mu.Lock()
			built := pr.pos > 0
			pr.mu.Unlock()
			if have = code; built {
				have = 1
			}
			if err := r.db.Update(ctx, func(tx Tx) error { return setVersion(ctx, tx, name, have) }); err != nil {
				return fmt.Errorf("check versions: %w", err)
			}
		}
		if have == code {
			continue
		}
		j, err := r.jobs.add(name, ReasonVersion)
		if errors.Is(err, ErrRebuilding) {
			continue
		}
		if err != nil {
			return err
		}
		r.opts.Logger.Info("projection version changed: rebuilding", "projection", name, "stored_version", have,
			"version", code, "job", j.ID)
	}
	return nil
}

func setVersion(ctx context.Context, tx Tx, name string, v int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO projection_versions (name, version) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET version = excluded.version`, name, v)
	if err != nil {
		return fmt.Errorf("store version of %s: %w", name, err)
	}
	return nil
}

// rebuild runs job j (see Rebuild).
func (r *Runner) rebuild(ctx context.Context, j *Job) error {
	name := j.Projection
	p, _ := r.readModel(name)
	sh, ok := r.db.(Shadowing)
	if !ok {
		return fmt.Errorf("rebuild %s: %w", name, ErrNoShadow)
	}
	shadow, err := sh.OpenShadow(ctx, name)
	if err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	defer func() {
		// What is left is dropped by the next rebuild of name.
		if err := shadow.Drop(context.WithoutCancel(ctx)); err != nil {
			r.opts.Logger.Warn("projection rebuild: drop shadow", "projection", name, "job", j.ID, "err", err)
		}
	}()
	steps := p.Migrations(r.db.Dialect())
	if err := shadow.Migrate(ctx, name, steps); err != nil {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	b := &builder{r: r, p: p, db: shadow, job: j, start: time.Now()}
	// Catch up with the head, and again while it moved by more than a
	// batch meanwhile.
	for {
		head, err := r.store.Head(ctx)
		if err != nil {
			return fmt.Errorf("rebuild %s: read head: %w", name, err)
		}
		if head <= b.pos {
			break
		}
		gap := head - b.pos
		if err := b.fill(ctx, head); err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
		if gap <= uint64(r.opts.MaxBatch) {
			break
		}
	}
	// Hold the live projection at a checkpoint at or past the shadow's
	// (unless it is parked: it holds where it stands), bring the shadow
	// there, swap.
	if err := r.WaitFor(ctx, name, b.pos); err != nil && !errors.Is(err, ErrParked) {
		return fmt.Errorf("rebuild %s: %w", name, err)
	}
	req := &pauseReq{held: make(chan uint64, 1), resume: make(chan resumeMsg, 1), resumed: make(chan struct{})}
	select {
	case r.progress[name].pause <- req:
	case <-ctx.Done():
		return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
	}
	var msg resumeMsg
	sent := false
	defer func() {
		if !sent {
			req.resume <- msg // buffered: never blocks
		}
	}()
	var live uint64
	select {
	case live = <-req.held:
	case <-ctx.Done():
		return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
	}
	if live > b.pos {
		if err := b.fill(ctx, live); err != nil {
			return fmt.Errorf("rebuild %s: %w", name, err)
		}
	}
	final := max(live, b.pos)
	version := int64(versionOf(p))
	err = shadow.Swap(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET position = ? WHERE name = ?`, int64(final), name); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		// The live schema version needs no update: Run migrated the live
		// tables with the same steps before any rebuild started.
		if _, versioned := p.(Versioned); versioned {
			if err := setVersion(ctx, tx, name, version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rebuild %s: swap at %d: %w", name, final, err)
	}
	msg = resumeMsg{swapped: true, pos: final}
	req.resume <- msg
	sent = true
	// Done once the live projection goes on from the new tables (a parked
	// one un-parked): who sees the job done sees that too.
	select {
	case <-req.resumed:
	case <-ctx.Done():
		return fmt.Errorf("rebuild %s: %w", name, ctx.Err())
	}
	r.jobs.update(j, func(j *Job) { j.Position = final })
	return nil
}

// builder folds the log into a shadow database.
type builder struct {
	r     *Runner
	p     Projection
	db    DB
	job   *Job
	pos   uint64 // last event folded (or skipped)
	n     uint64 // events read
	start time.Time
}

// fill folds the events after b.pos up to position to (inclusive) into
// b.db, MaxBatch events per transaction, reading the next batch while the
// current one is written.
func (b *builder) fill(ctx context.Context, to uint64) error {
	type batch struct {
		events []eventstore.Event
		err    error
	}
	ctx, cancel := context.WithCancel(ctx)
	batches := make(chan batch, 1)
	var reader sync.WaitGroup
	defer func() {
		cancel()
		reader.Wait()
	}()
	reader.Go(func() {
		defer close(batches)
		after := b.pos
		for after < to {
			events, err := b.r.store.ReadAll(ctx, after, b.r.opts.MaxBatch)
			if err == nil && len(events) == 0 {
				err = fmt.Errorf("read after %d: the log ends before %d", after, to)
			}
			if err != nil {
				select {
				case batches <- batch{err: err}:
				case <-ctx.Done():
				}
				return
			}
			if i := len(events); events[i-1].Position > to {
				if events = events[:upTo(events, to)]; len(events) == 0 {
					return // to was no event's position: nothing more up to it
				}
			}
			after = events[len(events)-1].Position
			select {
			case batches <- batch{events: events}:
			case <-ctx.Done():
				return
			}
		}
	})
	for bt := range batches {
		if bt.err != nil {
			return fmt.Errorf("at %d: %w", b.pos, bt.err)
		}
		events := bt.events
		if !skip(b.p, events) { // as the runner applies: whole batches, unless none of it is wanted
			err := b.db.Update(ctx, func(tx Tx) error { return b.p.Apply(ctx, tx, events) })
			if err != nil {
				return &applyError{first: events[0].Position, last: events[len(events)-1].Position, n: len(events), err: err}
			}
		}
		b.pos = events[len(events)-1].Position
		b.n += uint64(len(events))
		rate := uint64(float64(b.n) / max(time.Since(b.start).Seconds(), 1e-3))
		b.r.jobs.update(b.job, func(j *Job) {
			j.Position, j.Head, j.Events, j.EventsPerSecond = b.pos, max(j.Head, to), b.n, rate
		})
	}
	return ctx.Err()
}

// pauseReq asks a live projection's applier to hold where it stands for a
// rebuild's swap: between two transactions, it sends its position on held
// and waits on resume.
type pauseReq struct {
	held    chan uint64    // buffered 1
	resume  chan resumeMsg // buffered 1
	resumed chan struct{}  // closed by the applier once it has taken resume in
}

// resumeMsg ends a hold: when swapped, the stored checkpoint is now pos.
type resumeMsg struct {
	swapped bool
	pos     uint64
}

// errResubscribe ends an applier whose checkpoint a swap moved past the
// events its feed holds: it resumes on a subscription of its own from the
// new checkpoint.
var errResubscribe = errors.New("checkpoint moved by a rebuild: resubscribing")

// holdForRebuild holds a running applier (called from apply between two
// transactions) at its position, the larger of *checkpoint and *skipped,
// until the rebuild that sent req resumes it. After a swap the stored
// checkpoint is the rebuild's: *checkpoint follows, and when it is not
// the position held (the rebuild's shadow was ahead) the applier must
// resubscribe (errResubscribe).
func (r *Runner) holdForRebuild(ctx context.Context, pr *progress, req *pauseReq, checkpoint, skipped *uint64) error {
	pos := max(*checkpoint, *skipped)
	req.held <- pos
	var m resumeMsg
	select {
	case m = <-req.resume:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer close(req.resumed)
	if !m.swapped {
		return nil
	}
	*checkpoint, *skipped = m.pos, m.pos
	pr.update(func() { pr.pos = max(pr.pos, m.pos) })
	if m.pos != pos {
		return errResubscribe
	}
	return nil
}

// holdParked holds a parked projection (called from follow) for the
// rebuild that sent req and reports whether the rebuild swapped: then
// *checkpoint is the rebuild's and the projection is no longer parked.
func (r *Runner) holdParked(ctx context.Context, pr *progress, req *pauseReq, checkpoint *uint64) bool {
	req.held <- *checkpoint
	var m resumeMsg
	select {
	case m = <-req.resume:
	case <-ctx.Done():
		return false
	}
	defer close(req.resumed)
	if !m.swapped {
		return false
	}
	*checkpoint = m.pos
	pr.update(func() {
		pr.pos = max(pr.pos, m.pos)
		pr.state, pr.err, pr.parkedAt = StateCatchingUp, "", 0
	})
	// The swap un-parked it: a retry asked meanwhile is spent, and must not
	// un-park a later failure by itself.
	select {
	case <-pr.retry:
	default:
	}
	return true
}
