package eventstore

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Hash is a link of a stream's hash chain.
type Hash [sha256.Size]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText encodes the hash as hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText decodes a hex hash.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("hash: want %d hex digits, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Canonical returns the bytes of e that its hash covers: id, stream, revision,
// type, created time, metadata and data, each length-prefixed so no two events
// share an encoding. The global position is not covered: it is assigned by the
// store and may differ after an export to another store.
func Canonical(e Event) []byte {
	return AppendCanonical(make([]byte, 0, 128+len(e.Stream)+len(e.Type)+len(e.Data)), e)
}

// AppendCanonical appends Canonical(e) to b.
func AppendCanonical(b []byte, e Event) []byte {
	b = append(b, "coinledger/event/v1"...)
	b = appendField(b, e.ID[:])
	b = appendField(b, []byte(e.Stream))
	b = binary.BigEndian.AppendUint64(b, e.Revision)
	b = appendField(b, []byte(e.Type))
	b = binary.BigEndian.AppendUint64(b, uint64(e.Created.UnixMicro()))
	b = appendField(b, []byte(e.Metadata.CorrelationID))
	b = appendField(b, []byte(e.Metadata.CausationID))
	b = appendField(b, []byte(e.Metadata.Actor))
	b = binary.BigEndian.AppendUint32(b, uint32(e.Metadata.SchemaVersion))
	b = appendField(b, []byte(e.Metadata.IdempotencyKey))
	return appendField(b, e.Data)
}

func appendField(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// ChainHash computes the hash of e given the hash of the previous event in
// its stream (the zero Hash for the first event).
func ChainHash(prev Hash, e Event) Hash {
	var buf [512]byte
	return AppendChainHash(buf[:0], prev, e)
}

// AppendChainHash is ChainHash(prev, e), using buf (whose contents it
// overwrites) for the bytes it hashes: a caller hashing many events saves
// an allocation per event by passing the same buffer.
func AppendChainHash(buf []byte, prev Hash, e Event) Hash {
	b := append(buf[:0], prev[:]...)
	return sha256.Sum256(AppendCanonical(b, e))
}

// GlobalLink is the global chain's value after e, the n-th event of the
// log in global order (n counts from 1), given its value after the event
// before (the zero Hash before the first):
//
//	SHA-256("coinledger/global/v1" ‖ be64(n) ‖ prev ‖ e.Hash)
//
// e.Hash covers all of e and its stream's chain, so the global chain covers
// every event and the order of all of them: deleting, inserting or
// reordering any event changes every later link. It covers the ordinal n,
// not the store's Position: positions are sparse in EventStoreDB and change
// when a log is exported into another store; the ordinal and the chain do
// not. (In the embedded store, whose positions count from 1 without gaps,
// n is the position.) Stores do not keep the links: every reader
// (GlobalChain) recomputes them, and signed checkpoints in the log anchor
// them (domain/audit), so the chain needs no write path of its own and is
// the same on every store.
func GlobalLink(prev Hash, n uint64, e Event) Hash {
	var b [len(globalTag) + 8 + 2*sha256.Size]byte
	copy(b[:], globalTag)
	binary.BigEndian.PutUint64(b[len(globalTag):], n)
	copy(b[len(globalTag)+8:], prev[:])
	copy(b[len(globalTag)+8+sha256.Size:], e.Hash[:])
	return sha256.Sum256(b[:])
}

const globalTag = "coinledger/global/v1"

// GlobalChain folds events read in global order into the global chain.
// The zero value is the chain of the empty log.
type GlobalChain struct {
	// Events counts the events added: the ordinal of the last one.
	Events uint64
	// Head is the chain's value after the last event added.
	Head Hash
}

// Add links the next event of the log.
func (g *GlobalChain) Add(e Event) {
	g.Events++
	g.Head = GlobalLink(g.Head, g.Events, e)
}

// ChainError reports a broken hash chain.
type ChainError struct {
	Stream   string
	Revision uint64
	Reason   string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("hash chain of %s broken at revision %d: %s", e.Stream, e.Revision, e.Reason)
}

// Verifier checks hash chains over events read in global or stream order.
// It holds the last hash and revision of every stream it has seen.
type Verifier struct {
	heads map[string]chainHead
	buf   []byte // of Verify's hashes
	// Events counts the events verified.
	Events uint64
	// Linked counts the events accepted by Link, whose hashes were not
	// recomputed.
	Linked uint64
}

type chainHead struct {
	next uint64
	hash Hash
}

// NewVerifier returns a Verifier that expects every stream to start at revision 0.
func NewVerifier() *Verifier {
	return &Verifier{heads: make(map[string]chainHead), buf: make([]byte, 0, 1024)}
}

// Verify checks the next event; events of one stream must come in revision order.
func (v *Verifier) Verify(e Event) error {
	return v.VerifyHashed(e, AppendChainHash(v.buf[:0], v.heads[e.Stream].hash, e))
}

// VerifyHashed is Verify with e's hash recomputed by the caller (maybe
// concurrently, for many events at once): ChainHash of e and the stored
// hash of the event before e in its stream (the zero Hash for none).
func (v *Verifier) VerifyHashed(e Event, want Hash) error {
	h := v.heads[e.Stream]
	if e.Revision != h.next {
		return &ChainError{e.Stream, e.Revision, fmt.Sprintf("expected revision %d", h.next)}
	}
	if want != e.Hash {
		return &ChainError{e.Stream, e.Revision, fmt.Sprintf("hash %s, recomputed %s", e.Hash, want)}
	}
	v.heads[e.Stream] = chainHead{next: e.Revision + 1, hash: e.Hash}
	v.Events++
	return nil
}

// Link accepts e's stated hash as the next link of its stream without
// recomputing it: for an event whose data the reader was shown redacted
// (Sealing.Redact), which therefore cannot be hashed again. It checks that
// e comes next in its stream; the next event's hash, which covers e's, is
// verified as usual.
func (v *Verifier) Link(e Event) error {
	h := v.heads[e.Stream]
	if e.Revision != h.next {
		return &ChainError{e.Stream, e.Revision, fmt.Sprintf("expected revision %d", h.next)}
	}
	v.heads[e.Stream] = chainHead{next: e.Revision + 1, hash: e.Hash}
	v.Linked++
	return nil
}

// Resume makes e its stream's head whatever came before, so a reader that
// reported a broken chain (a ChainError of Verify or Link) goes on checking
// the stream from e rather than failing every later event of it.
func (v *Verifier) Resume(e Event) {
	v.heads[e.Stream] = chainHead{next: e.Revision + 1, hash: e.Hash}
}

// Streams returns the number of streams seen.
func (v *Verifier) Streams() int { return len(v.heads) }
