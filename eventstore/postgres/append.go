package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
)

// Append queues the append for this process's writer and waits until it is
// committed.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, s.opts.MaxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, groupcommit.NewAppend(stream, expected, prepared, events))
}

// Import implements eventstore.Importer: it appends events exported from
// another store as they are, in one transaction.
func (s *Store) Import(ctx context.Context, events []eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateImport(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, groupcommit.NewImport(events))
}

func (s *Store) submit(ctx context.Context, req *groupcommit.Request) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	return s.queue.Submit(ctx, req)
}

// writer is this process's only appending goroutine. It drains the queue
// into group commits until Close.
func (s *Store) writer() {
	defer s.wg.Done()
	s.queue.Run(s.opts.MaxBatchEvents, s.opts.NoGroupCommit, s.commit)
}

// commit writes a group of appends in one transaction and answers each.
func (s *Store) commit(batch []*groupcommit.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.CommitTimeout)
	defer cancel()
	b := &txBatch{s: s}
	results, err := b.write(ctx, batch)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, eventstore.ErrUnavailable) {
			// The server did not answer in time (or another process held
			// the log head that long): the outcome is unknown.
			err = fmt.Errorf("%w: no answer within %s: %w", eventstore.ErrUnavailable, s.opts.CommitTimeout, err)
		}
		err = unavailable(err)
		results = make([]groupcommit.Result, len(batch))
		for i, req := range batch {
			results[i] = groupcommit.Result{Err: fmt.Errorf("%s: %w", req.Op, err)}
		}
	} else if len(b.plan.Rows) > 0 {
		s.wake()
	}
	for i, req := range batch {
		req.Answer(results[i])
	}
}

// txBatch is one group commit in the making: the plan's Source.
type txBatch struct {
	s     *Store
	ctx   context.Context
	tx    pgx.Tx
	heads map[string]groupcommit.Head // as stored when the head lock was taken
	plan  *groupcommit.Plan
}

const (
	lockHeadSQL = `SELECT position FROM log_head FOR UPDATE`
	// The newest event of each stream, one backward index probe each.
	streamHeadsSQL = `SELECT s.stream, e.revision, e.hash FROM unnest($1::bytea[]) AS s(stream)
		CROSS JOIN LATERAL (SELECT revision, hash FROM events WHERE events.stream = s.stream
			ORDER BY revision DESC LIMIT 1) AS e`
	storedSQL = readStreamSQL
	insertSQL = `INSERT INTO events (` + columns + `)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bytea[],
			$7::bigint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::integer[], $12::bytea[], $13::bytea[])`
)

// write locks the log head (serializing appends across processes, see the
// package doc), reads the heads of the batch's streams, plans every append
// against them, then inserts all rows, moves the log head, notifies the
// listeners and commits.
func (b *txBatch) write(ctx context.Context, batch []*groupcommit.Request) ([]groupcommit.Result, error) {
	var err error
	// READ COMMITTED whatever the server's default: each statement after
	// the lock must see what the previous holder committed.
	if b.tx, err = b.s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer b.tx.Rollback(context.WithoutCancel(ctx))
	b.ctx = ctx
	head, err := b.lock(ctx, batch)
	if err != nil {
		return nil, err
	}
	var results []groupcommit.Result
	b.plan, results, err = groupcommit.Decide(b, head, batch, b.s.opts.Now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return nil, err
	}
	if len(b.plan.Rows) == 0 {
		return results, nil // conflicts and retries only: nothing to commit
	}
	if err := b.insert(ctx); err != nil {
		return nil, err
	}
	if err := b.tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit (outcome unknown): %w", err)
	}
	return results, nil
}

// lock takes the log head's row lock and reads the head of every stream
// the batch appends to, in one round trip.
func (b *txBatch) lock(ctx context.Context, batch []*groupcommit.Request) (uint64, error) {
	seen := make(map[string]bool)
	var streams [][]byte
	add := func(stream string) {
		if !seen[stream] {
			seen[stream] = true
			streams = append(streams, []byte(stream))
		}
	}
	for _, req := range batch {
		add(req.Stream)
		for _, e := range req.Imported {
			add(e.Stream)
		}
	}
	q := &pgx.Batch{}
	q.Queue(lockHeadSQL)
	q.Queue(streamHeadsSQL, streams)
	br := b.tx.SendBatch(ctx, q)
	defer br.Close()
	var pos int64
	if err := br.QueryRow().Scan(&pos); err != nil {
		return 0, fmt.Errorf("lock log head: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return 0, fmt.Errorf("read stream heads: %w", err)
	}
	b.heads = make(map[string]groupcommit.Head, len(streams))
	for rows.Next() {
		var stream, hash []byte
		var rev int64
		if err := rows.Scan(&stream, &rev, &hash); err != nil {
			rows.Close()
			return 0, fmt.Errorf("read stream heads: %w", err)
		}
		h := groupcommit.Head{Next: uint64(rev) + 1}
		copy(h.Hash[:], hash)
		b.heads[string(stream)] = h
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read stream heads: %w", err)
	}
	return uint64(pos), br.Close()
}

// Head implements groupcommit.Source: every stream of the batch was read
// under the lock.
func (b *txBatch) Head(stream string) (groupcommit.Head, error) { return b.heads[stream], nil }

// Stored implements groupcommit.Source, contents included.
func (b *txBatch) Stored(stream string, from uint64, limit int) ([]eventstore.Event, error) {
	rows, err := b.tx.Query(b.ctx, storedSQL, []byte(stream), int64(from), limit)
	if err != nil {
		return nil, err
	}
	return scan(rows, limit)
}

// insert writes the planned rows in one statement, moves the log head and
// queues the notification, in one round trip.
func (b *txBatch) insert(ctx context.Context) error {
	rowsOf := b.plan.Rows
	n := len(rowsOf)
	var (
		pos, rev, created                         = make([]int64, n), make([]int64, n), make([]int64, n)
		stream, id, typ, data, corr, cause, actor = make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		key, hash                                 = make([][]byte, n), make([][]byte, n)
		schemaVersion                             = make([]int32, n)
	)
	for i := range rowsOf {
		e := &rowsOf[i]
		m := e.Metadata
		pos[i], rev[i], created[i] = int64(e.Position), int64(e.Revision), e.Created.UnixMicro()
		stream[i], id[i], typ[i], data[i] = []byte(e.Stream), e.ID[:], []byte(e.Type), nonNil(e.Data)
		corr[i], cause[i], actor[i], key[i] = []byte(m.CorrelationID), []byte(m.CausationID), []byte(m.Actor), []byte(m.IdempotencyKey)
		for _, p := range []*[]byte{&corr[i], &cause[i], &actor[i], &key[i]} {
			*p = nonNil(*p)
		}
		schemaVersion[i] = int32(m.SchemaVersion)
		hash[i] = e.Hash[:]
	}
	q := &pgx.Batch{}
	q.Queue(insertSQL, pos, stream, rev, id, typ, data, created, corr, cause, actor, schemaVersion, key, hash)
	q.Queue(`UPDATE log_head SET position = $1`, int64(b.plan.Pos))
	q.Queue(`SELECT pg_notify($1, $2)`, b.s.channel, strconv.FormatUint(b.plan.Pos, 10))
	if err := b.tx.SendBatch(ctx, q).Close(); err != nil {
		first := rowsOf[0]
		return fmt.Errorf("insert %d events from %s: %w", n, first, err)
	}
	return nil
}

// nonNil returns p, or an empty slice for nil: a nil []byte is SQL NULL.
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}
