package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

const columns = `position, stream, revision, id, type, data, metadata, created, hash`

// ReadStream returns up to limit events of stream from revision from on.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+columns+` FROM events WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?`,
		stream, from, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s@%d: %w", stream, from, err)
	}
	events, err := scan(rows, limit)
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
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+columns+` FROM events WHERE position > ? AND position <= ? ORDER BY position`, after, to)
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
	var id, meta, hash []byte
	var created int64
	for rows.Next() {
		var e eventstore.Event
		var data []byte
		if err := rows.Scan(&e.Position, &e.Stream, &e.Revision, &id, &e.Type, &data, &meta, &created, &hash); err != nil {
			return nil, err
		}
		e.ID = uuid.UUID(id)
		e.Data = data
		e.Created = time.UnixMicro(created).UTC()
		copy(e.Hash[:], hash)
		if err := json.Unmarshal(meta, &e.Metadata); err != nil {
			return nil, fmt.Errorf("metadata of %s: %w", e, err)
		}
		events = append(events, e)
	}
	return events, rows.Err()
}

// Subscribe delivers stored events after position after, then live ones.
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	const page = 4096
	for {
		wait := s.committed() // taken before reading, so no commit is missed
		events, err := s.ReadAll(ctx, after, page)
		if err != nil {
			return err
		}
		if len(events) > 0 {
			if err := fn(ctx, events); err != nil {
				return err
			}
			after = events[len(events)-1].Position
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
