package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
)

// maxPage caps one read request to the server.
const maxPage = 4096

// ReadStream returns up to limit events of stream from revision from on,
// oldest first; a stream that does not exist reads as empty.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return s.none()
	}
	events, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(from)}, uint64(limit))
	if err != nil {
		return nil, fmt.Errorf("read %s@%d: %w", stream, from, err)
	}
	return events, nil
}

// tail returns up to n of stream's newest events, newest first.
func (s *Store) tail(ctx context.Context, stream string, n int) ([]eventstore.Event, error) {
	return s.readStream(ctx, stream, esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, uint64(n))
}

func (s *Store) readStream(ctx context.Context, stream string, opts esdb.ReadStreamOptions, count uint64) ([]eventstore.Event, error) {
	var events []eventstore.Event
	err := s.call(ctx, func(ctx context.Context, c *esdb.Client) error {
		rs, err := c.ReadStream(ctx, stream, opts, count)
		if err != nil {
			return err
		}
		defer rs.Close()
		for {
			r, err := rs.Recv()
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case hasCode(err, esdb.ErrorCodeResourceNotFound):
				return nil // no such stream
			case err != nil:
				return err
			}
			e, err := toEvent(r.Event)
			if err != nil {
				return &decodeError{err}
			}
			events = append(events, e)
		}
	})
	if err != nil {
		return nil, err // the call may still be running
	}
	return events, nil
}

// ReadAll returns up to limit events with Position > after in global order,
// skipping the server's system events.
func (s *Store) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	if limit <= 0 {
		return s.none()
	}
	events, err := s.readAll(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read all after %d: %w", after, err)
	}
	return events, nil
}

func (s *Store) readAll(ctx context.Context, from uint64, limit int) ([]eventstore.Event, error) {
	var events []eventstore.Event
	for {
		// A forward read includes the event at its start: ask for one more.
		page := min(limit-len(events)+1, maxPage)
		n, last, err := s.readAllPage(ctx, from, page, limit, &events)
		if err != nil {
			return nil, err
		}
		if len(events) >= limit || n < page {
			return events, nil // full, or the end of $all
		}
		from = last
	}
}

// readAllPage reads up to page events of $all forwards from the event at
// position from, appends those after it that are no system events to events
// until it holds limit, and returns how many it read and the position of
// the last one read.
func (s *Store) readAllPage(ctx context.Context, from uint64, page, limit int, events *[]eventstore.Event) (int, uint64, error) {
	opts := esdb.ReadAllOptions{From: esdb.Start{}}
	if from > 0 {
		opts.From = resumeAt(from)
	}
	want := limit - len(*events)
	var got []eventstore.Event
	var n int
	var last uint64
	err := s.call(ctx, func(ctx context.Context, c *esdb.Client) error {
		rs, err := c.ReadAll(ctx, opts, uint64(page))
		if err != nil {
			return err
		}
		defer rs.Close()
		for len(got) < want {
			r, err := rs.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			n++
			last = position(r.Event.Position)
			if last <= from || isSystem(r.Event) {
				continue
			}
			e, err := toEvent(r.Event)
			if err != nil {
				return &decodeError{err}
			}
			got = append(got, e)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err // the call may still be running: leave its results alone
	}
	*events = append(*events, got...)
	return n, last, nil
}

// Head returns the position of the newest event that is not a system event,
// 0 when there is none.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	const page = 64
	opts := esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}
	for {
		var head, oldest uint64
		n := 0
		err := s.call(ctx, func(ctx context.Context, c *esdb.Client) error {
			rs, err := c.ReadAll(ctx, opts, page)
			if err != nil {
				return err
			}
			defer rs.Close()
			for {
				r, err := rs.Recv()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				n++
				oldest = position(r.Event.Position)
				if !isSystem(r.Event) {
					head = oldest
					return nil
				}
			}
		})
		if err != nil {
			return 0, fmt.Errorf("head: %w", err)
		}
		if head > 0 || n < page {
			return head, nil
		}
		opts.From = resumeAt(oldest) // backwards reads exclude their start
	}
}

// none is the answer to a read of zero events.
func (s *Store) none() ([]eventstore.Event, error) {
	if s.closed.Load() {
		return nil, eventstore.ErrClosed
	}
	return nil, nil
}
