package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/eventstore"
)

const columns = `position, stream, revision, id, type, data, created, correlation_id, causation_id, actor, schema_version, idempotency_key, hash`

const (
	readStreamSQL = `SELECT ` + columns + ` FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`
	readAllSQL    = `SELECT ` + columns + ` FROM events WHERE position > $1 ORDER BY position LIMIT $2`
)

// ReadStream returns up to limit events of stream from revision from on.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	events, err := s.query(ctx, min(limit, 16), readStreamSQL, []byte(stream), int64(from), limit)
	if err != nil {
		return nil, fmt.Errorf("read %s@%d: %w", stream, from, err)
	}
	return events, nil
}

// ReadAll returns up to limit events after position after. Every snapshot
// sees a prefix of the log (see the package doc), so reading in position
// order never skips an event.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	events, err := s.query(ctx, min(limit, 256), readAllSQL, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

// query runs a read of whole events.
func (s *Store) query(ctx context.Context, capacity int, sql string, args ...any) ([]eventstore.Event, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, s.translate(err)
	}
	events, err := scan(rows, capacity)
	if err != nil {
		return nil, s.translate(err)
	}
	return events, nil
}

// scan reads whole events from rows of columns, and closes them.
func scan(rows pgx.Rows, capacity int) ([]eventstore.Event, error) {
	defer rows.Close()
	events := make([]eventstore.Event, 0, max(capacity, 0))
	for rows.Next() {
		var e eventstore.Event
		var pos, rev, created int64
		var stream, id, typ, corr, cause, actor, key, hash []byte
		m := &e.Metadata
		if err := rows.Scan(&pos, &stream, &rev, &id, &typ, &e.Data, &created,
			&corr, &cause, &actor, &m.SchemaVersion, &key, &hash); err != nil {
			return nil, err
		}
		e.Position, e.Revision = uint64(pos), uint64(rev)
		e.Stream, e.Type = string(stream), string(typ)
		m.CorrelationID, m.CausationID, m.Actor, m.IdempotencyKey = string(corr), string(cause), string(actor), string(key)
		copy(e.ID[:], id)
		copy(e.Hash[:], hash)
		e.Created = time.UnixMicro(created).UTC()
		events = append(events, e)
	}
	return events, rows.Err()
}

// Subscribe delivers stored events after position after, then live ones:
// it reads a page whenever the listener or this process's writer reports
// new events, or a poll interval has passed. A read that meets a lost
// connection is tried again a few times (the pool replaces the
// connection); a failure that persists ends it with the error, wrapping
// eventstore.ErrUnavailable, and the caller resumes from the last position
// it was given.
func (s *Store) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	const page = 4096
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := s.changed() // taken before reading, so no wake-up is missed
		if s.closed.Load() {
			return eventstore.ErrClosed
		}
		events, err := s.readRetrying(ctx, after, page)
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
		poll := s.opts.PollInterval
		if s.listening.Load() {
			poll *= 20
		}
		timer.Reset(poll)
		select {
		case <-wait:
		case <-timer.C:
		case <-s.done:
			return eventstore.ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// readRetrying is ReadAll, tried up to 4 times a poll interval apart while
// it fails with eventstore.ErrUnavailable.
func (s *Store) readRetrying(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	for attempt := 1; ; attempt++ {
		events, err := s.ReadAll(ctx, after, limit)
		if err == nil || attempt == 4 || !errors.Is(err, eventstore.ErrUnavailable) {
			return events, err
		}
		select {
		case <-time.After(s.opts.PollInterval):
		case <-s.done:
			return nil, eventstore.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// listen holds a connection of its own that LISTENs on the log's channel
// and wakes the subscriptions at every notification, reconnecting with
// backoff when the connection is lost (subscriptions poll meanwhile).
func (s *Store) listen() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := s.opts.PollInterval
	for ctx.Err() == nil {
		if err := s.listenOnce(ctx); err == nil {
			backoff = s.opts.PollInterval
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// listenOnce connects, listens until the connection fails or ctx ends, and
// returns nil if it got as far as listening.
func (s *Store) listenOnce(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	s.listening.Store(true)
	defer s.listening.Store(false)
	s.wake() // events committed while nobody listened
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return nil
		}
		s.wake()
	}
}
