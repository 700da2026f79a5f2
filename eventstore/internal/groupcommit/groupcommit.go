// Package groupcommit is what the stores that write appends in group
// commits (eventstore/sqlite, eventstore/postgres) share: the queue that
// hands appends to the store's one writer goroutine and the writer's
// loop (Queue), and the plan of one commit (expected versions, retry detection,
// positions, hash chains, imports). The stores keep the SQL. Match, the
// rule that recognises a retried append, is every store's, the esdb
// adapter's too.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coinledger/coinledger/eventstore"
)

// RetryWindow is how many recent events of a stream an Any or StreamExists
// append is compared with to recognise a retry.
const RetryWindow = 32

// Request is one Append or Import waiting for the writer.
type Request struct {
	Op        string // "append STREAM" or "import", for errors
	Stream    string
	Expected  eventstore.ExpectedVersion
	Events    []eventstore.EventData // prepared (eventstore.Prepare)
	Retryable bool                   // ids chosen by the caller: may repeat an earlier append
	Imported  []eventstore.Event     // an Import: events kept as they are (Events is empty)
	result    chan Result
}

// Result is a Request's outcome.
type Result struct {
	Res eventstore.AppendResult
	Err error
}

// NewAppend returns the request of an Append of prepared events; raw are
// the events as the caller gave them (see eventstore.Retryable).
func NewAppend(stream string, expected eventstore.ExpectedVersion, prepared, raw []eventstore.EventData) *Request {
	return &Request{Op: "append " + stream, Stream: stream, Expected: expected, Events: prepared,
		Retryable: eventstore.Retryable(raw), result: make(chan Result, 1)}
}

// NewImport returns the request of an Import of validated events.
func NewImport(events []eventstore.Event) *Request {
	return &Request{Op: "import", Stream: events[0].Stream, Imported: events, result: make(chan Result, 1)}
}

// Answer tells the waiting caller req's outcome; the writer calls it once.
func (req *Request) Answer(r Result) { req.result <- r }

func (req *Request) size() int { return len(req.Events) + len(req.Imported) }

// Queue hands requests to a store's one writer goroutine (Run).
type Queue struct {
	mu     sync.RWMutex
	closed bool
	reqs   chan *Request
}

// NewQueue returns an open queue.
func NewQueue() *Queue { return &Queue{reqs: make(chan *Request, 1024)} }

// Submit queues req and waits for its outcome; after Close it is
// eventstore.ErrClosed. Once queued the request is carried out even if ctx
// ends: the caller then cannot know the outcome, as with a network store.
func (q *Queue) Submit(ctx context.Context, req *Request) (eventstore.AppendResult, error) {
	q.mu.RLock() // Close waits: nothing is queued after Run's last look
	if q.closed {
		q.mu.RUnlock()
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	select {
	case q.reqs <- req:
		q.mu.RUnlock()
	case <-ctx.Done():
		q.mu.RUnlock()
		return eventstore.AppendResult{}, ctx.Err()
	}
	select {
	case r := <-req.result:
		return r.Res, r.Err
	case <-ctx.Done():
		return eventstore.AppendResult{}, ctx.Err()
	}
}

// Close refuses new requests; Run commits those already queued and returns.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.reqs)
	}
}

// Run is the writer's loop: it takes every request waiting, up to
// maxEvents events (one request at a time when single), and passes them to
// commit, until the queue is closed and empty. commit answers every
// request.
func (q *Queue) Run(maxEvents int, single bool, commit func([]*Request)) {
	var batch []*Request
	for first := range q.reqs {
		batch = append(batch[:0], first)
		n := first.size()
	drain:
		for !single && n < maxEvents {
			select {
			case r, ok := <-q.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				n += r.size()
			default:
				break drain
			}
		}
		commit(batch)
	}
}

// Head is a stream's head: the revision its next event gets and the hash
// of its last event.
type Head struct {
	Next uint64
	Hash eventstore.Hash
}

// Source is what a Plan reads of the store, inside the commit's
// transaction.
type Source interface {
	// Head returns the stream's head as stored.
	Head(stream string) (Head, error)
	// Stored returns up to limit events of stream from revision from on,
	// oldest first, as stored: ID, Revision, Position, Type, Data and
	// Metadata set (Match compares them).
	Stored(stream string, from uint64, limit int) ([]eventstore.Event, error)
}

// Plan is one group commit in the making: it decides each request against
// the streams' heads (as stored, then as planned earlier in the commit)
// and collects the rows to insert.
type Plan struct {
	src Source
	// Pos is the position of the last planned row (the log's head before any).
	Pos uint64
	// Rows are the planned events, positions and hashes set.
	Rows []eventstore.Event
	// Pending holds the heads of the streams the plan appends to.
	Pending map[string]Head
}

// NewPlan starts a plan after position head, with room for events rows. A
// retry is recognised only when the events are the same (Match); events
// with stored ids but other contents are a conflict.
func NewPlan(src Source, head uint64, events int) *Plan {
	return &Plan{src: src, Pos: head, Rows: make([]eventstore.Event, 0, events),
		Pending: make(map[string]Head)}
}

