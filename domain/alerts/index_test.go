package alerts

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// naive is the reference model of Index: a linear scan.
type naive map[ID]Entry

func (m naive) crossed(pair prices.Pair, price prices.Price) []ID {
	var out []ID
	for _, e := range m {
		if e.Pair == pair && e.Direction.Holds(price, e.Target) {
			out = append(out, e.ID)
		}
	}
	return out
}

func sorted(ids []ID) []ID {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// check verifies the B+tree invariants of every tree in x and that byID and
// the trees agree. It returns the height of the tallest tree.
func (x *Index) check(t *testing.T) (height int) {
	t.Helper()
	total := 0
	for pair, b := range x.books {
		if b.pair != pair || (b.above.n == 0 && b.below.n == 0) {
			t.Fatalf("book %s: pair %s, sizes %d/%d", pair, b.pair, b.above.n, b.below.n)
		}
		for _, d := range []Direction{Above, Below} {
			tr := b.tree(d)
			var prev *key
			n := 0
			var walk func(nd *node, lo, hi *key, root bool) int
			walk = func(nd *node, lo, hi *key, root bool) int {
				inRange := func(k key) {
					if (lo != nil && k.less(*lo)) || (hi != nil && !k.less(*hi)) {
						t.Fatalf("%s %s: key %v outside [%v, %v)", pair, d, k, lo, hi)
					}
				}
				if nd.leaf() {
					if !root && (len(nd.items) < minItems || len(nd.items) > maxItems) {
						t.Fatalf("%s %s: leaf of %d", pair, d, len(nd.items))
					}
					for _, it := range nd.items {
						inRange(it.key)
						if prev != nil && !prev.less(it.key) {
							t.Fatalf("%s %s: keys out of order", pair, d)
						}
						k := it.key
						prev = &k
						n++
						s, ok := x.byID[it.id]
						if !ok || s.book != b || s.dir != d || s.key != it.key {
							t.Fatalf("%s %s: item %s not in byID as %v", pair, d, it.id, it.key)
						}
					}
					return 1
				}
				if len(nd.keys) != len(nd.kids)-1 || len(nd.kids) > maxKids || (len(nd.kids) < minKids && !root) || len(nd.kids) < 2 {
					t.Fatalf("%s %s: inner node of %d kids, %d keys", pair, d, len(nd.kids), len(nd.keys))
				}
				depth := -1
				for j, kid := range nd.kids {
					klo, khi := lo, hi
					if j > 0 {
						klo = &nd.keys[j-1]
					}
					if j < len(nd.keys) {
						khi = &nd.keys[j]
					}
					dd := walk(kid, klo, khi, false)
					if depth >= 0 && dd != depth {
						t.Fatalf("%s %s: unbalanced", pair, d)
					}
					depth = dd
				}
				return depth + 1
			}
			if tr.root != nil {
				height = max(height, walk(tr.root, nil, nil, true))
			}
			if n != tr.n {
				t.Fatalf("%s %s: %d items, n = %d", pair, d, n, tr.n)
			}
			total += n
		}
	}
	if total != len(x.byID) {
		t.Fatalf("%d items in trees, %d ids", total, len(x.byID))
	}
	return height
}

// TestIndexProperty runs random Add, Remove, Crossed and Rebuild against
// the naive model, with few distinct targets (many ties) and enough alerts
// (about 4000 per tree) to grow trees three levels deep.
func TestIndexProperty(t *testing.T) {
	for _, seed := range []uint64{1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			pairs := []prices.Pair{btcusd, ethusd}[:seed] // one pair: taller trees
			rng := rand.New(rand.NewPCG(seed, seed*7))
			x, m, height := NewIndex(), naive{}, 0
			price := func() prices.Price {
				v, _ := prices.New(uint64(rng.IntN(2000)), 2)
				return v
			}
			randID := func() ID { return ID(fmt.Sprintf("a%d", rng.IntN(16000))) }
			ops := 40000
			if testing.Short() {
				ops = 15000
			}
			for i := 0; i < ops; i++ {
				switch r := rng.IntN(1000); {
				case r < 600:
					e := Entry{ID: randID(), Pair: pairs[rng.IntN(len(pairs))], Direction: []Direction{Above, Below}[rng.IntN(2)], Target: price()}
					if err := x.Add(e); err != nil {
						t.Fatal(err)
					}
					m[e.ID] = e
				case r < 950:
					id := randID()
					_, want := m[id]
					if got := x.Remove(id); got != want {
						t.Fatalf("op %d: Remove(%s) = %v, want %v", i, id, got, want)
					}
					delete(m, id)
				case r < 999:
					pair, at := pairs[rng.IntN(len(pairs))], price()
					got := x.Crossed(pair, at)
					if want := m.crossed(pair, at); !slices.Equal(sorted(got), sorted(want)) {
						t.Fatalf("op %d: Crossed(%s, %s): %d ids, want %d", i, pair, at, len(got), len(want))
					}
					checkOrder(t, x, got)
				default:
					entries := make([]Entry, 0, len(m))
					for _, e := range m {
						entries = append(entries, e)
					}
					if err := x.Rebuild(entries); err != nil {
						t.Fatal(err)
					}
					x.check(t)
				}
				if x.Len() != len(m) {
					t.Fatalf("op %d: Len %d, want %d", i, x.Len(), len(m))
				}
				if i%5000 == 0 {
					height = max(height, x.check(t))
				}
			}
			if height = max(height, x.check(t)); len(pairs) == 1 && height < 3 {
				t.Fatalf("trees reached height %d only", height)
			}
			for id, e := range m {
				if got, ok := x.Get(id); !ok || got != e {
					t.Fatalf("Get(%s) = %v, %v; want %v", id, got, ok, e)
				}
			}
			// Drain: removing everything leaves no trees behind.
			for id := range m {
				if !x.Remove(id) {
					t.Fatalf("Remove(%s) = false", id)
				}
			}
			x.check(t)
			if len(x.books) != 0 || x.Len() != 0 {
				t.Fatalf("after draining: %d books, %d ids", len(x.books), x.Len())
			}
		})
	}
}

