// Package esdb implements eventstore.Store on EventStoreDB (and KurrentDB)
// through the official gRPC client, EventStore-Client-Go/v4.
//
// # Positions
//
// EventStoreDB orders $all by a pair (commit position, prepare position) of
// byte offsets into its transaction log. Every event written through gRPC is
// a self-committed log record (PrepareFlags.IsCommitted), so since release
// 20.6.0 its commit and prepare position are both the record's own log
// position, distinct for every event, also within one multi-event append;
// the append's result reports the last event's. Events share a commit
// position only when written by an explicit transaction of the legacy TCP
// protocol, which this adapter never does; the 20.6.0 release candidate
// reported the append's first position as every event's prepare position.
//
// So Event.Position is the commit position: it strictly increases in $all
// order on every server version. It is sparse (it grows by the record's size)
// and starts well above 1. "After P" maps to the server position
// {Commit: P, Prepare: P}, which is exactly the event's own position:
// subscriptions start strictly after it, forward reads start at it (the
// adapter drops that first event). A position that is neither 0, nor an
// event's position, nor beyond the end of the log may be rejected by the
// server as invalid: it points inside a log record.
//
// Servers before 22.10 do not report $all positions when reading a single
// stream; ReadStream then returns Position 0 for every event. ReadAll,
// Subscribe, Head and Append always report real positions.
//
// # System events
//
// $all also holds the server's own events: streams and event types starting
// with "$" (stream metadata, users, projections' link events "$>", stats).
// ReadAll, Head and Subscribe skip them (Subscribe also asks the server to
// filter them out), and Append rejects such names with ErrInvalidEvent so
// that every appended event is visible in the global order.
//
// # Appends and the hash chain
//
// Append computes the stream's hash chain itself: it reads the stream's
// newest event (its revision and hash), hashes the new events after it and
// appends them with that exact revision, so no other append can slip in
// between. An exact expectation that conflicts fails with ErrConflict; for
// Any and StreamExists the adapter reads again and retries. The creation
// time (UTC, microseconds, part of the hash), the hash and the metadata
// travel as the event's user metadata JSON ("$correlationId" and
// "$causationId" as EventStoreDB's projections expect them).
//
// Event ids are deterministic when the caller gives an idempotency key,
// and derived from the events' contents too (eventstore.EventID), so a
// retried append is recognised and other contents under the same key are
// not. A retry is recognised as every store recognises it
// (internal/groupcommit.Match: the same ids and contents at the place the
// original went), by the adapter: with an exact revision that the stream
// has passed, it reads the events after that revision and compares them,
// writing nothing; with Any or StreamExists it looks among the stream's
// newest events (Options.DedupeWindow), much as the server itself only
// remembers recent ids for these expectations. Both answer the original
// result with Retry set.
//
// The server also recognises a repeat, by ids alone, when another writer
// appended events with these ids between the adapter's read of the stream
// head and its write (or, for NoStream, at any time), and answers it as a
// write. So after writing events with ids the caller chose or derived from
// a key, the adapter reads them back (one more read per such append): its
// own when the last one's hash is the one it computed (the hash covers
// this attempt's creation time), else a retry if they are the same events
// and a conflict if not.
//
// # Client caveats (v4.2.0)
//
// esdb.FromError returns ok=true when the error is nil and does not unwrap
// wrapped errors, so the adapter uses errors.As instead. A client that
// fails maxDiscoverAttempts discoveries in a row closes for good, and calls
// that arrive while it rediscovers block inside it without regard to their
// context (forever, if that discovery fails). So, unless the connection
// string sets maxDiscoverAttempts, the adapter lets the client rediscover
// without limit (with an explicit limit it replaces a client that gave up),
// and runs every call on a goroutine of its own so that callers return when
// their context ends. Open checks the server with a separate client that
// does give up, so that it fails on an unreachable server.
package esdb
