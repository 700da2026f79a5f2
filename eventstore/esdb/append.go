package esdb

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/internal/groupcommit"
)

// Backoff between the internal retries of an Any or StreamExists append
// that lost a race. The retries are bounded by the context only: every lost
// race means another append succeeded, so the stream makes progress.
const (
	raceRetryMin = time.Millisecond
	raceRetryMax = 50 * time.Millisecond
)

// MaxEventSize is the per-event size limit Append applies (eventstore.SizeLimited).
func (s *Store) MaxEventSize() int { return s.opts.MaxEventSize }

// Append stores events at the end of stream if the stream matches expected.
// It reads the stream's newest event, chains the new events' hashes to it
// and appends with that exact revision; see the package documentation.
// A retried append (the same events, ids and contents, at the same place)
// returns the original result with Retry set and writes nothing.
func (s *Store) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, s.opts.MaxEventSize)
	if err == nil {
		err = s.check(stream, prepared)
	}
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("append %s@%s: %w", stream, expected, err)
	}
	repeatable := eventstore.Retryable(events)
	delay := raceRetryMin
	for {
		res, raced, err := s.appendOnce(ctx, stream, expected, prepared, repeatable)
		if raced {
			if err := s.sleep(ctx, delay/2+rand.N(delay)); err != nil {
				return eventstore.AppendResult{}, fmt.Errorf("append %s@%s: %w", stream, expected, err)
			}
			delay = min(2*delay, raceRetryMax)
			continue
		}
		if err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append %s@%s: %w", stream, expected, err)
		}
		return res, nil
	}
}

// check rejects what EventStoreDB would hide or refuse, before any I/O:
// system stream names and event types (they start with "$") and appends
// larger than MaxAppendSize.
func (s *Store) check(stream string, events []eventstore.EventData) error {
	if strings.HasPrefix(stream, "$") {
		return fmt.Errorf("%w: stream names starting with $ are EventStoreDB system streams", eventstore.ErrInvalidEvent)
	}
	size := 0
	for i, e := range events {
		if strings.HasPrefix(e.Type, "$") {
			return fmt.Errorf("%w: event %d: types starting with $ are EventStoreDB system types", eventstore.ErrInvalidEvent, i)
		}
		meta, err := encodeMetadata(eventstore.Event{Metadata: e.Metadata, Created: s.now()})
		if err != nil {
			return fmt.Errorf("%w: event %d: metadata: %v", eventstore.ErrInvalidEvent, i, err)
		}
		size += appendSize(e.Data, meta, e.Type)
	}
	if size > s.opts.MaxAppendSize {
		return fmt.Errorf("%w: append has %d bytes, the server takes at most %d", eventstore.ErrInvalidEvent, size, s.opts.MaxAppendSize)
	}
	return nil
}

// appendSize is what one event counts towards MaxAppendSize, as the server
// counts it: data, user metadata and twice the type's length.
func appendSize(data, meta []byte, typ string) int { return len(data) + len(meta) + 2*len(typ) }

// appendOnce makes one attempt; raced reports a conflict that only means
// another append to the stream came first, so that an Any or StreamExists
// append should try again.
func (s *Store) appendOnce(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events []eventstore.EventData, repeatable bool) (res eventstore.AppendResult, raced bool, err error) {
	if expected.IsNoStream() {
		// Written only if the stream does not exist: the chain starts at zero.
		res, err = s.writeOwn(ctx, stream, esdb.NoStream{}, 0, eventstore.Hash{}, events, repeatable)
		return res, false, err
	}
	n := 1
	if repeatable && !isExact(expected) {
		n = len(events) + s.opts.DedupeWindow
	}
	tail, err := s.tail(ctx, stream, n)
	if err != nil {
		return res, false, err
	}
	if rev, ok := expected.Revision(); ok {
		switch {
		case len(tail) == 0:
			return res, false, fmt.Errorf("%w: the stream does not exist", eventstore.ErrConflict)
		case tail[0].Revision < rev:
			return res, false, fmt.Errorf("%w: the stream is at %d", eventstore.ErrConflict, tail[0].Revision)
		case tail[0].Revision > rev && repeatable:
			res, err = s.retried(ctx, stream, rev+1, events, tail[0].Revision)
			return res, false, err
		case tail[0].Revision > rev:
			// New ids: the server refuses them. No chain needed.
			res, err = s.write(ctx, stream, esdb.Revision(rev), rev+1, eventstore.Hash{}, events)
			return res, false, err
		}
		res, err = s.writeOwn(ctx, stream, esdb.Revision(rev), rev+1, tail[0].Hash, events, repeatable)
		return res, false, err
	}
	if len(tail) == 0 {
		if expected.IsStreamExists() {
			return res, false, fmt.Errorf("%w: the stream does not exist", eventstore.ErrConflict)
		}
		res, err = s.writeOwn(ctx, stream, esdb.NoStream{}, 0, eventstore.Hash{}, events, repeatable)
		return res, errors.Is(err, eventstore.ErrConflict), err
	}
	if repeatable {
		window := slices.Clone(tail)
		slices.Reverse(window) // oldest first
		switch res, v := groupcommit.Match(window, events, true); v {
		case groupcommit.Found:
			return res, false, nil
		case groupcommit.Differs, groupcommit.Partial:
			return res, false, fmt.Errorf("%w: %s", eventstore.ErrConflict, v.Why())
		}
	}
	head := tail[0]
	res, err = s.writeOwn(ctx, stream, esdb.Revision(head.Revision), head.Revision+1, head.Hash, events, repeatable)
	return res, errors.Is(err, eventstore.ErrConflict), err
}

