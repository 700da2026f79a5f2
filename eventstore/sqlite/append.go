package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

type appendReq struct {
	stream    string
	expected  eventstore.ExpectedVersion
	events    []eventstore.EventData
	retryable bool               // ids chosen by the caller: may repeat an earlier append
	imported  []eventstore.Event // an Import: events kept as they are (events is empty)
	result    chan appendResult
}

type appendResult struct {
	res eventstore.AppendResult
	err error
}

// MaxEventSize is the per-event size limit Append applies (eventstore.SizeLimited).
func (s *Store) MaxEventSize() int { return s.opts.MaxEventSize }

// Append queues the append for the writer and waits until it is durable.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, s.opts.MaxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, "append "+stream, &appendReq{stream: stream, expected: expected, events: prepared,
		retryable: eventstore.Retryable(events), result: make(chan appendResult, 1)})
}

// submit hands req to the writer and waits for its outcome. Once queued
// the request is carried out even if ctx ends: the caller then cannot know
// the outcome, exactly as with a network store.
func (s *Store) submit(ctx context.Context, op string, req *appendReq) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	if err := s.Failed(); err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("%s: %w", op, err)
	}
	select {
	case s.reqs <- req:
	case <-s.done:
		return eventstore.AppendResult{}, eventstore.ErrClosed
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	}
	select {
	case r := <-req.result:
		return r.res, r.err
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	}
}

// Import implements eventstore.Importer: it appends events exported from
// another store as they are, in one transaction.
func (s *Store) Import(ctx context.Context, events []eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateImport(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, "import", &appendReq{stream: events[0].Stream, imported: events, result: make(chan appendResult, 1)})
}

