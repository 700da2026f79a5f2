// Package eventstore defines the event store contract that every part of
// coinledger builds on: an append-only log of streams with a single global
// order, optimistic concurrency per stream and a per-stream hash chain.
//
// Implementations live in subpackages (sqlite, esdb, postgres); every implementation
// passes the conformance suite in eventstore/storetest.
package eventstore

import (
	"context"
	"errors"
)

// Sentinel errors. Implementations wrap them with the operation and ids;
// callers check them with errors.Is.
var (
	// ErrConflict: the stream's current revision did not match the expected version.
	ErrConflict = errors.New("wrong expected version")
	// ErrInvalidEvent: an event was rejected before anything was written.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("event store closed")
	// ErrUnavailable: a network store could not be reached (the connection
	// was refused or lost, the server is restarting). Retrying later may
	// succeed; an append that failed so has an unknown outcome, and a retry
	// with the same events (ids and contents) is recognised if it was written.
	ErrUnavailable = errors.New("event store unavailable")
	// ErrStoreFailed: the store met an error it cannot recover from in
	// process (an I/O error on commit: a failed fsync may have lost data the
	// kernel still shows, so no later write can be trusted) and refuses
	// every append until the process restarts and recovers from its log.
	// Reads keep working.
	ErrStoreFailed = errors.New("event store failed")
)

// FailStopper is an optional capability of a Store that stops for good
// after an unrecoverable write error (fail-stop). Failed returns nil while
// the store accepts appends, and afterwards the error (wrapping
// ErrStoreFailed) that every append now gets.
type FailStopper interface {
	Failed() error
}

// Failure reports why s refuses appends for good: s.Failed() when s is a
// FailStopper, else nil.
func Failure(s Store) error {
	if f, ok := s.(FailStopper); ok {
		return f.Failed()
	}
	return nil
}

// Store is the event store contract.
//
// Ordering: every event gets a global Position that strictly increases in the
// order events become visible; ReadAll and Subscribe deliver events in that
// order and never skip one that was acknowledged. Positions may be sparse and
// need not start at 1 (EventStoreDB's are log offsets); an "after" argument is
// 0, a position the store returned, or beyond the head. Within a stream,
// Revision counts from 0 without gaps.
//
// Concurrency: all methods are safe for concurrent use. An Append is atomic:
// all of its events are stored or none. Concurrent appends to different
// streams never fail each other; to one stream, at most one of several appends
// with the same exact expected version wins and the others get ErrConflict.
//
// Idempotence: a retried append writes nothing and returns the original
// result with Retry set, as EventStoreDB does. A retry is recognised only
// when the events are the same, ids and contents (type, data and metadata),
// at the place the original went: with an exact or no-stream expectation
// right after the expected revision; with Any or StreamExists among the
// stream's recent events (a window of at least 32). The same ids with other
// contents, ids that match only in part, or the ids found elsewhere are a
// conflict (ErrConflict). Every store must apply this rule (the group-commit
// stores and the esdb adapter share it: internal/groupcommit.Match).
// Deterministic ids (see Prepare and EventID) make a retried command
// produce the same ids; as they are derived from the contents too, even a
// server that compares ids only cannot take other contents for a retry.
//
// Limits: Prepare's per-event size limit applies to every store; a store may
// also limit the size of one append (EventStoreDB: 1 MiB by default).
type Store interface {
	// Append stores events at the end of stream if the stream's state matches
	// expected. Events are validated (type, JSON data, size) before anything
	// is written: a bad event fails the whole append with ErrInvalidEvent.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...EventData) (AppendResult, error)
	// ReadStream returns up to limit events of stream with Revision >= from,
	// oldest first. A stream that does not exist reads as empty.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]Event, error)
	// ReadAll returns up to limit events with Position > after, in global order.
	ReadAll(ctx context.Context, after uint64, limit int) ([]Event, error)
	// Subscribe calls fn with batches of events with Position > after in
	// global order: first the stored ones, then live ones as they are
	// appended. It returns when ctx is done (with ctx.Err()) or fn fails
	// (with fn's error). Batches are never empty.
	Subscribe(ctx context.Context, after uint64, fn func(context.Context, []Event) error) error
	// Head returns the Position of the newest event, 0 for an empty store.
	Head(ctx context.Context) (uint64, error)
}
