package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"golang.org/x/sync/errgroup"
)

const columns = `position, stream, revision, id, type, data, created, correlation_id, causation_id, actor, schema_version, idempotency_key, hash`

// The readers' queries, prepared once at Open (Store.readStreamQ, readAllQ).
const (
	readStreamSQL = `SELECT ` + columns + ` FROM events WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`
	readAllSQL    = `SELECT ` + columns + ` FROM events WHERE position > ? AND position <= ? ORDER BY position`
)

// ReadStream returns up to limit events of stream from revision from on.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	rows, err := s.readStreamQ.QueryContext(ctx, stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s@%d: %w", stream, from, err)
	}
	// limit is only a bound: catching a cached state up usually reads
	// nothing, so start small and let the slice grow.
	events, err := scan(rows, min(limit, 16))
	if err != nil {
		return nil, fmt.Errorf("read %s@%d: %w", stream, from, err)
	}
	return events, nil
}

// ReadAll returns up to limit events after position after.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	// Positions are gap-free, so a range is cheaper than LIMIT and never
	// reads past the committed head.
	head := s.head.Load()
	if after >= head {
		return nil, nil
	}
	to := min(head, after+uint64(limit))
	rows, err := s.readAllQ.QueryContext(ctx, after, to)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	events, err := scan(rows, int(to-after))
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

func scan(rows *sql.Rows, capacity int) ([]eventstore.Event, error) {
	defer rows.Close()
	events := make([]eventstore.Event, 0, min(capacity, 4096))
	var id, hash sql.RawBytes
	// Integers are scanned into int64: database/sql converts an int64 into
	// any other integer type by formatting and parsing it.
	var position, revision, created, schemaVersion int64
	for rows.Next() {
		var e eventstore.Event
		var data []byte
		m := &e.Metadata
		if err := rows.Scan(&position, &e.Stream, &revision, &id, &e.Type, &data, &created,
			&m.CorrelationID, &m.CausationID, &m.Actor, &schemaVersion, &m.IdempotencyKey, &hash); err != nil {
			return nil, err
		}
		e.Position, e.Revision, m.SchemaVersion = uint64(position), uint64(revision), int(schemaVersion)
		copy(e.ID[:], id)
		copy(e.Hash[:], hash)
		e.Data = data
		e.Created = time.UnixMicro(created).UTC()
		events = append(events, e)
	}
	return events, rows.Err()
}

// Subscribe delivers stored events after position after, then live ones.
// While it is more than a page behind the head it reads the next pages
// concurrently (positions are gap-free, so their ranges are known in
// advance) and hands them to fn in order, one page per call; while fn
// handles a round of full pages, the next round is read already, so
// reading overlaps with what fn does (an export's writing, a projection's
// applying).
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	var ahead *errgroup.Group // reading the next round, nil when none is
	var next round            // what ahead read
	defer func() {
		cancel()
		if ahead != nil {
			_ = ahead.Wait()
		}
	}()
	for {
		wait := s.committed() // taken before reading, so no commit is missed
		if s.closed.Load() {
			return eventstore.ErrClosed
		}
		var r round
		if ahead != nil {
			_ = ahead.Wait() // its error is the round's
			ahead, r = nil, next
		} else {
			r = s.readRound(ctx, after)
		}
		if r.err != nil {
			return r.err
		}
		if end := r.end(after); r.full && s.head.Load() > end {
			ahead = new(errgroup.Group)
			ahead.Go(func() error { next = s.readRound(ctx, end); return nil })
		}
		delivered := false
		for _, events := range r.pages {
			if len(events) == 0 {
				break
			}
			if err := fn(ctx, events); err != nil {
				return err
			}
			after = events[len(events)-1].Position
			delivered = true
		}
		if delivered || ahead != nil {
			continue
		}
		select {
		case <-wait:
		case <-s.done:
			return eventstore.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// subscribePage is how many events a Subscribe page holds; readAhead is
// how many pages one round reads at once when far enough behind.
const subscribePage, readAhead = 4096, 2

// round is what one round of Subscribe read: consecutive pages, the
// first empty one (if any) ending them.
type round struct {
	pages [][]eventstore.Event
	full  bool // every page is full: there may be more to read at once
	err   error
}

// end returns the position of the round's last event (after when it has
// none).
func (r round) end(after uint64) uint64 {
	for _, events := range r.pages {
		if len(events) == 0 {
			break
		}
		after = events[len(events)-1].Position
	}
	return after
}

// readRound reads the pages after position after: one, or readAhead
// concurrently when the store is more than a page ahead.
func (s *Store) readRound(ctx context.Context, after uint64) round {
	n := 1
	if behind := s.head.Load() - min(after, s.head.Load()); behind > subscribePage {
		n = int(min(readAhead, behind/subscribePage))
	}
	r := round{pages: make([][]eventstore.Event, n)}
	g, gctx := errgroup.WithContext(ctx)
	for i := range r.pages {
		g.Go(func() error {
			var err error
			r.pages[i], err = s.ReadAll(gctx, after+uint64(i*subscribePage), subscribePage)
			return err
		})
	}
	if r.err = g.Wait(); r.err != nil {
		return r
	}
	r.full = true
	for _, events := range r.pages {
		r.full = r.full && len(events) == subscribePage
	}
	return r
}
