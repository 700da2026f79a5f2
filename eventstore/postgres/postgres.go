// Package postgres is the event store on PostgreSQL, for several service
// instances sharing one log. It implements eventstore.Store and
// eventstore.Importer with a pgx connection pool.
//
// # Global order
//
// Positions are assigned in commit order, so they are gap-free (1, 2, 3,
// ...) and every reader's snapshot sees a prefix of the log. Every append
// transaction first locks the one row of the log_head table (SELECT ...
// FOR UPDATE), reads the last position from it, inserts its events after
// it and writes the new last position back before it commits. The row lock
// serializes the appends of every process: a second writer gets the row
// only once the first has committed, and PostgreSQL makes a transaction
// visible before it releases its locks, so the second one's events, with
// higher positions, always become visible after the first one's. A reader
// can therefore never see position n+1 without n, and ReadAll and
// Subscribe, which read "position > after" in order, never skip an event
// that commits later with a lower position: there is none. A rolled-back
// append rolls back its head update too, so no position is ever lost.
//
// The price is that appends are serial across processes, one transaction
// (one WAL flush) at a time. Group commit recovers the throughput: each
// Store's writer goroutine takes every append waiting in its process and
// writes them in one transaction, checking each one's expected version on
// its own (a conflict fails that append only).
//
// # Idempotence
//
// A retry is recognised as in the contract (by event ids at the place the
// original went, or among the stream's last 32 events for Any and
// StreamExists), and only when the events are the same: ids, types, data
// and metadata. Events with the ids of stored ones but other contents are
// a conflict (eventstore.ErrConflict), as are ids that match only in part.
//
// # Live tail
//
// Each append transaction sends a NOTIFY on a channel named after the
// schema; a listener connection per Store wakes the subscriptions. While
// the listener is disconnected subscriptions poll (every PollInterval), and
// they also poll slowly while it is connected, so a lost notification
// delays an event but never loses it.
//
// # Snapshots
//
// Snapshots (an eventstore.SnapshotStore) keeps aggregate snapshots in an
// UNLOGGED table beside the log, shared by every process on it.
//
// # Errors
//
// Failures to reach the server (refused or lost connections, the server
// shutting down or starting) wrap eventstore.ErrUnavailable. An append
// whose COMMIT failed that way has an unknown outcome: retrying it with the
// same events (ids and contents) is recognised as a retry if it was written.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
	"github.com/coinledger/coinledger/internal/pg"
)

