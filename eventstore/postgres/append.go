package postgres

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/eventstore"
)

type appendReq struct {
	op        string // "append STREAM" or "import"
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

const (
	// retryWindow is how many recent events of a stream an Any or
	// StreamExists append is compared with to recognise a retry.
	retryWindow = 32
	// commitTimeout bounds one group commit, waits for the head lock included.
	commitTimeout = 30 * time.Second
)

// Append queues the append for this process's writer and waits until it is
// committed.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, s.opts.MaxEventSize)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, &appendReq{op: "append " + stream, stream: stream, expected: expected, events: prepared,
		retryable: eventstore.Retryable(events), result: make(chan appendResult, 1)})
}

// Import implements eventstore.Importer: it appends events exported from
// another store as they are, in one transaction.
func (s *Store) Import(ctx context.Context, events []eventstore.Event) (eventstore.AppendResult, error) {
	if err := eventstore.ValidateImport(events); err != nil {
		return eventstore.AppendResult{}, err
	}
	return s.submit(ctx, &appendReq{op: "import", stream: events[0].Stream, imported: events, result: make(chan appendResult, 1)})
}

// submit hands req to the writer and waits for its outcome. Once queued
// the request is carried out even if ctx ends: the caller then cannot know
// the outcome, as with any network store.
func (s *Store) submit(ctx context.Context, req *appendReq) (eventstore.AppendResult, error) {
	if s.closed.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
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

// writer is this process's only appending goroutine. It drains the queue
// into group commits until Close.
func (s *Store) writer() {
	defer s.wg.Done()
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
					s.commit([]*appendReq{r})
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
		s.commit(batch)
	}
}

// commit writes a group of appends in one transaction and answers each.
func (s *Store) commit(batch []*appendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	b := &txBatch{s: s, pending: make(map[string]streamHead)}
	results, err := b.write(ctx, batch)
	if err != nil {
		err = unavailable(err)
		for i := range results {
			results[i] = appendResult{err: fmt.Errorf("%s: %w", batch[i].op, err)}
		}
	} else if len(b.rows) > 0 {
		s.wake()
	}
	for i, req := range batch {
		req.result <- results[i]
	}
}

type streamHead struct {
	next uint64
	hash eventstore.Hash
}

// txBatch is one group commit in the making.
type txBatch struct {
	s       *Store
	tx      pgx.Tx
	heads   map[string]streamHead // as stored when the head lock was taken
	pending map[string]streamHead // as planned in this transaction
	rows    []eventstore.Event    // planned rows, written at the end
	pos     uint64                // position of the last planned row
}

