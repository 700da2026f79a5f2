package esdb

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
)

// createdLayout writes creation times in UTC with exactly microseconds.
const createdLayout = "2006-01-02T15:04:05.000000Z07:00"

// userMetadata is the user metadata JSON stored with every event.
type userMetadata struct {
	CorrelationID  string          `json:"$correlationId,omitempty"`
	CausationID    string          `json:"$causationId,omitempty"`
	Actor          string          `json:"actor,omitempty"`
	SchemaVersion  int             `json:"schemaVersion,omitempty"`
	IdempotencyKey string          `json:"idempotencyKey,omitempty"`
	Created        string          `json:"created"`
	Hash           eventstore.Hash `json:"hash"`
}

// encodeMetadata returns the user metadata JSON of e.
func encodeMetadata(e eventstore.Event) ([]byte, error) {
	return json.Marshal(userMetadata{
		CorrelationID:  e.Metadata.CorrelationID,
		CausationID:    e.Metadata.CausationID,
		Actor:          e.Metadata.Actor,
		SchemaVersion:  e.Metadata.SchemaVersion,
		IdempotencyKey: e.Metadata.IdempotencyKey,
		Created:        e.Created.UTC().Format(createdLayout),
		Hash:           e.Hash,
	})
}

// isSystem reports whether r is one of the server's own events, which the
// store does not show: its stream or its type starts with "$".
func isSystem(r *esdb.RecordedEvent) bool {
	return strings.HasPrefix(r.EventType, "$") || strings.HasPrefix(r.StreamID, "$")
}

// position maps a server position to Event.Position: the commit position,
// or 0 when the server did not report one (stream reads before 22.10 report
// the maximum value).
func position(p esdb.Position) uint64 {
	if p.Commit == math.MaxUint64 {
		return 0
	}
	return p.Commit
}

// resumeAt is the server position of the event at Event.Position p, from
// which reading or subscribing continues after it.
func resumeAt(p uint64) esdb.Position { return esdb.Position{Commit: p, Prepare: p} }

// toEvent decodes a stored event. An event without user metadata (written by
// another client) gets the server's creation time and a zero hash, which
// fails a hash chain check; malformed metadata is an error.
func toEvent(r *esdb.RecordedEvent) (eventstore.Event, error) {
	e := eventstore.Event{
		ID:       r.EventID,
		Stream:   r.StreamID,
		Revision: r.EventNumber,
		Position: position(r.Position),
		Type:     r.EventType,
		Data:     json.RawMessage(r.Data),
	}
	if len(r.UserMetadata) == 0 {
		e.Created = r.CreatedDate.UTC().Truncate(time.Microsecond)
		return e, nil
	}
	var m userMetadata
	if err := json.Unmarshal(r.UserMetadata, &m); err != nil {
		return e, fmt.Errorf("decode %s: metadata: %w", e, err)
	}
	created, err := time.Parse(time.RFC3339Nano, m.Created)
	if err != nil {
		return e, fmt.Errorf("decode %s: created: %w", e, err)
	}
	e.Created = created.UTC()
	e.Hash = m.Hash
	e.Metadata = eventstore.Metadata{
		CorrelationID:  m.CorrelationID,
		CausationID:    m.CausationID,
		Actor:          m.Actor,
		SchemaVersion:  m.SchemaVersion,
		IdempotencyKey: m.IdempotencyKey,
	}
	return e, nil
}
