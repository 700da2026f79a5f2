package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// MaxEventSize is the per-event size limit Append applies (eventstore.SizeLimited).
func (s *Store) MaxEventSize() int { return s.opts.MaxEventSize }

// Append queues the append for the writer and waits until it is durable.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, s.opts.MaxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, groupcommit.NewAppend(stream, expected, prepared, events))
}

// submit hands req to the writer and waits for its outcome (see
// groupcommit.Submit).
func (s *Store) submit(ctx context.Context, req *groupcommit.Request) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if err := s.Failed(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("%s: %w", req.Op, err)
	}
	return s.queue.Submit(ctx, req)
}

// Import implements eventstore.Importer: it appends events exported from
// another store as they are, in one transaction.
func (s *Store) Import(ctx context.Context, events []eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateImport(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, groupcommit.NewImport(events))
}

// writer is the only goroutine that writes. It drains the queue into group
// commits until Close.
func (s *Store) writer() {
	defer s.wg.Done()
	defer s.w.close()
	s.queue.Run(s.opts.MaxBatchEvents, s.opts.NoGroupCommit, s.w.commit)
}

// batchWriter holds the writer's state between commits: prepared statements
// and a cache of stream heads (valid because this goroutine is the only
// writer of the file).
type batchWriter struct {
	s       *Store
	heads   map[string]groupcommit.Head
	inserts map[int]*sql.Stmt // multi-row INSERTs by row count, powers of two
	headQ   *sql.Stmt         // the newest event of a stream
	storedQ *sql.Stmt         // a stream's events from a revision on
}

const (
	maxCachedHeads = 1 << 16
	rowsPerInsert  = 128 // 13 columns each: well under SQLite's 32766 variables
)

// newBatchWriter prepares the writer's statements. It must run before the
// writer starts: the write pool has one connection, so nothing can be
// prepared on it while a transaction holds it.
func newBatchWriter(ctx context.Context, s *Store) (*batchWriter, error) {
	w := &batchWriter{s: s, heads: make(map[string]groupcommit.Head), inserts: map[int]*sql.Stmt{}}
	prepare := func(q string) *sql.Stmt {
		st, err := s.wdb.PrepareContext(ctx, q)
		if err != nil {
			panic(fmt.Errorf("prepare %q: %w", q, err))
		}
		return st
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = r.(error)
			}
		}()
		w.headQ = prepare(`SELECT revision, hash FROM events WHERE stream = ? ORDER BY revision DESC LIMIT 1`)
		w.storedQ = prepare(readStreamSQL)
		for n := 1; n <= rowsPerInsert; n *= 2 {
			w.inserts[n] = prepare(`INSERT INTO events(` + columns + `) VALUES ` +
				strings.TrimSuffix(strings.Repeat(`(?,?,?,?,?,?,?,?,?,?,?,?,?),`, n), ","))
		}
	}()
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *batchWriter) close() {
	for _, st := range []*sql.Stmt{w.headQ, w.storedQ} {
		if st != nil {
			st.Close()
		}
	}
	for _, st := range w.inserts {
		st.Close()
	}
}

// commit writes a group of appends in one transaction and answers each.
// Once the store has failed it writes nothing and answers the failure.
func (w *batchWriter) commit(batch []*groupcommit.Request) {
	if err := w.s.Failed(); err != nil {
		for _, req := range batch {
			req.Answer(groupcommit.Result{Err: fmt.Errorf("%s: %w", req.Op, err)})
		}
		return
	}
	b := &txBatch{w: w, ctx: context.Background()}
	results, err := b.write(batch)
	if err != nil {
		// Nothing of this batch was acknowledged: forget cached heads and
		// tell everyone. After an I/O error the store stops for good.
		if unrecoverable(err) {
			err = w.s.fail(err)
		}
		clear(w.heads)
		results = make([]groupcommit.Result, len(batch))
		for i, req := range batch {
			results[i] = groupcommit.Result{Err: fmt.Errorf("%s: %w", req.Op, err)}
		}
	} else {
		if len(w.heads) > maxCachedHeads {
			clear(w.heads)
		}
		for stream, h := range b.plan.Pending {
			w.heads[stream] = h
		}
		if b.plan.Pos > w.s.head.Load() {
			w.s.published(b.plan.Pos)
		}
	}
	for i, req := range batch {
		req.Answer(results[i])
	}
}