func isExact(v eventstore.ExpectedVersion) bool { _, ok := v.Revision(); return ok }

// retried answers an exact append whose expectation no longer holds (the
// stream is at current): a retry when the stream's events from revision
// from on are the same events (groupcommit.Match), else a conflict. The
// adapter compares itself rather than leave it to the server, which
// compares ids only.
func (s *Store) retried(ctx context.Context, stream string, from uint64, events []eventstore.EventData, current uint64) (eventstore.AppendResult, error) {
	stored, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(from)}, uint64(len(events)))
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	res, v := groupcommit.Match(stored, events, false)
	if v != groupcommit.Found {
		return eventstore.AppendResult{}, fmt.Errorf("%w: the stream is at %d and %s", eventstore.ErrConflict, current, v.Why())
	}
	return res, nil
}

// writeOwn is write for an append that may repeat an earlier one. The
// server recognises a repeat by event ids alone, at the expected place,
// and answers it as if it were written: another writer may have appended
// events with these ids since the adapter read the stream (or, for
// NoStream, ever). So the adapter reads back what is stored from revision
// first on: its own events are there when the last one's hash is the one
// it computed (the hash covers this attempt's creation time and the
// chain); otherwise the stored events are the original of a retry when
// they are the same (groupcommit.Match: Retry set), and a conflict when
// not. Appends whose ids the store chooses at random skip the read.
func (s *Store) writeOwn(ctx context.Context, stream string, exp esdb.ExpectedRevision, first uint64, prev eventstore.Hash, events []eventstore.EventData, repeatable bool) (eventstore.AppendResult, error) {
	res, last, err := s.writeChained(ctx, stream, exp, first, prev, events)
	if err != nil || !repeatable {
		return res, err
	}
	stored, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(first)}, uint64(len(events)))
	if err != nil {
		return eventstore.AppendResult{}, fmt.Errorf("%w: read back: %w", eventstore.ErrUnavailable, err)
	}
	if len(stored) == len(events) && stored[len(stored)-1].Hash == last {
		return res, nil
	}
	res, v := groupcommit.Match(stored, events, false)
	if v != groupcommit.Found {
		return eventstore.AppendResult{}, fmt.Errorf("%w: the server took the append for a repeat, but %s", eventstore.ErrConflict, v.Why())
	}
	return res, nil
}

// write appends events as revisions first, first+1, ... chained to prev,
// with the server-side expectation exp.
func (s *Store) write(ctx context.Context, stream string, exp esdb.ExpectedRevision, first uint64, prev eventstore.Hash, events []eventstore.EventData) (eventstore.AppendResult, error) {
	res, _, err := s.writeChained(ctx, stream, exp, first, prev, events)
	return res, err
}

// writeChained is write that also returns the hash of the last event as
// sent.
func (s *Store) writeChained(ctx context.Context, stream string, exp esdb.ExpectedRevision, first uint64, prev eventstore.Hash, events []eventstore.EventData) (eventstore.AppendResult, eventstore.Hash, error) {
	created := s.now()
	data := make([]esdb.EventData, len(events))
	for i, ev := range events {
		e := eventstore.Event{
			ID: ev.ID, Stream: stream, Revision: first + uint64(i), Type: ev.Type,
			Data: ev.Data, Metadata: ev.Metadata, Created: created,
		}
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		meta, err := encodeMetadata(e)
		if err != nil {
			return eventstore.AppendResult{}, prev, err
		}
		data[i] = esdb.EventData{EventID: ev.ID, EventType: ev.Type, ContentType: esdb.ContentTypeJson, Data: ev.Data, Metadata: meta}
	}
	var wr *esdb.WriteResult
	err := s.call(ctx, func(ctx context.Context, c *esdb.Client) error {
		var err error
		wr, err = c.AppendToStream(ctx, stream, esdb.AppendToStreamOptions{ExpectedRevision: exp}, data...)
		return err
	})
	if err != nil {
		return eventstore.AppendResult{}, prev, translate(err)
	}
	res := eventstore.AppendResult{NextRevision: wr.NextExpectedVersion + 1, Position: wr.CommitPosition}
	if res.Position == 0 {
		// A repeated append whose original the server could not look up
		// reports no position: read it.
		if res.Position, err = s.positionOf(ctx, stream, wr.NextExpectedVersion); err != nil {
			return eventstore.AppendResult{}, prev, err
		}
	}
	return res, prev, nil
}

// positionOf returns the position of stream's event at revision rev.
func (s *Store) positionOf(ctx context.Context, stream string, rev uint64) (uint64, error) {
	events, err := s.readStream(ctx, stream, esdb.ReadStreamOptions{From: esdb.Revision(rev)}, 1)
	if err != nil {
		return 0, err
	}
	if len(events) == 0 {
		return 0, fmt.Errorf("event %s@%d not found after append", stream, rev)
	}
	return events[0].Position, nil
}

// now is the creation time of appended events: UTC, microsecond precision.
func (s *Store) now() time.Time { return s.opts.Now().UTC().Truncate(time.Microsecond) }

// sleep waits d, or until ctx ends (ctx.Err()) or the store closes (ErrClosed).
func (s *Store) sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return eventstore.ErrClosed
	}
}
