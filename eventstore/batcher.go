package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/internal/backoff"
)

// Batcher is the command path for hot streams. Commands for one stream are
// serialized in-process by one goroutine that keeps the stream's state in
// memory: it takes every command waiting, decides each on the state left by
// the ones before it, and appends all of their events in one append with the
// expected version of the state it started from. A busy stream thus costs
// one append per batch, not per command.
//
// Another process appending to the same stream makes the append conflict:
// the batcher reloads the stream and decides the whole batch again, so
// optimistic concurrency still holds across processes. A keyed command's
// events get ids derived from its own key, index and contents (EventID),
// whatever batch carries them; when the store recognises an append as a
// retry (AppendResult.Retry: another writer wrote the same events), the
// batcher reloads and decides again too, so a command already written is
// answered from the stream (the ledger knows its keys). It caches only
// states whose events it saw written.
//
// One command's bad events never fail the others of its batch: each
// command's events are checked as the store would check them (Prepare's
// verdict on type and size with metadata; precheck leaves the JSON, which
// the codec makes, to the store) before they join the batch, and a bad
// command fails alone. Should the store still refuse the batch as a whole
// (ErrInvalidEvent, e.g. a limit on one append's total size), every command
// of it is run again on its own.
type Batcher[S any, E Typed] struct {
	repo     *Repository[S, E]
	store    Store
	codec    *Codec[E]
	evolve   func(S, E) S
	maxBatch int
	maxEvent int // the store's per-event size limit
	idle     time.Duration
	shared   bool // other processes append to the streams (SetShared)
	stats    batcherCounters

	mu      sync.Mutex
	writers map[string]*streamWriter[S, E]
	wg      sync.WaitGroup
	done    chan struct{}
	closed  bool
}

// NewBatcher returns a batcher over the repository's store and aggregate.
// Evolve may mutate and return its state argument: the batcher owns its
// states and reloads one whenever an append fails.
func NewBatcher[S any, E Typed](store Store, codec *Codec[E], agg Aggregate[S, E]) *Batcher[S, E] {
	return &Batcher[S, E]{repo: NewRepository(store, codec, agg), store: store, codec: codec, evolve: agg.Evolve,
		maxBatch: 512, maxEvent: maxEventSizeOf(store), idle: time.Minute, writers: map[string]*streamWriter[S, E]{}, done: make(chan struct{})}
}

// SetSnapshotter makes the batcher load a stream from its latest usable
// snapshot plus the events after it, and snapshot a stream's state after
// an append that crosses a multiple of sn.Every events. Once the append's
// commands have their answers, the stream's writer clones the state (with
// sn.Clone; else encodes it) and goes on; the snapshot is encoded and
// saved in the background, one save per stream at a time with only the
// latest waiting (Close waits for them). Call it before the first Do.
func (b *Batcher[S, E]) SetSnapshotter(sn Snapshotter[S]) { b.repo.SetSnapshotter(sn) }

// SetMaxBatch sets how many commands one append may carry (default 512; 1
// turns batching off). Call it before the first Do.
func (b *Batcher[S, E]) SetMaxBatch(n int) {
	if n < 1 {
		n = 1
	}
	b.maxBatch = n
}

// SetShared tells the batcher that other processes append to its streams
// (several instances on one store). An append is safe regardless: it
// carries the expected revision. A command refused on the cached state
// appends nothing, so the batcher checks the stream first: when another
// writer appended since the state was cached, it reloads and decides the
// batch again, so that no refusal rests on a stale state (a deposit to an
// address another instance just assigned, funds it just credited). The
// check costs one short read per batch that refuses a command. Call it
// before the first Do.
func (b *Batcher[S, E]) SetShared(shared bool) { b.shared = shared }

// BatcherStats counts what a Batcher appended since it was made: appends
// (batches), the commands they carried and their events. Commands per
// append is the batching at work.
type BatcherStats struct {
	Appends, Commands, Events uint64
}

type batcherCounters struct{ appends, commands, events atomic.Uint64 }

// Stats returns the counts so far.
func (b *Batcher[S, E]) Stats() BatcherStats {
	return BatcherStats{Appends: b.stats.appends.Load(), Commands: b.stats.commands.Load(), Events: b.stats.events.Load()}
}

// errStale is an attempt that refused a command on a cached state which
// another writer's appends have overtaken: nothing was appended; the
// batch is decided again on the stream as stored.
var errStale = fmt.Errorf("%w: another writer appended since the state was cached", ErrConflict)

// Decision is one command's decision: given the current state, the events
// to append or an error. It must not modify the state, must be free of side
// effects and may run more than once. A command with an idempotency key
// (Metadata.IdempotencyKey) must decide no events on a state that holds
// its own (the state remembers the key): after an append recognised as a
// retry the batch is decided again on the stream as stored.
type Decision[S any, E Typed] func(S) ([]E, error)