// txBatch is one group commit in the making: the plan's Source.
type txBatch struct {
	w    *batchWriter
	ctx  context.Context
	tx   *sql.Tx
	plan *groupcommit.Plan
}

// write plans every append of the batch against the stream heads, then
// writes all rows with multi-row INSERTs and commits once.
func (b *txBatch) write(batch []*groupcommit.Request) ([]groupcommit.Result, error) {
	var err error
	if b.tx, err = b.w.s.wdb.BeginTx(b.ctx, nil); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer b.tx.Rollback()
	var results []groupcommit.Result
	b.plan, results, err = groupcommit.Decide(b, b.w.s.head.Load(), batch, b.w.s.opts.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	if err := b.insert(); err != nil {
		return nil, err
	}
	if err := b.tx.Commit(); err != nil {
		return nil, &commitError{err}
	}
	return results, nil
}

// commitError is a failed COMMIT. Its outcome is unknown: the batch's WAL
// frames may be on disk (a restart then recovers them: a retry with the
// same events is recognised) or lost with a failed fsync.
type commitError struct{ err error }

func (e *commitError) Error() string { return "commit: " + e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// unrecoverable reports whether err, which failed a group commit, must stop
// the store: any failed COMMIT, and any I/O, disk-full, corruption or
// not-a-database error from SQLite. Other errors (a statement the writer
// built wrongly, say) fail that batch only.
func unrecoverable(err error) bool {
	if ce := (*commitError)(nil); errors.As(err, &ce) {
		return true
	}
	var se *sqlitedriver.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // the primary result code of an extended one
	case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// Stored implements groupcommit.Source: whole events, contents included
// (a retry is recognised only when they are the same). It runs only when
// an append may be a retry, never on the path of a fresh append.
func (b *txBatch) Stored(stream string, from uint64, limit int) ([]eventstore.Event, error) {
	rows, err := b.tx.StmtContext(b.ctx, b.w.storedQ).QueryContext(b.ctx, stream, from, limit)
	if err != nil {
		return nil, err
	}
	return scan(rows, limit)
}

// insert writes the planned rows with as few statements as it can.
func (b *txBatch) insert() error {
	rows := b.plan.Rows
	args := make([]any, 0, 13*min(len(rows), rowsPerInsert))
	for len(rows) > 0 {
		n := rowsPerInsert
		for n > len(rows) {
			n /= 2
		}
		args = args[:0]
		for _, e := range rows[:n] {
			m := e.Metadata
			args = append(args, e.Position, e.Stream, e.Revision, e.ID[:], e.Type, []byte(e.Data), e.Created.UnixMicro(),
				m.CorrelationID, m.CausationID, m.Actor, m.SchemaVersion, m.IdempotencyKey, e.Hash[:])
		}
		if _, err := b.tx.StmtContext(b.ctx, b.w.inserts[n]).ExecContext(b.ctx, args...); err != nil {
			return fmt.Errorf("insert %d events from %s: %w", n, rows[0], err)
		}
		rows = rows[n:]
	}
	return nil
}

// Head implements groupcommit.Source: a stream's head as committed, from
// the writer's cache (valid because it is the only writer of the file)
// or the file.
func (b *txBatch) Head(stream string) (groupcommit.Head, error) {
	if h, ok := b.w.heads[stream]; ok {
		return h, nil
	}
	var h groupcommit.Head
	var hash []byte
	err := b.tx.StmtContext(b.ctx, b.w.headQ).QueryRowContext(b.ctx, stream).Scan(&h.Next, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return groupcommit.Head{}, nil
	case err != nil:
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	h.Next++
	copy(h.Hash[:], hash)
	return h, nil
}
