// Package expiry ends holds at their expiry: a scheduler that follows the
// event store's log and appends ledger.HoldExpired, through the wallet
// command path, for every hold whose expires_at has passed.
package expiry

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
)

// Actor is the metadata actor of the events the scheduler appends.
const Actor = "hold-expiry"

// ErrRunning: Run was called while the scheduler was already running.
var ErrRunning = errors.New("hold expiry scheduler already running")

// Options tune a Scheduler; the zero value is the production default.
type Options struct {
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// MaxWait is the longest the scheduler sleeps between looks at the
	// clock (default 1 minute): it bounds how late a clock that jumps
	// ahead is noticed. Tests with a fake clock set it small.
	MaxWait time.Duration
	// Retry is the delay before a hold whose expiry failed (a store error)
	// is tried again (default 5 s).
	Retry time.Duration
}

func (o *Options) setDefaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxWait <= 0 {
		o.MaxWait = time.Minute
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
}

// Scheduler expires holds. Run follows the global log from position 0 and
// keeps every active hold that has an expiry (HoldPlaced with expires_at,
// forgotten at its HoldReleased or HoldExpired); when the clock reaches a
// hold's expiry it executes ledger.ExpireHold{Now: now} on the hold's
// wallet through the wallet service, whose decider appends HoldExpired.
//
// Durability: the scheduler keeps nothing of its own. Each Run re-derives
// the holds from the log, so holds that expired while no scheduler ran
// (or whose expiry failed) are expired as soon as it starts. Start-up
// reads the whole log (decoding only hold events); a snapshot is left to
// the follower that will run every log consumer.
//
// Idempotence: an expiry is a command decided on the wallet's current
// state with the expected version. A hold that already ended (expired by
// another instance, by a spending command that carried the time, or
// released) is refused by the decider (ledger.ErrHoldNotFound) and
// dropped, so several schedulers, a restart in the middle of an expiry or
// a replay of the log never expire a hold twice. Reads need no scheduler to
// be correct: a hold past its expiry already reads as released.
//
// Errors: a store error on one expiry is logged and the hold tried again
// after Options.Retry; Run fails only when its subscription does.
type Scheduler struct {
	store   eventstore.Store
	wallets *wallets.Service
	codec   *eventstore.Codec[ledger.Event]
	log     *slog.Logger
	opts    Options
	running atomic.Bool

	mu      sync.Mutex
	pending map[hold]*entry // the active holds that expire, by wallet and id
	queue   queue           // the same entries, soonest first
	wake    chan struct{}   // a new entry may be due sooner

	// Owned by the subscription: the log's head when Run started, and
	// ready, closed once the log up to it is followed. Until then the
	// holds known are history in progress (a later event may end them),
	// so nothing is expired.
	target uint64
	ready  chan struct{}
}

// hold names a hold.
type hold struct{ wallet, id string }

// entry is a hold to expire at (or to try again at, after a failure).
type entry struct {
	hold  hold
	at    time.Time
	index int // in queue; -1 when not queued
}

// New returns a scheduler that follows store and expires holds through
// svc, logging to logger (nil: no logging). It does no I/O.
func New(store eventstore.Store, svc *wallets.Service, logger *slog.Logger, opts Options) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.setDefaults()
	return &Scheduler{store: store, wallets: svc, codec: eventstore.NewCodecOf(ledger.Events()...), log: logger, opts: opts}
}