// checkOrder: Above ids first by ascending target, then Below by descending.
func checkOrder(t *testing.T, x *Index, ids []ID) {
	t.Helper()
	below := false
	var prev prices.Price
	for i, id := range ids {
		e, _ := x.Get(id)
		switch {
		case e.Direction == Below && !below:
			below = true
		case e.Direction == Above && below:
			t.Fatalf("above after below in Crossed")
		case i > 0 && e.Direction == Above && e.Target.Less(prev),
			i > 0 && e.Direction == Below && prev.Less(e.Target):
			t.Fatalf("Crossed out of order at %d", i)
		}
		prev = e.Target
	}
}

func TestIndexRebuild(t *testing.T) {
	x := NewIndex()
	_ = x.Add(Entry{ID: "old", Pair: btcusd, Direction: Above, Target: p("1")})
	var entries []Entry
	for i := range 10000 {
		entries = append(entries, Entry{ID: ID(fmt.Sprint(i % 9000)), Pair: btcusd, Direction: Above, Target: p(fmt.Sprint(i % 977))})
	}
	if err := x.Rebuild(entries); err != nil {
		t.Fatal(err)
	}
	x.check(t)
	if x.Len() != 9000 {
		t.Fatalf("Len %d", x.Len())
	}
	if _, ok := x.Get("old"); ok {
		t.Fatal("Rebuild kept an old entry")
	}
	if e, _ := x.Get("5"); e.Target != p(fmt.Sprint(9005%977)) {
		t.Fatalf("later entry did not win: %v", e)
	}
	// Adds and removes keep working after a bulk load.
	for i := range 9000 {
		if i%3 == 0 {
			x.Remove(ID(fmt.Sprint(i)))
		} else {
			_ = x.Add(Entry{ID: ID(fmt.Sprint(i)), Pair: btcusd, Direction: Below, Target: p("500")})
		}
	}
	x.check(t)
	// A later entry moving an id to another pair leaves no empty book.
	if err := x.Rebuild([]Entry{{ID: "m", Pair: ethusd, Direction: Above}, {ID: "m", Pair: btcusd, Direction: Below}}); err != nil {
		t.Fatal(err)
	}
	x.check(t)
	if e, _ := x.Get("m"); len(x.books) != 1 || e.Pair != btcusd || e.Direction != Below {
		t.Fatalf("Rebuild with a moved id: %d books, %v", len(x.books), e)
	}
	bad := []Entry{{ID: "x", Pair: btcusd, Direction: Above}, {ID: "y", Direction: Above}}
	if err := x.Rebuild(bad); !errors.Is(err, ErrValidation) || x.Len() != 1 {
		t.Fatalf("Rebuild with a bad entry: %v, Len %d", err, x.Len())
	}
	for _, e := range []Entry{{Pair: btcusd, Direction: Above}, {ID: "z", Pair: btcusd}, {ID: "z", Direction: Below}} {
		if err := x.Add(e); !errors.Is(err, ErrValidation) {
			t.Fatalf("Add(%v): %v", e, err)
		}
	}
	var zero Index
	if err := zero.Add(Entry{ID: "z", Pair: btcusd, Direction: Below, Target: p("1")}); err != nil || len(zero.Crossed(btcusd, p("0.5"))) != 1 {
		t.Fatal("zero Index")
	}
	if NewIndex().Crossed(btcusd, p("1")) != nil {
		t.Fatal("Crossed on an empty index is not nil")
	}
}

