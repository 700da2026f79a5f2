package ws

import (
	"errors"
	"sync"
)

// errTooSlow: more events were waiting for a connection than it may buffer.
var errTooSlow = errors.New("too slow: resume with from")

// kind is what the writer does with an outbox item.
type kind uint8

const (
	kindMessage  kind = iota // write msg
	kindEvent                // write msg, then the client has everything up to pos
	kindProgress             // write nothing: the client has everything up to pos
	kindStart                // write msg (a subscribed reply): progress restarts at pos
)

type item struct {
	kind kind
	msg  []byte
	pos  uint64
}

// outbox is the bounded queue between a connection's producers (the reader
// and the subscription) and its one writer. Items leave in the order they
// were put in. At most max event items wait at a time; control messages and
// progress markers do not count (there is at most one marker per event plus
// one, as consecutive markers are merged). Safe for concurrent use.
type outbox struct {
	mu     sync.Mutex
	items  []item
	head   int // items[head:] are waiting
	events int // event items waiting
	max    int
	closed bool
	ready  chan struct{} // gets a value when items are added
}

func newOutbox(max int) *outbox {
	return &outbox{max: max, ready: make(chan struct{}, 1)}
}

func (o *outbox) signal() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// put queues one item that is not an event. A closed outbox drops it.
func (o *outbox) put(it item) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	o.items = append(o.items, it)
	o.signal()
}

// putEvents queues the event items of one scanned batch and then a progress
// marker at scanned, the batch's last position. If that would leave more
// than max events waiting it queues nothing and returns errTooSlow. A
// closed outbox drops them.
func (o *outbox) putEvents(events []item, scanned uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	if o.events+len(events) > o.max {
		return errTooSlow
	}
	o.items = append(o.items, events...)
	o.events += len(events)
	if n := len(o.items); n > o.head && o.items[n-1].kind == kindProgress {
		o.items[n-1].pos = scanned
	} else {
		o.items = append(o.items, item{kind: kindProgress, pos: scanned})
	}
	o.signal()
	return nil
}

// restart drops the waiting events and progress markers, those of a
// subscription that has been stopped.
func (o *outbox) restart() {
	o.mu.Lock()
	defer o.mu.Unlock()
	kept := o.items[:0]
	for _, it := range o.items[o.head:] {
		if it.kind != kindEvent && it.kind != kindProgress {
			kept = append(kept, it)
		}
	}
	clear(o.items[len(kept):])
	o.items, o.head, o.events = kept, 0, 0
}

// next removes and returns the oldest waiting item.
func (o *outbox) next() (item, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.head == len(o.items) {
		return item{}, false
	}
	it := o.items[o.head]
	o.items[o.head] = item{}
	o.head++
	if it.kind == kindEvent {
		o.events--
	}
	switch {
	case o.head == len(o.items):
		o.items, o.head = o.items[:0], 0
	case o.head > 1024 && o.head > len(o.items)/2:
		n := copy(o.items, o.items[o.head:])
		clear(o.items[n:])
		o.items, o.head = o.items[:n], 0
	}
	return it, true
}

// close drops everything waiting and everything put from now on.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.items, o.head, o.events = nil, 0, 0
	o.signal()
}