// Run follows the log and expires holds until ctx is done (it returns nil)
// or the subscription fails (it returns that error). It may be called
// again after it returned; it starts over from position 0.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	s.mu.Lock()
	s.pending, s.queue, s.wake = map[hold]*entry{}, nil, make(chan struct{}, 1)
	s.mu.Unlock()
	head, err := s.store.Head(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("hold expiry: %w", err)
	}
	s.target, s.ready = head, make(chan struct{})
	if head == 0 {
		close(s.ready)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := s.store.Subscribe(gctx, 0, s.follow)
		if gctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("hold expiry: subscription: %w", err)
	})
	g.Go(func() error { s.loop(gctx); return nil })
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// follow takes a batch of the log: holds placed with an expiry are
// scheduled, ended holds forgotten.
func (s *Scheduler) follow(_ context.Context, events []eventstore.Event) error {
	changed := false
	for _, ev := range events {
		if ev.Type != ledger.TypeHoldPlaced && ev.Type != ledger.TypeHoldReleased && ev.Type != ledger.TypeHoldExpired {
			continue
		}
		wallet, ok := strings.CutPrefix(ev.Stream, ledger.StreamPrefix)
		if !ok {
			continue
		}
		d, err := s.codec.Decode(ev)
		if err != nil {
			s.log.Error("hold expiry: undecodable event", "stream", ev.Stream, "position", ev.Position, "err", err)
			continue
		}
		switch e := d.(type) {
		case ledger.HoldPlaced:
			if !e.ExpiresAt.IsZero() {
				s.schedule(hold{wallet, e.ID}, e.ExpiresAt)
				changed = true
			}
		case ledger.HoldReleased:
			s.forget(hold{wallet, e.ID})
		case ledger.HoldExpired:
			s.forget(hold{wallet, e.ID})
		}
	}
	if last := events[len(events)-1].Position; last >= s.target && s.target > 0 {
		s.target = 0 // caught up: from now on every batch is live
		close(s.ready)
		s.log.Info("hold expiry ready", "position", last, "holds", s.pendingCount())
		changed = true
	}
	if changed {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

func (s *Scheduler) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// schedule makes h due at at, replacing what was scheduled for it.
func (s *Scheduler) schedule(h hold, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pending[h]; e != nil {
		e.at = at
		if e.index >= 0 {
			heap.Fix(&s.queue, e.index)
			return
		}
		heap.Push(&s.queue, e)
		return
	}
	e := &entry{hold: h, at: at}
	s.pending[h] = e
	heap.Push(&s.queue, e)
}

// forget drops h.
func (s *Scheduler) forget(h hold) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.pending[h]; e != nil {
		delete(s.pending, h)
		if e.index >= 0 {
			heap.Remove(&s.queue, e.index)
		}
	}
}

// due takes the holds due at now out of the queue; they stay pending
// until their expiry is recorded.
func (s *Scheduler) due(now time.Time) []hold {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hold
	for len(s.queue) > 0 && !s.queue[0].at.After(now) {
		out = append(out, heap.Pop(&s.queue).(*entry).hold)
	}
	return out
}

// untilNext returns how long to wait from now for the next hold, at most
// MaxWait.
func (s *Scheduler) untilNext(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	wait := s.opts.MaxWait
	if len(s.queue) > 0 {
		wait = max(min(wait, s.queue[0].at.Sub(now)), 0)
	}
	return wait
}

func (s *Scheduler) loop(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-s.ready:
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
			timer.Stop()
		}
		now := s.opts.Now()
		for _, h := range s.due(now) {
			if ctx.Err() != nil {
				return
			}
			s.expire(ctx, h, now)
		}
		timer.Reset(s.untilNext(s.opts.Now()))
	}
}

// expire executes ExpireHold for h at now.
func (s *Scheduler) expire(ctx context.Context, h hold, now time.Time) {
	_, err := s.wallets.Execute(ctx, eventstore.Metadata{Actor: Actor}, h.wallet, func(*ledger.State) (ledger.Command, error) {
		return ledger.ExpireHold{ID: h.id, Now: now}, nil
	})
	switch {
	case err == nil:
		s.log.Info("hold expired", "wallet", h.wallet, "hold", h.id)
		s.forget(h)
	case errors.Is(err, ledger.ErrHoldNotFound), errors.Is(err, ledger.ErrWalletNotFound), errors.Is(err, ledger.ErrValidation):
		// Ended meanwhile (released, or expired elsewhere), or no longer
		// expiring at now (an id placed again): the log says what is next.
		s.log.Debug("hold not expired", "wallet", h.wallet, "hold", h.id, "err", err)
		s.forget(h)
	case ctx.Err() != nil:
	default:
		s.log.Error("hold expiry failed", "wallet", h.wallet, "hold", h.id, "err", err)
		s.mu.Lock()
		if e := s.pending[h]; e != nil && e.index < 0 {
			e.at = now.Add(s.opts.Retry)
			heap.Push(&s.queue, e)
		}
		s.mu.Unlock()
	}
}

// queue is a min-heap of entries by time.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
