package groupcommit

import (
	"bytes"

	"github.com/coinledger/coinledger/eventstore"
)

// Verdict is what Match found of an append's events among stored ones.
type Verdict int

const (
	// Absent: the first event's id is not there.
	Absent Verdict = iota
	// Found: every event is there, in order, with the same ids, types,
	// data and metadata: the append is a retry of the one that wrote them.
	Found
	// Differs: every id is there in order, but some event's contents are
	// not the same: a conflict.
	Differs
	// Partial: the first id is there, not all of the others after it: a
	// conflict.
	Partial
)

// Match is the one rule by which every store recognises a retried append
// (eventstore.Store's idempotence): it looks for events among stored, a
// stream's consecutive events oldest first as read from the store. With
// anywhere the first event may be anywhere among stored (an Any or
// StreamExists append, looked for in a window of recent events); without,
// only at stored[0], the place an exact or no-stream append's original
// went. On Found, res is the original's result, marked as a retry.
func Match(stored []eventstore.Event, events []eventstore.EventData, anywhere bool) (res eventstore.AppendResult, v Verdict) {
	for i, e := range stored {
		if e.ID != events[0].ID {
			if !anywhere {
				return eventstore.AppendResult{}, Absent
			}
			continue
		}
		n := len(events)
		if i+n > len(stored) {
			return eventstore.AppendResult{}, Partial
		}
		v := Found
		for j, want := range events {
			got := stored[i+j]
			if got.ID != want.ID {
				return eventstore.AppendResult{}, Partial
			}
			if !same(got, want) {
				v = Differs
			}
		}
		if v != Found {
			return eventstore.AppendResult{}, v
		}
		last := stored[i+n-1]
		return eventstore.AppendResult{NextRevision: last.Revision + 1, Position: last.Position, Retry: true}, Found
	}
	return eventstore.AppendResult{}, Absent
}

// same reports whether a stored event has want's contents: type, data (as
// Prepare made it canonical) and metadata.
func same(got eventstore.Event, want eventstore.EventData) bool {
	return got.Type == want.Type && bytes.Equal(got.Data, want.Data) && got.Metadata == want.Metadata
}

// Why explains a verdict that makes an append a conflict.
func (v Verdict) Why() string {
	switch v {
	case Differs:
		return "events with these ids were appended with other contents"
	case Partial:
		return "some of these event ids are stored, not all of them in this order"
	}
	return "these events are not stored there"
}