const (
	lockHeadSQL = `SELECT position FROM log_head FOR UPDATE`
	// The newest event of each stream, one backward index probe each.
	streamHeadsSQL = `SELECT s.stream, e.revision, e.hash FROM unnest($1::bytea[]) AS s(stream)
		CROSS JOIN LATERAL (SELECT revision, hash FROM events WHERE events.stream = s.stream
			ORDER BY revision DESC LIMIT 1) AS e`
	storedSQL = `SELECT id, revision, position, type, data, correlation_id, causation_id, actor, schema_version, idempotency_key
		FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	insertSQL = `INSERT INTO events (` + columns + `)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[], $6::bytea[],
			$7::bigint[], $8::bytea[], $9::bytea[], $10::bytea[], $11::integer[], $12::bytea[], $13::bytea[])`
)

// write locks the log head (serializing appends across processes, see the
// package doc), reads the heads of the batch's streams, plans every append
// against them, then inserts all rows, moves the log head, notifies the
// listeners and commits.
func (b *txBatch) write(ctx context.Context, batch []*appendReq) ([]appendResult, error) {
	results := make([]appendResult, len(batch))
	var err error
	if b.tx, err = b.s.pool.Begin(ctx); err != nil {
		return results, fmt.Errorf("begin: %w", err)
	}
	defer b.tx.Rollback(context.WithoutCancel(ctx))
	if err := b.lock(ctx, batch); err != nil {
		return results, err
	}
	n := 0
	for _, req := range batch {
		n += len(req.events) + len(req.imported)
	}
	b.rows = make([]eventstore.Event, 0, n)
	now := b.s.opts.Now().UTC().Truncate(time.Microsecond)
	for i, req := range batch {
		if req.imported != nil {
			results[i], err = b.planImport(req)
		} else {
			results[i], err = b.plan(ctx, req, now)
		}
		if err != nil {
			return results, err
		}
	}
	if len(b.rows) == 0 {
		return results, nil // conflicts and retries only: nothing to commit
	}
	if err := b.insert(ctx); err != nil {
		return results, err
	}
	if err := b.tx.Commit(ctx); err != nil {
		return results, fmt.Errorf("commit (outcome unknown): %w", err)
	}
	return results, nil
}

// lock takes the log head's row lock and reads the head of every stream
// the batch appends to, in one round trip.
func (b *txBatch) lock(ctx context.Context, batch []*appendReq) error {
	seen := make(map[string]bool)
	var streams [][]byte
	add := func(stream string) {
		if !seen[stream] {
			seen[stream] = true
			streams = append(streams, []byte(stream))
		}
	}
	for _, req := range batch {
		add(req.stream)
		for _, e := range req.imported {
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
		return fmt.Errorf("lock log head: %w", err)
	}
	b.pos = uint64(pos)
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("read stream heads: %w", err)
	}
	b.heads = make(map[string]streamHead, len(streams))
	for rows.Next() {
		var stream, hash []byte
		var rev int64
		if err := rows.Scan(&stream, &rev, &hash); err != nil {
			rows.Close()
			return fmt.Errorf("read stream heads: %w", err)
		}
		h := streamHead{next: uint64(rev) + 1}
		copy(h.hash[:], hash)
		b.heads[string(stream)] = h
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stream heads: %w", err)
	}
	return br.Close()
}

// head returns a stream's head as of this transaction.
func (b *txBatch) head(stream string) streamHead {
	if h, ok := b.pending[stream]; ok {
		return h
	}
	return b.heads[stream]
}

// plan decides one append: a conflict, a recognised retry, or new rows.
func (b *txBatch) plan(ctx context.Context, req *appendReq, now time.Time) (appendResult, error) {
	head := b.head(req.stream)
	conflict := func(why string) appendResult {
		return appendResult{err: fmt.Errorf("append %s@%s: %s: %w", req.stream, req.expected, why, eventstore.ErrConflict)}
	}
	atHead := "stream is at " + eventstore.ExpectRevision(head.next).String()
	if !req.expected.Allows(head.next) {
		if rev, exact := req.expected.Revision(); req.retryable && (exact || req.expected.IsNoStream()) {
			if !exact {
				rev = 0
			} else {
				rev++
			}
			res, found, err := b.storedAt(ctx, req, rev)
			switch {
			case err != nil:
				return appendResult{}, err
			case found == retryFound:
				return appendResult{res: res}, nil
			case found == retryDiffers:
				return conflict("events with these ids were appended with other contents"), nil
			}
		}
		return conflict(atHead), nil
	}
	if req.retryable && head.next > 0 && (req.expected.IsAny() || req.expected.IsStreamExists()) {
		from := head.next - min(head.next, retryWindow)
		res, found, err := b.storedAt(ctx, req, from)
		switch {
		case err != nil:
			return appendResult{}, err
		case found == retryFound:
			return appendResult{res: res}, nil
		case found == retryDiffers:
			return conflict("events with these ids were appended with other contents"), nil
		case found == retryPartial:
			return conflict("some of these event ids are stored, not all in this order"), nil
		}
	}
	hash := head.hash
	for j, ed := range req.events {
		b.pos++
		e := eventstore.Event{ID: ed.ID, Stream: req.stream, Revision: head.next + uint64(j), Position: b.pos,
			Type: ed.Type, Data: ed.Data, Metadata: ed.Metadata, Created: now}
		e.Hash = eventstore.ChainHash(hash, e)
		hash = e.Hash
		b.rows = append(b.rows, e)
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
			h = b.head(e.Stream)
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
		b.rows = append(b.rows, e)
	}
	for stream, h := range heads {
		b.pending[stream] = h
	}
	last := req.imported[len(req.imported)-1]
	return appendResult{res: eventstore.AppendResult{NextRevision: last.Revision + 1, Position: b.pos}}, nil
}

// retryVerdict is what storedAt found of an append's events.
type retryVerdict int

const (
	retryNone    retryVerdict = iota // the first id is not there
	retryFound                       // all ids in order, same contents: a retry
	retryDiffers                     // all ids in order, other contents
	retryPartial                     // the first id, not all the rest
)

// stored is an event found by storedAt, or planned earlier in the batch.
type stored struct {
	rev, pos uint64
	data     eventstore.EventData
}

// storedAt looks for req's events in its stream from revision from on
// (the stored ones and those planned earlier in this batch) and compares
// them with req's.
func (b *txBatch) storedAt(ctx context.Context, req *appendReq, from uint64) (eventstore.AppendResult, retryVerdict, error) {
	rows, err := b.tx.Query(ctx, storedSQL, []byte(req.stream), int64(from), retryWindow+len(req.events))
	if err != nil {
		return eventstore.AppendResult{}, retryNone, fmt.Errorf("read ids of %s: %w", req.stream, err)
	}
	var found []stored
	for rows.Next() {
		var st stored
		var id, typ, data, corr, cause, actor, key []byte
		var rev, pos int64
		if err := rows.Scan(&id, &rev, &pos, &typ, &data, &corr, &cause, &actor, &st.data.Metadata.SchemaVersion, &key); err != nil {
			rows.Close()
			return eventstore.AppendResult{}, retryNone, fmt.Errorf("read ids of %s: %w", req.stream, err)
		}
		copy(st.data.ID[:], id)
		st.rev, st.pos = uint64(rev), uint64(pos)
		st.data.Type, st.data.Data = string(typ), data
		m := &st.data.Metadata
		m.CorrelationID, m.CausationID, m.Actor, m.IdempotencyKey = string(corr), string(cause), string(actor), string(key)
		found = append(found, st)
	}
	if err := rows.Err(); err != nil {
		return eventstore.AppendResult{}, retryNone, fmt.Errorf("read ids of %s: %w", req.stream, err)
	}
	for _, e := range b.rows {
		if e.Stream == req.stream && e.Revision >= from {
			found = append(found, stored{rev: e.Revision, pos: e.Position,
				data: eventstore.EventData{ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata}})
		}
	}
	for i, st := range found {
		if st.data.ID != req.events[0].ID {
			continue
		}
		n := len(req.events)
		if i+n > len(found) {
			return eventstore.AppendResult{}, retryPartial, nil
		}
		verdict := retryFound
		for j, e := range req.events {
			got := found[i+j].data
			if got.ID != e.ID {
				return eventstore.AppendResult{}, retryPartial, nil
			}
			if got.Type != e.Type || !bytes.Equal(got.Data, e.Data) || got.Metadata != e.Metadata {
				verdict = retryDiffers
			}
		}
		last := found[i+n-1]
		return eventstore.AppendResult{NextRevision: last.rev + 1, Position: last.pos}, verdict, nil
	}
	return eventstore.AppendResult{}, retryNone, nil
}

// insert writes the planned rows in one statement, moves the log head and
// queues the notification, in one round trip.
func (b *txBatch) insert(ctx context.Context) error {
	n := len(b.rows)
	var (
		pos, rev, created                         = make([]int64, n), make([]int64, n), make([]int64, n)
		stream, id, typ, data, corr, cause, actor = make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		key, hash                                 = make([][]byte, n), make([][]byte, n)
		schemaVersion                             = make([]int32, n)
	)
	for i := range b.rows {
		e := &b.rows[i]
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
	q.Queue(`UPDATE log_head SET position = $1`, int64(b.pos))
	q.Queue(`SELECT pg_notify($1, $2)`, b.s.channel, strconv.FormatUint(b.pos, 10))
	if err := b.tx.SendBatch(ctx, q).Close(); err != nil {
		first := b.rows[0]
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