// Options tune the store. The zero value is the production default.
type Options struct {
	// MaxEventSize limits one event's data plus metadata (default eventstore.DefaultMaxEventSize).
	MaxEventSize int
	// MaxBatchEvents caps how many events one group commit writes (default 4096).
	MaxBatchEvents int
	// NoGroupCommit commits every append in its own transaction. It exists to
	// measure what group commit buys; never use it in production.
	NoGroupCommit bool
	// CommitTimeout bounds one group commit, the wait for the log head's
	// lock included (default 30s); appends that run out of it fail with
	// eventstore.ErrUnavailable, their outcome unknown.
	CommitTimeout time.Duration
	// PollInterval is how often subscriptions look for new events while the
	// notification listener is disconnected (default 250ms); while it is
	// connected they look every 20 PollIntervals anyway.
	PollInterval time.Duration
	// Now is the clock for event creation times (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxEventSize <= 0 {
		o.MaxEventSize = eventstore.DefaultMaxEventSize
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 4096
	}
	if o.CommitTimeout <= 0 {
		o.CommitTimeout = 30 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the PostgreSQL event store.
type Store struct {
	opts    Options
	pool    *pgxpool.Pool
	channel string // the NOTIFY channel of this schema's log
	queue   *groupcommit.Queue
	done    chan struct{}
	closed  atomic.Bool
	wg      sync.WaitGroup

	listening atomic.Bool // the listener connection is up
	notifyM   sync.Mutex
	notify    chan struct{} // closed and replaced when new events may be visible
}

var (
	_ eventstore.Store    = (*Store)(nil)
	_ eventstore.Importer = (*Store)(nil)
)

// The schema. Strings are stored as bytea, exactly the bytes appended
// (PostgreSQL's text refuses NUL bytes and invalid UTF-8, which event
// names and JSON strings may hold); created is in microseconds since the
// Unix epoch, the precision the hash covers.
const schema = `
CREATE TABLE IF NOT EXISTS events (
	position        bigint  PRIMARY KEY,
	stream          bytea   NOT NULL,
	revision        bigint  NOT NULL,
	id              bytea   NOT NULL,
	type            bytea   NOT NULL,
	data            bytea   NOT NULL,
	created         bigint  NOT NULL,
	correlation_id  bytea   NOT NULL,
	causation_id    bytea   NOT NULL,
	actor           bytea   NOT NULL,
	schema_version  integer NOT NULL,
	idempotency_key bytea   NOT NULL,
	hash            bytea   NOT NULL,
	UNIQUE (stream, revision)
);
CREATE TABLE IF NOT EXISTS log_head (
	one      boolean PRIMARY KEY DEFAULT true CHECK (one),
	position bigint  NOT NULL
);
INSERT INTO log_head (one, position) VALUES (true, 0) ON CONFLICT DO NOTHING;
`

// Open connects to the database at url (a postgres:// URL or key=value
// DSN; a search_path parameter selects the schema, created if missing),
// creates the tables if needed and starts the writer and the notification
// listener. Close releases everything.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	opts.setDefaults()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("open event store: cannot parse the Postgres URL")
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if err := pg.CreateSchema(ctx, cfg.ConnConfig); err != nil {
		return nil, fmt.Errorf("open event store on %s: %w", where, unavailable(err))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open event store on %s: %w", where, unavailable(err))
	}
	s := &Store{opts: opts, pool: pool, queue: groupcommit.NewQueue(),
		done: make(chan struct{}), notify: make(chan struct{})}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open event store on %s: %w", where, unavailable(err))
	}
	s.wg.Add(2)
	go s.writer()
	go s.listen()
	return s, nil
}

// migrate creates the tables under a transaction-level advisory lock (two
// processes opening a fresh schema at once would otherwise race in
// CREATE TABLE IF NOT EXISTS) and names the notification channel after
// the schema, as channels are per database.
func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var current string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&current); err != nil {
		return fmt.Errorf("current schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, current+"/coinledger/eventstore"); err != nil {
		return fmt.Errorf("lock schema: %w", err)
	}
	for _, q := range []string{schema, snapshotSchema} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("create tables: %w", err)
		}
	}
	h := fnv.New64a()
	h.Write([]byte(current))
	s.channel = fmt.Sprintf("coinledger_events_%016x", h.Sum64())
	return tx.Commit(ctx)
}

// Close stops the writer after the appends already queued and closes the pool.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.queue.Close()
	close(s.done)
	s.wg.Wait()
	s.pool.Close()
	return nil
}

// MaxEventSize is the per-event size limit Append applies (eventstore.SizeLimited).
func (s *Store) MaxEventSize() int { return s.opts.MaxEventSize }

// Head returns the position of the newest committed event.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	var head int64
	if err := s.pool.QueryRow(ctx, `SELECT position FROM log_head`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read head: %w", s.translate(err))
	}
	return uint64(head), nil
}

// translate turns a driver error into the store's: ErrClosed once the store
// is closed, else the error, wrapping eventstore.ErrUnavailable when the
// server could not be reached.
func (s *Store) translate(err error) error {
	if s.closed.Load() && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", eventstore.ErrClosed, err)
	}
	return unavailable(err)
}

// unavailable wraps err in eventstore.ErrUnavailable when it is a failure
// to reach the server that may pass (see pg.Unreachable). Other errors are
// returned as they are.
func unavailable(err error) error {
	if errors.Is(err, eventstore.ErrUnavailable) || !pg.Unreachable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
}

// changed returns a channel closed when new events may be visible.
func (s *Store) changed() <-chan struct{} {
	s.notifyM.Lock()
	defer s.notifyM.Unlock()
	return s.notify
}

// wake tells the subscriptions that new events may be visible.
func (s *Store) wake() {
	s.notifyM.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyM.Unlock()
}