// TestEngine drives many alerts with a random-walk price the way the alert
// engine does — Crossed, then Trigger for each id, then the index follows
// Watch — and checks that it decides exactly what Trigger decides when
// every alert sees every tick.
func TestEngine(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	const n = 1000
	engine, brute := map[ID]*Alert{}, map[ID]*Alert{}
	x := NewIndex()
	for i := range n {
		dir := []Direction{Above, Below}[rng.IntN(2)]
		target, _ := prices.New(uint64(9000+rng.IntN(2000)), 0)
		c := Create{ID: ID(fmt.Sprintf("a%d", i)), Owner: "alice", Pair: btcusd, Direction: dir, Target: target,
			Channels: Channels{Websocket: true}}
		if rng.IntN(3) > 0 {
			h, _ := prices.New(uint64(rng.IntN(5000)), 2)
			c.Rearm = &Rearm{Hysteresis: h, Cooldown: time.Duration(rng.IntN(10)) * time.Minute}
		}
		engine[c.ID], brute[c.ID] = New(), New()
		for _, a := range []*Alert{engine[c.ID], brute[c.ID]} {
			if _, err := Execute(a, c); err != nil {
				t.Fatal(err)
			}
		}
		w, _ := engine[c.ID].Watch()
		if err := x.Add(w); err != nil {
			t.Fatal(err)
		}
	}
	price := int64(1000000) // cents
	fires := 0
	for pos := uint64(1); pos <= 1500; pos++ {
		price += int64(rng.IntN(20001)) - 10000 // ±100.00, kept within 8500..11500
		if price < 850000 || price > 1150000 {
			price = 2000000 - price
		}
		pr, _ := prices.New(uint64(price), 2)
		tk := Trigger{Price: pr, TickPosition: pos, At: at(int(pos))}
		var got, want []Event
		for _, id := range x.Crossed(btcusd, pr) {
			a := engine[id]
			events, err := Execute(a, tk)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, events...)
			if w, ok := a.Watch(); ok {
				_ = x.Add(w)
			} else {
				x.Remove(id)
			}
		}
		for _, a := range brute {
			events, err := Execute(a, tk)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, events...)
		}
		key := func(e Event) string { return fmt.Sprintf("%T %v", e, e) }
		gs, ws := make([]string, len(got)), make([]string, len(want))
		for i := range got {
			gs[i] = key(got[i])
		}
		for i := range want {
			ws[i] = key(want[i])
		}
		slices.Sort(gs)
		slices.Sort(ws)
		if !slices.Equal(gs, ws) {
			t.Fatalf("tick %d at %s: engine decided %d events, brute force %d", pos, pr, len(got), len(want))
		}
		fires += len(want)
	}
	if fires < 500 {
		t.Fatalf("only %d events: the walk does not exercise re-arming", fires)
	}
	x.check(t)
}