// Outcome is what became of one command.
type Outcome[S any, E Typed] struct {
	// Result of the append that carried the command's events, with
	// Position that of the command's own last event (not the batch's
	// last, where the store's positions tell it: consecutive or shared);
	// with no events, the stream's revision and last position as the
	// command saw it.
	Result AppendResult
	Events []E
}

// ErrBatcherClosed is returned for commands sent after Close.
var ErrBatcherClosed = errors.New("command batcher closed")

type command[S any, E Typed] struct {
	ctx    context.Context
	meta   Metadata
	decide Decision[S, E]
	done   chan commandResult[S, E]
}

type commandResult[S any, E Typed] struct {
	out Outcome[S, E]
	err error
}

// Do decides one command on stream and appends its events, batched with
// whatever other commands for the stream are waiting. It returns when the
// events are durable, or with the decision's error.
func (b *Batcher[S, E]) Do(ctx context.Context, stream string, meta Metadata, decide Decision[S, E]) (Outcome[S, E], error) {
	c := &command[S, E]{ctx: ctx, meta: meta, decide: decide, done: make(chan commandResult[S, E], 1)}
	for {
		w, err := b.writer(stream)
		if err != nil {
			return Outcome[S, E]{}, err
		}
		select {
		case w.queue <- c:
		case <-w.exited:
			continue // the writer retired while we looked: get a new one
		case <-ctx.Done():
			return Outcome[S, E]{}, ctx.Err()
		}
		break
	}
	select {
	case r := <-c.done:
		return r.out, r.err
	case <-ctx.Done():
		// The command may still be carried out; like any network call, the
		// caller cannot know. Idempotency keys make retrying safe.
		return Outcome[S, E]{}, ctx.Err()
	}
}

// Close stops every stream's writer after the commands already queued.
func (b *Batcher[S, E]) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
	b.mu.Unlock()
	b.wg.Wait()
	b.repo.WaitSnapshots()
}

func (b *Batcher[S, E]) writer(stream string) (*streamWriter[S, E], error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrBatcherClosed
	}
	if w, ok := b.writers[stream]; ok {
		return w, nil
	}
	w := &streamWriter[S, E]{b: b, stream: stream, queue: make(chan *command[S, E], 4*b.maxBatch), exited: make(chan struct{})}
	b.writers[stream] = w
	b.wg.Add(1)
	go w.run()
	return w, nil
}

// retire removes w unless commands arrived meanwhile.
func (b *Batcher[S, E]) retire(w *streamWriter[S, E]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(w.queue) > 0 {
		return false
	}
	delete(b.writers, w.stream)
	close(w.exited)
	return true
}

type streamWriter[S any, E Typed] struct {
	b      *Batcher[S, E]
	stream string
	queue  chan *command[S, E]
	exited chan struct{}
	state  *Loaded[S] // nil: to be loaded
}