// writer is the only goroutine that writes. It drains the queue into group
// commits until Close.
func (s *Store) writer() {
	defer s.wg.Done()
	w := s.w
	defer w.close()
	var batch []*appendReq
	for {
		var first *appendReq
		select {
		case first = <-s.reqs:
		case <-s.done:
			// Finish what was queued before Close.
			for {
				select {
				case r := <-s.reqs:
					w.commit([]*appendReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		n := len(first.events) + len(first.imported)
	drain:
		for !s.opts.NoGroupCommit && n < s.opts.MaxBatchEvents {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				n += len(r.events) + len(r.imported)
			default:
				break drain
			}
		}
		w.commit(batch)
	}
}

type streamHead struct {
	next uint64
	hash eventstore.Hash
}

// batchWriter holds the writer's state between commits: prepared statements
// and a cache of stream heads (valid because this goroutine is the only
// writer of the file).
type batchWriter struct {
	s       *Store
	heads   map[string]streamHead
	inserts map[int]*sql.Stmt // multi-row INSERTs by row count, powers of two
	headQ   *sql.Stmt         // the newest event of a stream
	idsQ    *sql.Stmt         // ids and positions of a stream's events from a revision on
}

const (
	maxCachedHeads = 1 << 16
	rowsPerInsert  = 128 // 13 columns each: well under SQLite's 32766 variables
	// retryWindow is how many recent events of a stream an Any or
	// StreamExists append is compared with to recognise a retry.
	retryWindow = 32
)

// newBatchWriter prepares the writer's statements. It must run before the
// writer starts: the write pool has one connection, so nothing can be
// prepared on it while a transaction holds it.
func newBatchWriter(ctx context.Context, s *Store) (*batchWriter, error) {
	w := &batchWriter{s: s, heads: make(map[string]streamHead), inserts: map[int]*sql.Stmt{}}
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
		w.idsQ = prepare(`SELECT id, revision, position FROM events WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`)
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
	for _, st := range []*sql.Stmt{w.headQ, w.idsQ} {
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
func (w *batchWriter) commit(batch []*appendReq) {
	if err := w.s.Failed(); err != nil {
		for _, req := range batch {
			req.result <- appendResult{err: fmt.Errorf("append %s: %w", req.stream, err)}
		}
		return
	}
	b := &txBatch{w: w, ctx: context.Background(), pending: make(map[string]streamHead)}
	results, err := b.write(batch)
	if err != nil {
		// Nothing of this batch was acknowledged: forget cached heads and
		// tell everyone. After an I/O error the store stops for good.
		if unrecoverable(err) {
			err = w.s.fail(err)
		}
		clear(w.heads)
		for i := range results {
			results[i] = appendResult{err: fmt.Errorf("append %s: %w", batch[i].stream, err)}
		}
	} else {
		if len(w.heads) > maxCachedHeads {
			clear(w.heads)
		}
		for stream, h := range b.pending {
			w.heads[stream] = h
		}
		if b.pos > w.s.head.Load() {
			w.s.published(b.pos)
		}
	}
	for i, req := range batch {
		req.result <- results[i]
	}
}

// row is one event ready to insert.
type row struct{ e eventstore.Event }

// txBatch is one group commit in the making.
type txBatch struct {
	w       *batchWriter
	ctx     context.Context
	tx      *sql.Tx
	pending map[string]streamHead // heads as of this transaction
	rows    []row                 // planned rows, written at the end
	pos     uint64                // position of the last planned row
}

// write plans every append of the batch against the stream heads, then
// writes all rows with multi-row INSERTs and commits once.
func (b *txBatch) write(batch []*appendReq) ([]appendResult, error) {
	results := make([]appendResult, len(batch))
	var err error
	if b.tx, err = b.w.s.wdb.BeginTx(b.ctx, nil); err != nil {
		return results, fmt.Errorf("begin: %w", err)
	}
	defer b.tx.Rollback()
	b.pos = b.w.s.head.Load()
	n := 0
	for _, req := range batch {
		n += len(req.events) + len(req.imported)
	}
	b.rows = make([]row, 0, n)
	now := b.w.s.opts.Now().UTC().Truncate(time.Microsecond)
	for i, req := range batch {
		if req.imported != nil {
			results[i], err = b.planImport(req)
		} else {
			results[i], err = b.plan(req, now)
		}
		if err != nil {
			return results, err
		}
	}
	if err := b.insert(); err != nil {
		return results, err
	}
	if err := b.tx.Commit(); err != nil {
		return results, &commitError{err}
	}
	return results, nil
}

// commitError is a failed COMMIT. Its outcome is unknown: the batch's WAL
// frames may be on disk (a restart then recovers them: a retry with the
// same event ids is recognised) or lost with a failed fsync.
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

// plan decides one append: a conflict, a recognised retry, or new rows.
func (b *txBatch) plan(req *appendReq, now time.Time) (appendResult, error) {
	head, err := b.head(req.stream)
	if err != nil {
		return appendResult{}, err
	}
	if !req.expected.Allows(head.next) {
		if rev, exact := req.expected.Revision(); req.retryable && (exact || req.expected.IsNoStream()) {
			if !exact {
				rev = 0
			} else {
				rev++
			}
			if res, ok, err := b.storedAt(req, rev); err != nil || ok {
				return appendResult{res: res}, err
			}
		}
		return appendResult{err: fmt.Errorf("append %s@%s: stream is at %s: %w",
			req.stream, req.expected, eventstore.ExpectRevision(head.next), eventstore.ErrConflict)}, nil
	}
	if req.retryable && head.next > 0 && (req.expected.IsAny() || req.expected.IsStreamExists()) {
		from := head.next - min(head.next, retryWindow)
		if res, ok, err := b.storedAt(req, from); err != nil || ok {
			return appendResult{res: res}, err
		}
	}
	hash := head.hash
	for j, ed := range req.events {
		b.pos++
		e := eventstore.Event{ID: ed.ID, Stream: req.stream, Revision: head.next + uint64(j), Position: b.pos,
			Type: ed.Type, Data: ed.Data, Metadata: ed.Metadata, Created: now}
		e.Hash = eventstore.ChainHash(hash, e)
		hash = e.Hash
		b.rows = append(b.rows, row{e: e})
	}
	next := head.next + uint64(len(req.events))
	b.pending[req.stream] = streamHead{next: next, hash: hash}
	return appendResult{res: eventstore.AppendResult{NextRevision: next, Position: b.pos}}, nil
}

// planImport decides an Import: every event must be the next of its
// stream, else nothing of it is written (a conflict). Events keep their
// ids, creation times and hashes; only positions are assigned.
func (b *txBatch) planImport(req *appendReq) (appendResult, error) {
	heads := make(map[string]streamHead)
	for _, e := range req.imported {
		h, ok := heads[e.Stream]
		if !ok {
			var err error
			if h, err = b.head(e.Stream); err != nil {
				return appendResult{}, err
			}
		}
		if e.Revision != h.next {
			return appendResult{err: fmt.Errorf("import %s: stream is at %s: %w",
				e, eventstore.ExpectRevision(h.next), eventstore.ErrConflict)}, nil
		}
		heads[e.Stream] = streamHead{next: h.next + 1, hash: e.Hash}
	}
	for _, e := range req.imported {
		b.pos++
		e.Position = b.pos
		e.Created = e.Created.UTC().Truncate(time.Microsecond)
		b.rows = append(b.rows, row{e: e})
	}
	for stream, h := range heads {
		b.pending[stream] = h
	}
	last := req.imported[len(req.imported)-1]
	return appendResult{res: eventstore.AppendResult{NextRevision: last.Revision + 1, Position: b.pos}}, nil
}

// storedAt looks for req's events in its stream from revision from on: all
// of them in order is a retry (ok, with the original result); the first id
// found but not the rest is a conflict. Rows planned earlier in this batch
// count as stored.
func (b *txBatch) storedAt(req *appendReq, from uint64) (eventstore.AppendResult, bool, error) {
	type stored struct{ rev, pos uint64 }
	var ids []uuid.UUID
	var at []stored
	rows, err := b.tx.StmtContext(b.ctx, b.w.idsQ).QueryContext(b.ctx, req.stream, from, retryWindow+len(req.events))
	if err != nil {
		return eventstore.AppendResult{}, false, fmt.Errorf("read ids of %s: %w", req.stream, err)
	}
	for rows.Next() {
		var id []byte
		var s stored
		if err := rows.Scan(&id, &s.rev, &s.pos); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, false, err
		}
		ids, at = append(ids, uuid.UUID(id)), append(at, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, false, err
	}
	for _, r := range b.rows {
		if r.e.Stream == req.stream && r.e.Revision >= from {
			ids, at = append(ids, r.e.ID), append(at, stored{r.e.Revision, r.e.Position})
		}
	}
	for i, id := range ids {
		if id != req.events[0].ID {
			continue
		}
		n := len(req.events)
		if i+n > len(ids) {
			return eventstore.AppendResult{}, false, nil
		}
		for j := range req.events {
			if ids[i+j] != req.events[j].ID {
				return eventstore.AppendResult{}, false, nil
			}
		}
		last := at[i+n-1]
		return eventstore.AppendResult{NextRevision: last.rev + 1, Position: last.pos}, true, nil
	}
	return eventstore.AppendResult{}, false, nil
}

// insert writes the planned rows with as few statements as it can.
func (b *txBatch) insert() error {
	rows := b.rows
	args := make([]any, 0, 13*min(len(rows), rowsPerInsert))
	for len(rows) > 0 {
		n := rowsPerInsert
		for n > len(rows) {
			n /= 2
		}
		args = args[:0]
		for _, r := range rows[:n] {
			e := r.e
			m := e.Metadata
			args = append(args, e.Position, e.Stream, e.Revision, e.ID[:], e.Type, []byte(e.Data), e.Created.UnixMicro(),
				m.CorrelationID, m.CausationID, m.Actor, m.SchemaVersion, m.IdempotencyKey, e.Hash[:])
		}
		if _, err := b.tx.StmtContext(b.ctx, b.w.inserts[n]).ExecContext(b.ctx, args...); err != nil {
			return fmt.Errorf("insert %d events from %s: %w", n, rows[0].e, err)
		}
		rows = rows[n:]
	}
	return nil
}

// head returns a stream's head as of this transaction.
func (b *txBatch) head(stream string) (streamHead, error) {
	if h, ok := b.pending[stream]; ok {
		return h, nil
	}
	if h, ok := b.w.heads[stream]; ok {
		return h, nil
	}
	var h streamHead
	var hash []byte
	err := b.tx.StmtContext(b.ctx, b.w.headQ).QueryRowContext(b.ctx, stream).Scan(&h.next, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return streamHead{}, nil
	case err != nil:
		return h, fmt.Errorf("read head of %s: %w", stream, err)
	}
	h.next++
	copy(h.hash[:], hash)
	return h, nil
}
