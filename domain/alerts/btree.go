package alerts

import "github.com/coinledger/coinledger/domain/prices"

// An in-memory B+tree of (target, seq) keys to alert ids, written for the
// index: O(log n) insert and delete, and in-order scans from either end
// that stop at the first key past a price, so a scan that reports k ids
// costs O(log n + k). Leaves hold the entries; inner nodes hold separators
// (keys[j-1] <= every key under kids[j] < keys[j]). Every node but the root
// holds between half and all of its capacity.
const (
	maxItems = 64 // entries per leaf
	minItems = maxItems / 2
	maxKids  = 64 // children per inner node
	minKids  = maxKids / 2
	// fill is how full Rebuild packs nodes: room for inserts without
	// splitting at once, never below the minimum.
	fill = maxItems * 3 / 4
)

// key orders entries by target, then by seq, a number unique per entry in
// the index (so equal targets are distinct keys, in insertion order).
type key struct {
	target prices.Price
	seq    uint64
}

func (a key) less(b key) bool {
	if a.target != b.target {
		return a.target.Less(b.target)
	}
	return a.seq < b.seq
}

type item struct {
	key key
	id  ID
}

// node is a leaf when kids is nil.
type node struct {
	items []item // leaf: sorted by key
	keys  []key  // inner: separators, len(kids)-1 of them
	kids  []*node
}

func (n *node) leaf() bool { return n.kids == nil }

// canLend reports whether n holds more than the minimum.
func (n *node) canLend() bool {
	if n.leaf() {
		return len(n.items) > minItems
	}
	return len(n.kids) > minKids
}

type tree struct {
	root *node // nil when empty
	n    int
}

func newLeaf() *node { return &node{items: make([]item, 0, maxItems+1)} }

func newInner() *node {
	return &node{keys: make([]key, 0, maxKids), kids: make([]*node, 0, maxKids+1)}
}

