package alerts

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/coinledger/coinledger/domain/prices"
)

// Entry is a condition the alert engine watches: alert ID fires (or
// re-arms) when the price of Pair is at or beyond Target in Direction.
// Alert.Watch gives the entry of an alert's current state.
type Entry struct {
	ID        ID
	Pair      prices.Pair
	Direction Direction
	Target    prices.Price
}

// Index is the alert engine's in-memory matching index: per pair, the
// watched alerts in two B+trees ordered by target, one for Above and one
// for Below. Crossed finds the k alerts whose condition holds at a price
// by scanning the Above tree up from its smallest target and the Below
// tree down from its largest, stopping at the first one that does not
// hold: O(log n + k), with nothing allocated when k is 0. Add and Remove
// are O(log n).
//
// An Index is not safe for concurrent use: the engine owns it in one
// goroutine (or guards it with a mutex).
type Index struct {
	books map[prices.Pair]*book
	byID  map[ID]slot
	seq   uint64 // last key seq handed out
}

// book is the watched alerts of one pair.
type book struct {
	pair         prices.Pair
	above, below tree
}

func (b *book) tree(d Direction) *tree {
	if d == Above {
		return &b.above
	}
	return &b.below
}

// slot is where an id sits in the index.
type slot struct {
	book *book
	dir  Direction
	key  key
}

// NewIndex returns an empty index. The zero Index is empty and ready too.
func NewIndex() *Index { return &Index{books: map[prices.Pair]*book{}, byID: map[ID]slot{}} }

// Len returns the number of alerts in the index.
func (x *Index) Len() int { return len(x.byID) }

func validEntry(e Entry) error {
	switch {
	case e.ID == "":
		return fmt.Errorf("alerts: index: %w: entry without id", ErrValidation)
	case e.Pair.IsZero():
		return fmt.Errorf("alerts: index %s: %w: no pair", e.ID, ErrValidation)
	case !e.Direction.Valid():
		return fmt.Errorf("alerts: index %s: %w: direction %q", e.ID, ErrValidation, clip(string(e.Direction)))
	}
	return nil
}

// Add puts e in the index, replacing the entry with the same ID if there is
// one. It fails only on an entry without ID, pair or valid direction.
func (x *Index) Add(e Entry) error {
	if err := validEntry(e); err != nil {
		return err
	}
	if x.books == nil {
		x.books, x.byID = map[prices.Pair]*book{}, map[ID]slot{}
	}
	x.Remove(e.ID)
	b := x.books[e.Pair]
	if b == nil {
		b = &book{pair: e.Pair}
		x.books[e.Pair] = b
	}
	x.seq++
	k := key{target: e.Target, seq: x.seq}
	b.tree(e.Direction).insert(item{key: k, id: e.ID})
	x.byID[e.ID] = slot{book: b, dir: e.Direction, key: k}
	return nil
}

// Remove takes the alert out of the index and reports whether it was in.
func (x *Index) Remove(id ID) bool {
	s, ok := x.byID[id]
	if !ok {
		return false
	}
	delete(x.byID, id)
	s.book.tree(s.dir).delete(s.key)
	if s.book.above.n == 0 && s.book.below.n == 0 {
		delete(x.books, s.book.pair)
	}
	return true
}

// Get returns the entry of id, if it is in the index.
func (x *Index) Get(id ID) (Entry, bool) {
	s, ok := x.byID[id]
	if !ok {
		return Entry{}, false
	}
	return Entry{ID: id, Pair: s.book.pair, Direction: s.dir, Target: s.key.target}, true
}

// Crossed returns the alerts on pair whose condition holds at price: Above
// alerts with price >= target, by ascending target, then Below alerts with
// price <= target, by descending target. It returns nil when there are
// none. The index is not changed: the engine removes or replaces the
// entries of the alerts whose state the tick changes.
func (x *Index) Crossed(pair prices.Pair, price prices.Price) []ID {
	var buf [16]ID // on the stack: one allocation for up to 16 ids
	ids := x.AppendCrossed(buf[:0], pair, price)
	if len(ids) == 0 {
		return nil
	}
	return slices.Clone(ids)
}

// AppendCrossed is Crossed appending to dst, for callers that reuse a
// buffer.
func (x *Index) AppendCrossed(dst []ID, pair prices.Pair, price prices.Price) []ID {
	b := x.books[pair]
	if b == nil {
		return dst
	}
	if r := b.above.root; r != nil {
		dst, _ = r.appendAtMost(dst, price)
	}
	if r := b.below.root; r != nil {
		dst, _ = r.appendAtLeast(dst, price)
	}
	return dst
}

// Rebuild replaces the whole content of the index with entries, as when the
// engine starts from the alerts read model or a replay. A later entry with
// the ID of an earlier one replaces it, as Add would. On an invalid entry
// it fails and leaves the index unchanged. It sorts and bulk-loads the
// trees (packed 3/4 full, leaving room for Adds): O(n log n).
func (x *Index) Rebuild(entries []Entry) error {
	for _, e := range entries {
		if err := validEntry(e); err != nil {
			return err
		}
	}
	books := map[prices.Pair]*book{}
	byID := make(map[ID]slot, len(entries))
	type group struct {
		b   *book
		dir Direction
	}
	sizes := map[group]int{}
	for i, e := range entries {
		b := books[e.Pair]
		if b == nil {
			b = &book{pair: e.Pair}
			books[e.Pair] = b
		}
		// seq follows the order of entries, so ties keep it; a later
		// entry overwrites an earlier one with its id.
		s := slot{book: b, dir: e.Direction, key: key{target: e.Target, seq: uint64(i) + 1}}
		if old, dup := byID[e.ID]; dup {
			sizes[group{old.book, old.dir}]--
		}
		byID[e.ID] = s
		sizes[group{b, e.Direction}]++
	}
	groups := make(map[group][]item, len(sizes))
	for g, n := range sizes {
		if n > 0 {
			groups[g] = make([]item, 0, n)
		}
	}
	for id, s := range byID { // sequential over the table, not random access
		g := group{s.book, s.dir}
		groups[g] = append(groups[g], item{key: s.key, id: id})
	}
	for g, items := range groups {
		slices.SortFunc(items, func(a, b item) int {
			if c := a.key.target.Cmp(b.key.target); c != 0 {
				return c
			}
			return cmp.Compare(a.key.seq, b.key.seq)
		})
		*g.b.tree(g.dir) = build(items)
	}
	// Books of pairs whose entries were all replaced by other pairs' go.
	for pair, b := range books {
		if b.above.n == 0 && b.below.n == 0 {
			delete(books, pair)
		}
	}
	x.books, x.byID, x.seq = books, byID, uint64(len(entries))
	return nil
}
