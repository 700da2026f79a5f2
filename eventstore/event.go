package eventstore

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// EventData is an event to append.
type EventData struct {
	// ID identifies the event. Zero means: derived from Metadata.IdempotencyKey
	// and the contents when there is a key (EventID: a retried command
	// that decides the same events produces the same ids and is
	// deduplicated), otherwise a random id.
	ID       uuid.UUID
	Type     string
	Data     json.RawMessage
	Metadata Metadata
}

// Metadata travels with every event.
type Metadata struct {
	CorrelationID  string `json:"correlation_id,omitempty"`
	CausationID    string `json:"causation_id,omitempty"`
	Actor          string `json:"actor,omitempty"`
	SchemaVersion  int    `json:"schema_version,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Event is a stored event.
type Event struct {
	ID       uuid.UUID
	Stream   string
	Revision uint64 // position within the stream, from 0
	Position uint64 // global position, from 1, strictly increasing
	Type     string
	Data     json.RawMessage
	Metadata Metadata
	Created  time.Time // set by the store at append time, UTC, microsecond precision
	Hash     Hash      // SHA-256(previous hash in the stream ‖ Canonical(event))
}

func (e Event) String() string {
	return fmt.Sprintf("%s@%d #%d %s", e.Stream, e.Revision, e.Position, e.Type)
}

// AppendResult tells where an append landed.
type AppendResult struct {
	// NextRevision is the revision the stream's next event will get.
	NextRevision uint64
	// Position is the global position of the last appended event.
	Position uint64
	// Retry: the append was recognised as a retry of an earlier one (the
	// same events, ids and contents, at the place the original went; see
	// Store): nothing was written, and NextRevision and Position are the
	// original's. A caller that keeps state of the stream must not take
	// its own events for written: the stream may hold others after them.
	Retry bool
}

// ExpectedVersion states what an append expects of its stream.
type ExpectedVersion struct {
	kind     expectKind
	revision uint64
}

type expectKind uint8

const (
	expectAny expectKind = iota
	expectNoStream
	expectExists
	expectExact
)

var (
	// Any appends whatever the stream's state.
	Any = ExpectedVersion{kind: expectAny}
	// NoStream appends only to a stream that has no events.
	NoStream = ExpectedVersion{kind: expectNoStream}
	// StreamExists appends only to a stream that has events.
	StreamExists = ExpectedVersion{kind: expectExists}
)

// Exact appends only if the stream's last event has this revision.
func Exact(revision uint64) ExpectedVersion {
	return ExpectedVersion{kind: expectExact, revision: revision}
}

// ExpectRevision is what a caller that has read next events of a stream
// expects: NoStream for next == 0, else Exact(next-1).
func ExpectRevision(next uint64) ExpectedVersion {
	if next == 0 {
		return NoStream
	}
	return Exact(next - 1)
}

// IsAny, IsNoStream, IsStreamExists and Revision expose the expectation to
// implementations.
func (v ExpectedVersion) IsAny() bool          { return v.kind == expectAny }
func (v ExpectedVersion) IsNoStream() bool     { return v.kind == expectNoStream }
func (v ExpectedVersion) IsStreamExists() bool { return v.kind == expectExists }

// Revision returns the exact revision and whether the expectation is exact.
func (v ExpectedVersion) Revision() (uint64, bool) { return v.revision, v.kind == expectExact }

// Allows reports whether a stream whose next revision is next satisfies v.
func (v ExpectedVersion) Allows(next uint64) bool {
	switch v.kind {
	case expectNoStream:
		return next == 0
	case expectExists:
		return next > 0
	case expectExact:
		return next == v.revision+1
	}
	return true
}

func (v ExpectedVersion) String() string {
	switch v.kind {
	case expectNoStream:
		return "no-stream"
	case expectExists:
		return "stream-exists"
	case expectExact:
		return fmt.Sprintf("%d", v.revision)
	}
	return "any"
}
