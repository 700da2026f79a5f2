// Package sqlite is the embedded event store: one SQLite file in WAL mode with
// synchronous=FULL, so an acknowledged append survives a crash or power loss.
//
// One writer goroutine owns the write connection. Concurrent appends queue up
// and are group-committed: the writer takes every append waiting, checks each
// one's expected version on its own (a conflict fails that append only), and
// writes the survivors in one transaction with one fsync. One writer also
// gives the log a gap-free global order: positions are 1, 2, 3, ...
//
// The store is fail-stop: after an I/O error on commit (a failed fsync, a
// failed write of the WAL, a full disk) it refuses every further append with
// eventstore.ErrStoreFailed. A failed fsync may have dropped pages the
// kernel still shows as written, so a later successful fsync proves nothing
// ("fsyncgate"); only a restart, which recovers the file from the WAL on
// disk, makes writing safe again. Reads keep working meanwhile.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
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
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the embedded SQLite event store.
type Store struct {
	opts   Options
	path   string
	lock   *os.File
	wdb    *sql.DB // the writer's single connection
	rdb    *sql.DB // readers
	queue  *groupcommit.Queue
	done   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup
	w      *batchWriter

	// The readers' statements, prepared once on rdb: database/sql prepares
	// each on a reader connection the first time it runs there and keeps
	// it, since parsing SQL costs more than running these small queries.
	readStreamQ, readAllQ *sql.Stmt

	head    atomic.Uint64         // position of the newest committed event
	failed  atomic.Pointer[error] // set once by the writer: see fail
	notifyM sync.Mutex
	notify  chan struct{} // closed and replaced after each commit
}

var (
	_ eventstore.Store    = (*Store)(nil)
	_ eventstore.Importer = (*Store)(nil)
)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	position  INTEGER PRIMARY KEY,
	stream    TEXT    NOT NULL,
	revision  INTEGER NOT NULL,
	id        BLOB    NOT NULL,
	type      TEXT    NOT NULL,
	data      BLOB    NOT NULL,
	created   INTEGER NOT NULL,
	correlation_id  TEXT    NOT NULL,
	causation_id    TEXT    NOT NULL,
	actor           TEXT    NOT NULL,
	schema_version  INTEGER NOT NULL,
	idempotency_key TEXT    NOT NULL,
	hash      BLOB    NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_revision ON events(stream, revision);
`

// Open opens (creating if needed) the store in the file at path. The file is
// locked against other processes until Close.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open event store %s: %w", path, err)
	}
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open event store %s: %w", path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("open event store %s: locked by another process: %w", path, err)
	}
	s := &Store{opts: opts, path: path, lock: lock, queue: groupcommit.NewQueue(),
		done: make(chan struct{}), notify: make(chan struct{})}
	if err := s.open(ctx); err != nil {
		s.closeDBs()
		lock.Close()
		return nil, fmt.Errorf("open event store %s: %w", path, err)
	}
	s.wg.Add(1)
	go s.writer()
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	dsn := "file:" + s.path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(OFF)&_pragma=cache_size(-65536)&_txlock=immediate"
	var err error
	if s.wdb, err = sql.Open("sqlite", dsn); err != nil {
		return err
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetMaxIdleConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	s.wdb.SetConnMaxLifetime(0)
	if _, err := s.wdb.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	if s.rdb, err = sql.Open("sqlite", "file:"+s.path+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)"); err != nil {
		return err
	}
	s.rdb.SetMaxOpenConns(8)
	s.rdb.SetMaxIdleConns(8)
	if s.readStreamQ, err = s.rdb.PrepareContext(ctx, readStreamSQL); err != nil {
		return fmt.Errorf("prepare read stream: %w", err)
	}
	if s.readAllQ, err = s.rdb.PrepareContext(ctx, readAllSQL); err != nil {
		return fmt.Errorf("prepare read all: %w", err)
	}
	var head sql.NullInt64
	if err := s.wdb.QueryRowContext(ctx, `SELECT MAX(position) FROM events`).Scan(&head); err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	s.head.Store(uint64(head.Int64))
	s.w, err = newBatchWriter(ctx, s)
	return err
}

func (s *Store) closeDBs() {
	for _, st := range []*sql.Stmt{s.readStreamQ, s.readAllQ} {
		if st != nil {
			st.Close()
		}
	}
	if s.wdb != nil {
		s.wdb.Close()
	}
	if s.rdb != nil {
		s.rdb.Close()
	}
}

// Close stops the writer after the appends already queued, and releases the file.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.queue.Close()
	close(s.done)
	s.wg.Wait()
	s.closeDBs()
	return s.lock.Close()
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Head returns the position of the newest committed event.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.closed.Load() {
		return 0, eventstore.ErrClosed
	}
	return s.head.Load(), nil
}

// Failed implements eventstore.FailStopper: nil while the store accepts
// appends; after an I/O error on commit, the error (wrapping
// eventstore.ErrStoreFailed) every append gets until the process restarts.
func (s *Store) Failed() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail stops the store for good because of err and returns the error
// appends get from now on (the first failure's, if it had failed before).
func (s *Store) fail(err error) error {
	ferr := fmt.Errorf("%w: it refuses appends until a restart recovers from the WAL: %s: %w", eventstore.ErrStoreFailed, s.path, err)
	s.failed.CompareAndSwap(nil, &ferr)
	return *s.failed.Load()
}

// committed returns a channel closed at the next commit.
func (s *Store) committed() <-chan struct{} {
	s.notifyM.Lock()
	defer s.notifyM.Unlock()
	return s.notify
}

func (s *Store) published(head uint64) {
	s.head.Store(head)
	s.notifyM.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyM.Unlock()
}
