package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/google/uuid"
)

// DefaultMaxEventSize is the default limit on one event's data plus metadata.
const DefaultMaxEventSize = 1 << 20

// SizeLimited is implemented by stores whose Append may apply another
// per-event limit than DefaultMaxEventSize: MaxEventSize returns the limit
// it passes to Prepare. Callers that check events before an append (the
// Batcher) ask for it.
type SizeLimited interface {
	MaxEventSize() int
}

// maxEventSizeOf returns the per-event size limit of store (its
// MaxEventSize if it is SizeLimited, else DefaultMaxEventSize).
func maxEventSizeOf(store Store) int {
	if l, ok := store.(SizeLimited); ok && l.MaxEventSize() > 0 {
		return l.MaxEventSize()
	}
	return DefaultMaxEventSize
}

// idNamespace is the UUIDv5 namespace of deterministic event ids.
var idNamespace = uuid.MustParse("6f1d8c1e-3b51-4c59-9a51-6f0a43c6a0d1")

// DeterministicID is the id of the index-th event appended to stream under
// an idempotency key, for a caller that chooses its events' ids: the same
// key always yields the same ids, so a retried append is recognised as a
// repeat by every store (when its contents are the same too). The stream
// is part of the name, so one key used on two streams yields distinct ids.
// Prepare and the Batcher derive keyed ids with EventID, which covers the
// contents as well.
func DeterministicID(stream, key string, index int) uuid.UUID {
	return uuid.NewSHA1(idNamespace, []byte(stream+"\x00"+key+"\x00"+strconv.Itoa(index)))
}

// EventID is the id Prepare gives an event with an idempotency key and no
// id of its own: derived from the stream, the key (in e.Metadata), the
// event's index among the events of its command (for Prepare: among the
// events of the append carrying that key) and its contents (type, data as
// given, metadata). A retried command that decides the same events gets
// the same ids whatever else its append carries; the same key with other
// contents gets other ids, so that no store, not even one whose server
// compares ids only, can take them for a retry.
func EventID(stream string, index int, e EventData) uuid.UUID {
	// The canonical encoding of the event (see Canonical), the index in
	// place of the revision, without id or creation time.
	var buf [512]byte
	b := AppendCanonical(buf[:0], Event{Stream: stream, Revision: uint64(index), Type: e.Type, Data: e.Data, Metadata: e.Metadata})
	return uuid.NewSHA1(contentNamespace, b)
}

// contentNamespace is the UUIDv5 namespace of EventID.
var contentNamespace = uuid.MustParse("0b8a4a57-7c2e-4d7e-b1c4-5d0f2f5e6a93")

// Retryable reports whether an append of events could be a retry of an
// earlier one: some event has an id chosen by the caller or derived from an
// idempotency key. Stores skip retry detection for the others.
func Retryable(events []EventData) bool {
	for _, e := range events {
		if e.ID != uuid.Nil || e.Metadata.IdempotencyKey != "" {
			return true
		}
	}
	return false
}

// Prepare validates events for an append to stream and normalises them:
// data compacted to canonical JSON, missing ids filled in (EventID for an
// event with an idempotency key, its index counted among the append's
// events with that key; else a random id). It never modifies its argument.
// maxSize <= 0 means DefaultMaxEventSize.
func Prepare(stream string, events []EventData, maxSize int) ([]EventData, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxEventSize
	}
	if !validName(stream) {
		return nil, fmt.Errorf("%w: stream name %q: must have 1 to 255 bytes and not start with $", ErrInvalidEvent, stream)
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: append to %s has no events", ErrInvalidEvent, stream)
	}
	out := make([]EventData, len(events))
	seen := make(map[uuid.UUID]struct{}, len(events))
	var keyed map[string]int // events with a derived id so far, by key
	for i, e := range events {
		if !validName(e.Type) {
			return nil, fmt.Errorf("%w: event %d of %s: type %q must have 1 to 255 bytes and not start with $", ErrInvalidEvent, i, stream, e.Type)
		}
		data := e.Data
		if len(data) == 0 {
			data = json.RawMessage("{}")
		}
		var buf bytes.Buffer
		buf.Grow(len(data))
		if err := json.Compact(&buf, data); err != nil {
			return nil, fmt.Errorf("%w: event %d (%s) of %s: data is not JSON: %v", ErrInvalidEvent, i, e.Type, stream, err)
		}
		if size := buf.Len() + metadataSize(e.Metadata); size > maxSize {
			return nil, fmt.Errorf("%w: event %d (%s) of %s has %d bytes, limit %d", ErrInvalidEvent, i, e.Type, stream, size, maxSize)
		}
		e.Data = buf.Bytes()
		if e.ID == uuid.Nil {
			if key := e.Metadata.IdempotencyKey; key != "" {
				if keyed == nil {
					keyed = make(map[string]int, 1)
				}
				e.ID = EventID(stream, keyed[key], e)
				keyed[key]++
			} else {
				e.ID = uuid.New()
			}
		}
		if _, dup := seen[e.ID]; dup {
			return nil, fmt.Errorf("%w: event id %s appears twice in one append to %s", ErrInvalidEvent, e.ID, stream)
		}
		seen[e.ID] = struct{}{}
		out[i] = e
	}
	return out, nil
}

// validName reports whether s may name a stream or an event type: 1 to 255
// bytes, not starting with $ (the prefix of EventStoreDB's system names).
func validName(s string) bool { return s != "" && len(s) <= 255 && s[0] != '$' }

// metadataSize is what an event's metadata adds to its size.
func metadataSize(m Metadata) int {
	return len(m.CorrelationID) + len(m.CausationID) + len(m.Actor) + len(m.IdempotencyKey)
}

// precheck returns the error Prepare would return for events, without
// Prepare's work on their data when it can tell that there is none: the
// stream and every type are valid, every event fits maxSize with its data
// as given (compacting never makes data longer) and no two carry the same
// id (Prepare gives those without one distinct ids). It leaves to Prepare
// data that is not JSON, which the codec never makes. The Batcher checks
// each command with it and leaves the one full Prepare to the store's
// Append.
func precheck(stream string, events []EventData, maxSize int) error {
	if maxSize <= 0 {
		maxSize = DefaultMaxEventSize
	}
	plain := validName(stream) && len(events) > 0
	for i, e := range events {
		if !plain {
			break
		}
		plain = validName(e.Type) && max(len(e.Data), len("{}"))+metadataSize(e.Metadata) <= maxSize
		for _, o := range events[:i] { // a command has a few events
			plain = plain && (e.ID == uuid.Nil || e.ID != o.ID)
		}
	}
	if plain {
		return nil
	}
	_, err := Prepare(stream, events, maxSize)
	return err
}
