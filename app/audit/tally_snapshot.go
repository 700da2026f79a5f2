package audit

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/internal/compact"
)

// tallyVersion is the version byte of a Tally's encoding.
const tallyVersion = 1

// ErrTallyEncoding: an encoded Tally that cannot be read.
var ErrTallyEncoding = errors.New("corrupt tally encoding")

// appendTally writes t compactly (internal/compact), in a stable order
// (the same tally always gives the same bytes):
//
//	byte version (1)
//	uvarint events, 32 bytes global head, uvarint position,
//	varint time of the last event (Unix ns; 0: none)
//	uvarint n, then n streams sorted by name: name, uvarint next revision, 32 bytes head hash
//	uvarint m, then m wallets sorted by name: name, coin,
//	    uvarint k, then k accounts sorted by name: name, varint available, pending, held
//
// A restored Tally's Last holds the position and creation time of the last
// event, all that Statement reads of it.
func (t *Tally) appendTally(w *compact.Writer) {
	w.Raw([]byte{tallyVersion})
	w.Uint(t.Chain.Events)
	w.Raw(t.Chain.Head[:])
	w.Uint(t.Last.Position)
	created := int64(0)
	if !t.Last.Created.IsZero() {
		created = t.Last.Created.UnixNano()
	}
	w.Int(created)
	names := slices.Sorted(maps.Keys(t.heads))
	w.Uint(uint64(len(names)))
	for _, name := range names {
		h := t.heads[name]
		w.String(name)
		w.Uint(h.Next)
		w.Raw(h.Hash[:])
	}
	wallets := t.books.Wallets()
	names = slices.Sorted(maps.Keys(wallets))
	w.Uint(uint64(len(names)))
	for _, name := range names {
		book := wallets[name]
		w.String(name)
		w.String(book.Coin)
		accounts := slices.Sorted(maps.Keys(book.Accounts))
		w.Uint(uint64(len(accounts)))
		for _, a := range accounts {
			b := book.Accounts[a]
			w.String(a)
			w.Int(b.Available)
			w.Int(b.Pending)
			w.Int(b.Held)
		}
	}
}

// readTally reads what appendTally wrote into a new Tally.
func readTally(r *compact.Reader) (*Tally, error) {
	if v := r.Raw(1); len(v) != 1 || v[0] != tallyVersion {
		return nil, fmt.Errorf("%w: version %v, want %d", ErrTallyEncoding, v, tallyVersion)
	}
	t := NewTally()
	t.Chain.Events = r.Uint()
	copy(t.Chain.Head[:], r.Raw(len(t.Chain.Head)))
	t.Last.Position = r.Uint()
	if ns := r.Int(); ns != 0 {
		t.Last.Created = time.Unix(0, ns).UTC()
	}
	for range r.Len() {
		name := r.String()
		h := audit.Head{Next: r.Uint()}
		copy(h.Hash[:], r.Raw(len(h.Hash)))
		t.heads[name] = h
	}
	for range r.Len() {
		name := r.String()
		book := &Book{Coin: r.String(), Accounts: map[string]*ledger.Balance{}}
		for range r.Len() {
			a := r.String()
			book.Accounts[a] = &ledger.Balance{Available: r.Int(), Pending: r.Int(), Held: r.Int()}
		}
		t.books.wallets[name] = book
	}
	return t, nil
}

// MarshalBinary encodes the tally (see appendTally for the layout).
func (t *Tally) MarshalBinary() ([]byte, error) {
	var w compact.Writer
	t.appendTally(&w)
	return w.Bytes(), nil
}

// UnmarshalBinary replaces t with the tally data encodes. A corrupt
// encoding is an error and leaves t as it was.
func (t *Tally) UnmarshalBinary(data []byte) error {
	r := compact.NewReader(data)
	got, err := readTally(r)
	if err == nil {
		err = r.Done()
	}
	if err != nil {
		return fmt.Errorf("restore tally: %w", errors.Join(ErrTallyEncoding, err))
	}
	*t = *got
	return nil
}
