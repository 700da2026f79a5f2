// Package compact is the binary encoding of the snapshots of in-memory
// followers: unsigned and signed varints and length-prefixed strings,
// appended to a byte slice and read back with a sticky error.
package compact

import (
	"encoding/binary"
	"errors"
)

// ErrCorrupt: the data ends early or holds a malformed varint or length.
var ErrCorrupt = errors.New("corrupt compact encoding")

// Writer appends values to its buffer. The zero value is ready to use.
type Writer struct{ b []byte }

// Uint appends n as an unsigned varint.
func (w *Writer) Uint(n uint64) { w.b = binary.AppendUvarint(w.b, n) }

// Int appends n as a signed (zig-zag) varint.
func (w *Writer) Int(n int64) { w.b = binary.AppendVarint(w.b, n) }

// String appends s with its length.
func (w *Writer) String(s string) {
	w.Uint(uint64(len(s)))
	w.b = append(w.b, s...)
}

// Raw appends b as it is (fixed-size fields the reader knows the size of).
func (w *Writer) Raw(b []byte) { w.b = append(w.b, b...) }

// Bytes returns what was written.
func (w *Writer) Bytes() []byte { return w.b }

// Reader reads values a Writer wrote, in the same order. After the first
// failure every read returns the zero value and Done reports ErrCorrupt.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a reader of data.
func NewReader(data []byte) *Reader { return &Reader{b: data} }

// Uint reads an unsigned varint.
func (r *Reader) Uint() uint64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[k:]
	return n
}

// Int reads a signed varint.
func (r *Reader) Int() int64 {
	if r.err != nil {
		return 0
	}
	n, k := binary.Varint(r.b)
	if k <= 0 {
		r.err = ErrCorrupt
		return 0
	}
	r.b = r.b[k:]
	return n
}

// Len reads a count of items that each take at least one byte, so a
// corrupt count cannot make the caller allocate more than the data holds.
func (r *Reader) Len() int {
	n := r.Uint()
	if n > uint64(len(r.b)) {
		r.err = ErrCorrupt
		return 0
	}
	return int(n)
}

// String reads a length-prefixed string.
func (r *Reader) String() string {
	return string(r.Raw(r.Len()))
}

// Raw reads the next n bytes (aliasing the data).
func (r *Reader) Raw(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = ErrCorrupt
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// Done returns ErrCorrupt if a read failed or data is left over, nil
// otherwise. Call it once everything was read.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) > 0 {
		return ErrCorrupt
	}
	return r.err
}
