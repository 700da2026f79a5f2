package eventstore

import (
	"context"
	"encoding/json"
	"fmt"
)

// Importer is an optional capability of a Store: appending events exported
// from another store exactly as they are. Append cannot do that, because it
// sets the creation time and computes the hash, and both are covered by the
// hash chain.
type Importer interface {
	// Import appends events, given in the global order of their source,
	// keeping their ids, types, data bytes, metadata, creation times and
	// hashes; their positions are assigned by the store, in the given order.
	// Events may belong to several streams; each must be the next of its
	// stream (Revision equal to the stream's next revision), else the import
	// fails with ErrConflict. Import does not recompute hashes: the caller
	// verifies the chains (Verifier) before importing.
	//
	// SQLite imports all events atomically; EventStoreDB appends each run of
	// consecutive events of one stream atomically, in order, and stops at
	// the first failure.
	Import(ctx context.Context, events []Event) (AppendResult, error)
}

// ValidateImport checks what Import requires, without altering the events:
// at least one, and of every event a stream name and type as Prepare takes
// them, an id, and JSON data. Stores call it before writing anything.
func ValidateImport(events []Event) error {
	if len(events) == 0 {
		return fmt.Errorf("import: %w: no events", ErrInvalidEvent)
	}
	for _, e := range events {
		if !validName(e.Stream) {
			return fmt.Errorf("%w: import %s: stream name must have 1 to 255 bytes and not start with $", ErrInvalidEvent, e)
		}
		if !validName(e.Type) {
			return fmt.Errorf("%w: import %s: type must have 1 to 255 bytes and not start with $", ErrInvalidEvent, e)
		}
		if e.ID == [16]byte{} {
			return fmt.Errorf("%w: import %s: no event id", ErrInvalidEvent, e)
		}
		if !json.Valid(e.Data) {
			return fmt.Errorf("%w: import %s: data is not JSON", ErrInvalidEvent, e)
		}
	}
	return nil
}
