package outbox

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/coinledger/coinledger/internal/compact"
)

// encodeState encodes the follower's state compactly (internal/compact),
// in a stable order (the same state always gives the same bytes):
//
//	uvarint n, then n pending deliveries sorted by id:
//	    id (string), uvarint next revision, varint due (Unix ns; 0: none)
//	uvarint m, then m awaited delivery ids, sorted
//
// A pending delivery takes about 30 bytes, whatever its history.
func encodeState(p map[string]pending, awaiting map[string]struct{}) []byte {
	var w compact.Writer
	ids := slices.Sorted(maps.Keys(p))
	w.Uint(uint64(len(ids)))
	for _, id := range ids {
		e := p[id]
		due := int64(0)
		if !e.due.IsZero() {
			due = e.due.UnixNano()
		}
		w.String(id)
		w.Uint(e.next)
		w.Int(due)
	}
	ids = slices.Sorted(maps.Keys(awaiting))
	w.Uint(uint64(len(ids)))
	for _, id := range ids {
		w.String(id)
	}
	return w.Bytes()
}

// decodeState decodes what encodeState wrote; nil (or empty) is the empty
// state. A malformed snapshot is an error wrapping compact.ErrCorrupt.
func decodeState(b []byte) (map[string]pending, map[string]struct{}, error) {
	p, awaiting := map[string]pending{}, map[string]struct{}{}
	if len(b) == 0 {
		return p, awaiting, nil
	}
	r := compact.NewReader(b)
	for range r.Len() {
		id := r.String()
		next := r.Uint()
		var due time.Time
		if ns := r.Int(); ns != 0 {
			due = time.Unix(0, ns).UTC()
		}
		p[id] = pending{next: next, due: due}
	}
	for range r.Len() {
		awaiting[r.String()] = struct{}{}
	}
	if err := r.Done(); err != nil {
		return nil, nil, fmt.Errorf("outbox snapshot: %w", err)
	}
	return p, awaiting, nil
}
