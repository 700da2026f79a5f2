package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"
)

// errSnapshot: a snapshot that does not decode.
var errSnapshot = errors.New("malformed snapshot")

// encodeState encodes the follower's state compactly, in a stable order
// (the same state always gives the same bytes):
//
//	uvarint n, then n pending deliveries sorted by id:
//	    uvarint len(id), id, uvarint next revision, varint due (Unix ns; 0: none)
//	uvarint m, then m awaited delivery ids sorted: uvarint len(id), id
//
// A pending delivery takes about 30 bytes, whatever its history.
func encodeState(p map[string]pending, awaiting map[string]struct{}) []byte {
	ids := make([]string, 0, len(p))
	size := 2 * binary.MaxVarintLen64
	for id := range p {
		ids = append(ids, id)
		size += len(id) + 3*binary.MaxVarintLen64
	}
	for id := range awaiting {
		size += len(id) + binary.MaxVarintLen64
	}
	slices.Sort(ids)
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		e := p[id]
		due := int64(0)
		if !e.due.IsZero() {
			due = e.due.UnixNano()
		}
		b = appendString(b, id)
		b = binary.AppendUvarint(b, e.next)
		b = binary.AppendVarint(b, due)
	}
	ids = ids[:0]
	for id := range awaiting {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = appendString(b, id)
	}
	return b
}

// decodeState decodes what encodeState wrote; nil (or empty) is the empty
// state.
func decodeState(b []byte) (map[string]pending, map[string]struct{}, error) {
	p, awaiting := map[string]pending{}, map[string]struct{}{}
	if len(b) == 0 {
		return p, awaiting, nil
	}
	r := reader{b: b}
	for range r.count() {
		id := r.string()
		next := r.uvarint()
		var due time.Time
		if ns := r.varint(); ns != 0 {
			due = time.Unix(0, ns).UTC()
		}
		p[id] = pending{next: next, due: due}
	}
	for range r.count() {
		awaiting[r.string()] = struct{}{}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return p, awaiting, nil
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// reader reads encodeState's fields; after the first error it reads zeros
// and keeps the error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errSnapshot, what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// count reads a number of items, each at least one byte long.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("count beyond the data")
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail("string beyond the data")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