// route returns the index of the child of inner node n whose range holds k:
// the number of separators <= k.
func (n *node) route(k key) int {
	lo, hi := 0, len(n.keys)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if k.less(n.keys[m]) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

// search returns the index of the first item of leaf n with key >= k.
func (n *node) search(k key) int {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if n.items[m].key.less(k) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// insert adds it, whose key must not be in the tree.
func (t *tree) insert(it item) {
	if t.root == nil {
		t.root = newLeaf()
	}
	if sep, right := t.root.insert(it); right != nil {
		root := newInner()
		root.keys = append(root.keys, sep)
		root.kids = append(root.kids, t.root, right)
		t.root = root
	}
	t.n++
}

// insert adds it under n; when n overflows it splits and returns the new
// right sibling and its separator (the smallest key under it).
func (n *node) insert(it item) (key, *node) {
	if n.leaf() {
		i := n.search(it.key)
		n.items = append(n.items, item{})
		copy(n.items[i+1:], n.items[i:])
		n.items[i] = it
		if len(n.items) <= maxItems {
			return key{}, nil
		}
		mid := len(n.items) / 2
		right := newLeaf()
		right.items = append(right.items, n.items[mid:]...)
		clear(n.items[mid:])
		n.items = n.items[:mid]
		return right.items[0].key, right
	}
	i := n.route(it.key)
	sep, right := n.kids[i].insert(it)
	if right == nil {
		return key{}, nil
	}
	n.keys = append(n.keys, key{})
	copy(n.keys[i+1:], n.keys[i:])
	n.keys[i] = sep
	n.kids = append(n.kids, nil)
	copy(n.kids[i+2:], n.kids[i+1:])
	n.kids[i+1] = right
	if len(n.kids) <= maxKids {
		return key{}, nil
	}
	mid := len(n.keys) / 2
	up := n.keys[mid]
	r := newInner()
	r.keys = append(r.keys, n.keys[mid+1:]...)
	r.kids = append(r.kids, n.kids[mid+1:]...)
	clear(n.kids[mid+1:])
	n.keys, n.kids = n.keys[:mid], n.kids[:mid+1]
	return up, r
}

// delete removes the entry with key k and reports whether there was one.
func (t *tree) delete(k key) bool {
	if t.root == nil {
		return false
	}
	if found, _ := t.root.delete(k); !found {
		return false
	}
	t.n--
	switch {
	case t.root.leaf() && len(t.root.items) == 0:
		t.root = nil
	case !t.root.leaf() && len(t.root.kids) == 1:
		t.root = t.root.kids[0]
	}
	return true
}

// delete removes k from under n; underflow reports that n holds fewer than
// the minimum afterwards (its parent then rebalances it).
func (n *node) delete(k key) (found, underflow bool) {
	if n.leaf() {
		i := n.search(k)
		if i == len(n.items) || n.items[i].key != k {
			return false, false
		}
		copy(n.items[i:], n.items[i+1:])
		n.items[len(n.items)-1] = item{}
		n.items = n.items[:len(n.items)-1]
		return true, len(n.items) < minItems
	}
	i := n.route(k)
	found, under := n.kids[i].delete(k)
	if under {
		n.rebalance(i)
	}
	return found, len(n.kids) < minKids
}

// rebalance brings kid i of inner node n back to the minimum: it borrows
// one entry (or child) from a sibling that can spare one, or else merges
// with a sibling.
func (n *node) rebalance(i int) {
	c := n.kids[i]
	if i > 0 && n.kids[i-1].canLend() {
		l := n.kids[i-1]
		if c.leaf() {
			last := l.items[len(l.items)-1]
			l.items[len(l.items)-1] = item{}
			l.items = l.items[:len(l.items)-1]
			c.items = append(c.items, item{})
			copy(c.items[1:], c.items)
			c.items[0] = last
			n.keys[i-1] = last.key
			return
		}
		c.keys = append(c.keys, key{})
		copy(c.keys[1:], c.keys)
		c.keys[0] = n.keys[i-1]
		c.kids = append(c.kids, nil)
		copy(c.kids[1:], c.kids)
		c.kids[0] = l.kids[len(l.kids)-1]
		n.keys[i-1] = l.keys[len(l.keys)-1]
		l.keys = l.keys[:len(l.keys)-1]
		l.kids[len(l.kids)-1] = nil
		l.kids = l.kids[:len(l.kids)-1]
		return
	}
	if i+1 < len(n.kids) && n.kids[i+1].canLend() {
		r := n.kids[i+1]
		if c.leaf() {
			c.items = append(c.items, r.items[0])
			copy(r.items, r.items[1:])
			r.items[len(r.items)-1] = item{}
			r.items = r.items[:len(r.items)-1]
			n.keys[i] = r.items[0].key
			return
		}
		c.keys = append(c.keys, n.keys[i])
		c.kids = append(c.kids, r.kids[0])
		n.keys[i] = r.keys[0]
		copy(r.keys, r.keys[1:])
		r.keys = r.keys[:len(r.keys)-1]
		copy(r.kids, r.kids[1:])
		r.kids[len(r.kids)-1] = nil
		r.kids = r.kids[:len(r.kids)-1]
		return
	}
	if i > 0 {
		i-- // merge c into its left sibling
	}
	l, r := n.kids[i], n.kids[i+1]
	if l.leaf() {
		l.items = append(l.items, r.items...)
	} else {
		l.keys = append(l.keys, n.keys[i])
		l.keys = append(l.keys, r.keys...)
		l.kids = append(l.kids, r.kids...)
	}
	copy(n.keys[i:], n.keys[i+1:])
	n.keys = n.keys[:len(n.keys)-1]
	copy(n.kids[i+1:], n.kids[i+2:])
	n.kids[len(n.kids)-1] = nil
	n.kids = n.kids[:len(n.kids)-1]
}

// appendAtMost appends, in ascending key order, the ids of the entries
// under n with target <= p; stop reports that a larger target was met.
func (n *node) appendAtMost(dst []ID, p prices.Price) (_ []ID, stop bool) {
	if n.leaf() {
		for _, it := range n.items {
			if p.Less(it.key.target) {
				return dst, true
			}
			dst = append(dst, it.id)
		}
		return dst, false
	}
	for j, kid := range n.kids {
		// Every target under kids[j] is >= keys[j-1].target.
		if j > 0 && p.Less(n.keys[j-1].target) {
			return dst, true
		}
		if dst, stop = kid.appendAtMost(dst, p); stop {
			return dst, true
		}
	}
	return dst, false
}

// appendAtLeast appends, in descending key order, the ids of the entries
// under n with target >= p; stop reports that a smaller target was met.
func (n *node) appendAtLeast(dst []ID, p prices.Price) (_ []ID, stop bool) {
	if n.leaf() {
		for i := len(n.items) - 1; i >= 0; i-- {
			if n.items[i].key.target.Less(p) {
				return dst, true
			}
			dst = append(dst, n.items[i].id)
		}
		return dst, false
	}
	for j := len(n.kids) - 1; j >= 0; j-- {
		// Every target under kids[j] is <= keys[j].target.
		if j < len(n.keys) && n.keys[j].target.Less(p) {
			return dst, true
		}
		if dst, stop = n.kids[j].appendAtLeast(dst, p); stop {
			return dst, true
		}
	}
	return dst, false
}

// build returns a tree of items, which must be sorted by key with no
// duplicates, packing nodes to fill entries.
func build(items []item) tree {
	if len(items) == 0 {
		return tree{}
	}
	type sub struct {
		n   *node
		min key
	}
	var level []sub
	for _, part := range chunks(len(items), minItems) {
		leaf := newLeaf()
		leaf.items = append(leaf.items, items[part[0]:part[1]]...)
		level = append(level, sub{leaf, leaf.items[0].key})
	}
	for len(level) > 1 {
		var up []sub
		for _, part := range chunks(len(level), minKids) {
			in := newInner()
			for j, s := range level[part[0]:part[1]] {
				if j > 0 {
					in.keys = append(in.keys, s.min)
				}
				in.kids = append(in.kids, s.n)
			}
			up = append(up, sub{in, level[part[0]].min})
		}
		level = up
	}
	return tree{root: level[0].n, n: len(items)}
}

// chunks splits n things into m nodes of about fill each: [start, end)
// pairs. Each gets n/m or n/m+1 <= fill+1. With fill 3/4 and lo 1/2 of the
// capacity, three or more nodes get more than fill*(m-1)/m >= 2*fill/3 = lo
// each; two nodes that would get fewer than lo fit in one (n < 2*lo).
func chunks(n, lo int) [][2]int {
	m := (n + fill - 1) / fill
	if m > 1 && n/m < lo {
		m = 1 // then m was 2 and n < 2*lo: one node holds them all
	}
	out := make([][2]int, 0, m)
	size, extra, start := n/m, n%m, 0
	for i := 0; i < m; i++ {
		end := start + size
		if i < extra {
			end++
		}
		out = append(out, [2]int{start, end})
		start = end
	}
	return out
}