// Decide plans a group commit of batch after position head (see NewPlan),
// adding each request in turn (see Add), and returns the plan with every
// request's outcome, conflicts included. An error fails the whole commit.
func Decide(src Source, head uint64, batch []*Request, now time.Time) (p *Plan, results []Result, err error) {
	n := 0
	for _, req := range batch {
		n += req.size()
	}
	p = NewPlan(src, head, n)
	results = make([]Result, len(batch))
	for i, req := range batch {
		res, err := p.Add(req, now)
		if err != nil && !errors.Is(err, eventstore.ErrConflict) {
			return nil, nil, err
		}
		results[i] = Result{Res: res, Err: err}
	}
	return p, results, nil
}

func (p *Plan) head(stream string) (Head, error) {
	if h, ok := p.Pending[stream]; ok {
		return h, nil
	}
	return p.src.Head(stream)
}

// Add decides one request. An error wrapping eventstore.ErrConflict fails
// that request only; any other error fails the whole commit.
func (p *Plan) Add(req *Request, now time.Time) (eventstore.AppendResult, error) {
	if req.Imported != nil {
		return p.addImport(req)
	}
	head, err := p.head(req.Stream)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	// A retry is looked for at the place the original went (exact or
	// no-stream expectations that no longer hold), or among the stream's
	// recent events (Any, StreamExists).
	from, look, anywhere := uint64(0), false, false
	if !req.Expected.Allows(head.Next) {
		if rev, exact := req.Expected.Revision(); exact {
			from, look = rev+1, req.Retryable
		} else {
			look = req.Retryable && req.Expected.IsNoStream()
		}
	} else if req.Retryable && head.Next > 0 && (req.Expected.IsAny() || req.Expected.IsStreamExists()) {
		from, look, anywhere = head.Next-min(head.Next, RetryWindow), true, true
	}
	why, v := "stream is at "+eventstore.ExpectRevision(head.Next).String(), Absent
	if look {
		var res eventstore.AppendResult
		var err error
		if res, v, err = p.storedAt(req, from, anywhere); err != nil || v == Found {
			return res, err
		}
		if v != Absent {
			why = v.Why()
		}
	}
	if !req.Expected.Allows(head.Next) || v == Differs || v == Partial {
		return eventstore.AppendResult{}, fmt.Errorf("append %s@%s: %s: %w", req.Stream, req.Expected, why, eventstore.ErrConflict)
	}
	hash := head.Hash
	for j, ed := range req.Events {
		p.Pos++
		e := eventstore.Event{ID: ed.ID, Stream: req.Stream, Revision: head.Next + uint64(j), Position: p.Pos,
			Type: ed.Type, Data: ed.Data, Metadata: ed.Metadata, Created: now}
		e.Hash = eventstore.ChainHash(hash, e)
		hash = e.Hash
		p.Rows = append(p.Rows, e)
	}
	next := head.Next + uint64(len(req.Events))
	p.Pending[req.Stream] = Head{Next: next, Hash: hash}
	return eventstore.AppendResult{NextRevision: next, Position: p.Pos}, nil
}

// addImport decides an Import: every event must be the next of its stream,
// else nothing of it is written (a conflict). Events keep their ids,
// creation times (at microsecond precision, in UTC) and hashes; only
// positions are assigned.
func (p *Plan) addImport(req *Request) (eventstore.AppendResult, error) {
	heads := make(map[string]Head)
	for _, e := range req.Imported {
		h, ok := heads[e.Stream]
		if !ok {
			var err error
			if h, err = p.head(e.Stream); err != nil {
				return eventstore.AppendResult{}, err
			}
		}
		if e.Revision != h.Next {
			return eventstore.AppendResult{}, fmt.Errorf("import %s: stream is at %s: %w",
				e, eventstore.ExpectRevision(h.Next), eventstore.ErrConflict)
		}
		heads[e.Stream] = Head{Next: h.Next + 1, Hash: e.Hash}
	}
	for _, e := range req.Imported {
		p.Pos++
		e.Position = p.Pos
		e.Created = e.Created.UTC().Truncate(time.Microsecond)
		p.Rows = append(p.Rows, e)
	}
	for stream, h := range heads {
		p.Pending[stream] = h
	}
	last := req.Imported[len(req.Imported)-1]
	return eventstore.AppendResult{NextRevision: last.Revision + 1, Position: p.Pos}, nil
}

// storedAt looks for req's events in its stream from revision from on
// (see Match), among the stored events and those planned earlier in this
// commit.
func (p *Plan) storedAt(req *Request, from uint64, anywhere bool) (eventstore.AppendResult, Verdict, error) {
	limit := len(req.Events)
	if anywhere {
		limit += RetryWindow
	}
	events, err := p.src.Stored(req.Stream, from, limit)
	if err != nil {
		return eventstore.AppendResult{}, Absent, fmt.Errorf("read events of %s: %w", req.Stream, err)
	}
	for _, e := range p.Rows {
		if e.Stream == req.Stream && e.Revision >= from {
			events = append(events, e)
		}
	}
	res, v := Match(events, req.Events, anywhere)
	return res, v, nil
}