func (w *streamWriter[S, E]) run() {
	defer w.b.wg.Done()
	idle := time.NewTimer(w.b.idle)
	defer idle.Stop()
	batch := make([]*command[S, E], 0, w.b.maxBatch)
	for {
		var first *command[S, E]
		select {
		case first = <-w.queue:
		case <-idle.C:
			if w.b.retire(w) {
				return
			}
			idle.Reset(w.b.idle)
			continue
		case <-w.b.done:
			for {
				select {
				case c := <-w.queue:
					w.execute([]*command[S, E]{c})
				default:
					w.b.retire(w)
					return
				}
			}
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < w.b.maxBatch {
			select {
			case c := <-w.queue:
				batch = append(batch, c)
			default:
				break drain
			}
		}
		w.execute(batch)
		idle.Reset(w.b.idle)
	}
}

// maxBatchAttempts bounds the attempts of one batch that keeps
// conflicting: with the backoff, several seconds of writers racing on one
// stream (a hot wallet on several instances, whose reloads take long
// enough for the others to append meanwhile) before the conflict reaches
// the callers.
const maxBatchAttempts = 48

// errRecognised is an attempt whose append the store recognised as a
// retry: nothing was written, the batch is decided again on the stream
// as stored.
var errRecognised = fmt.Errorf("%w: the append was recognised as a retry of another writer's", ErrConflict)

// execute decides and appends one batch, retrying the whole batch with a
// freshly loaded state on a conflict or an append recognised as a retry.
func (w *streamWriter[S, E]) execute(batch []*command[S, E]) {
	ctx := context.Background()
	results := make([]commandResult[S, E], len(batch))
	var snapshotDue bool
	var err error
	for attempt := 1; ; attempt++ {
		snapshotDue, err = w.attempt(ctx, batch, results)
		if err == nil || !errors.Is(err, ErrConflict) || attempt == maxBatchAttempts {
			break
		}
		if attempt > 1 {
			// Writers racing on one stream (several instances) would
			// keep conflicting in step: the later attempts wait a
			// little, jittered.
			time.Sleep(backoff.Jitter(backoff.Exp(time.Millisecond, 100*time.Millisecond, attempt-2)))
		}
	}
	if errors.Is(err, ErrInvalidEvent) && len(batch) > 1 {
		// Nothing was written and each command's events passed the
		// store's checks on their own (precheck): the refusal is of the
		// combination. Decisions may run again.
		for _, c := range batch {
			w.execute([]*command[S, E]{c})
		}
		return
	}
	for i, c := range batch {
		r := results[i]
		if err != nil && r.err == nil {
			r = commandResult[S, E]{err: err}
		}
		c.done <- r
	}
	// A snapshot due after the append is taken once the commands have
	// their answers.
	if snapshotDue && w.state != nil {
		w.b.repo.snap.save(w.b.store, w.stream, *w.state)
	}
}

// attempt decides every live command of batch on the cached state and
// appends their events at once; snapshotDue reports that the append
// crossed a multiple of the snapshot interval. On any append failure, and
// on an append the store recognised as a retry (errRecognised), the cached
// state, which already holds events this append did not write, is dropped.
func (w *streamWriter[S, E]) attempt(ctx context.Context, batch []*command[S, E], results []commandResult[S, E]) (snapshotDue bool, err error) {
	cached := w.state != nil
	if !cached {
		l, err := w.b.repo.Load(ctx, w.stream)
		if err != nil {
			return false, err
		}
		w.state = &l
	}
	st := w.state
	refused := false
	var data []EventData
	owners := make([]int, 0, len(batch)) // index of the command of each appended event group
	ends := make([]int, 0, len(batch))   // and the number of events appended up to its last
	for i, c := range batch {
		results[i] = commandResult[S, E]{}
		if err := c.ctx.Err(); err != nil {
			results[i].err = err // given up before it was decided: nothing done
			continue
		}
		events, err := c.decide(st.State)
		if err != nil {
			results[i].err, refused = err, true
			continue
		}
		if len(events) == 0 {
			results[i].out.Result = AppendResult{NextRevision: st.Next, Position: st.Position}
			continue
		}
		encoded, err := w.b.codec.Encode(c.meta, events)
		if err == nil && c.meta.IdempotencyKey != "" {
			for j := range encoded {
				encoded[j].ID = EventID(w.stream, j, encoded[j])
			}
		}
		if err == nil {
			// The store's own checks, for this command alone: a bad event
			// fails its command, not the batch. The store's Append runs the
			// full Prepare on the batch; precheck does not do its work twice.
			err = precheck(w.stream, encoded, w.b.maxEvent)
		}
		if err != nil {
			results[i].err = err
			continue
		}
		for _, e := range events {
			st.State = w.b.evolve(st.State, e)
		}
		results[i].out.Events = events
		data = append(data, encoded...)
		owners = append(owners, i)
		ends = append(ends, len(data))
	}
	if refused && cached && w.b.shared {
		newer, err := w.b.store.ReadStream(ctx, w.stream, st.Next, 1)
		if err != nil || len(newer) > 0 {
			w.state = nil // holds this batch's undecided events too
			if err != nil {
				return false, fmt.Errorf("check %s@%d before refusing: %w", w.stream, st.Next, err)
			}
			return false, fmt.Errorf("refusal in %s@%d: %w", w.stream, st.Next, errStale)
		}
	}
	if len(data) == 0 {
		return false, nil
	}
	res, err := w.b.store.Append(ctx, w.stream, ExpectRevision(st.Next), data...)
	if err != nil {
		w.state = nil
		return false, fmt.Errorf("append batch of %d events to %s: %w", len(data), w.stream, err)
	}
	if res.Retry {
		w.state = nil
		return false, fmt.Errorf("append batch of %d events to %s@%d: %w", len(data), w.stream, res.NextRevision, errRecognised)
	}
	snapshotDue = w.b.repo.snap.due(st.Next, res.NextRevision)
	st.Next, st.Position = res.NextRevision, res.Position
	w.b.stats.appends.Add(1)
	w.b.stats.commands.Add(uint64(len(owners)))
	w.b.stats.events.Add(uint64(len(data)))
	consecutive := res.FirstPosition != 0 && res.Position-res.FirstPosition == uint64(len(data)-1)
	for k, i := range owners {
		// Each command is answered with its own last event's position,
		// as a replay of it will be (not the batch's last).
		r := res
		if consecutive {
			r.Position = res.FirstPosition + uint64(ends[k]-1)
		}
		results[i].out.Result = r
	}
	return snapshotDue, nil
}
