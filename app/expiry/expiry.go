// Package expiry ends holds at their expiry: a scheduler that follows the
// event store's log (a projections.Follower) and appends
// ledger.HoldExpired, through the wallet command path, for every hold whose
// expires_at has passed.
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

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/compact"
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

// Scheduler expires holds. It is a follower of the log
// (projections.Follower, named "hold_expiry"): the runner hands it the hold
// events, and it keeps every active hold that has an expiry (HoldPlaced
// with expires_at, forgotten at its HoldReleased or HoldExpired); Run
// executes ledger.ExpireHold{Now: now} on a hold's wallet through the
// wallet service, whose decider appends HoldExpired, when the clock reaches
// the hold's expiry.
//
// Durability: the runner keeps a snapshot of the holds with its position
// and restores it at start, handing the scheduler only the events after
// it, so holds that expired while no scheduler ran (or whose expiry
// failed) are expired as soon as it has caught up.
//
// Idempotence: an expiry is a command decided on the wallet's current
// state with the expected version. A hold that already ended (expired by
// another instance, by a spending command that carried the time, or
// released) is refused by the decider (ledger.ErrHoldNotFound) and
// dropped, so several schedulers, a restart in the middle of an expiry or
// a replay of the log since the snapshot never expire a hold twice. Reads
// need no scheduler to be correct: a hold past its expiry already reads as
// released. It is SideEffecting: an operator may skip an event that parks
// it.
//
// Errors: a store error on one expiry is logged and the hold tried again
// after Options.Retry.
type Scheduler struct {
	wallets *wallets.Service
	codec   *eventstore.Codec[ledger.Event]
	log     *slog.Logger
	opts    Options
	running atomic.Bool

	mu      sync.Mutex
	pending map[hold]*entry // the active holds that expire, by wallet and id
	queue   queue           // the same entries, soonest first
	wake    chan struct{}   // a new entry may be due sooner
}

// hold names a hold.
type hold struct{ wallet, id string }

// entry is a hold to expire at (or to try again at, after a failure).
type entry struct {
	hold  hold
	at    time.Time
	index int // in queue; -1 when not queued
}

// New returns a scheduler that expires holds through svc, logging to
// logger (nil: no logging). It does no I/O.
func New(svc *wallets.Service, logger *slog.Logger, opts Options) *Scheduler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.setDefaults()
	return &Scheduler{wallets: svc, codec: eventstore.NewCodecOf(ledger.Events()...), log: logger, opts: opts,
		pending: map[hold]*entry{}, wake: make(chan struct{}, 1)}
}

// Name is the scheduler's follower name.
const Name = "hold_expiry"

// Name implements projections.Follower.
func (s *Scheduler) Name() string { return Name }

// Version implements projections.Follower: bump it when what the
// scheduler keeps or its snapshot encoding changes.
func (s *Scheduler) Version() int { return 1 }

// SideEffects marks the scheduler as acting on the world
// (projections.SideEffecting).
func (s *Scheduler) SideEffects() {}

// Wants reports whether e places or ends a hold.
func (s *Scheduler) Wants(e eventstore.Event) bool {
	switch e.Type {
	case ledger.TypeHoldPlaced, ledger.TypeHoldReleased, ledger.TypeHoldExpired:
		return strings.HasPrefix(e.Stream, ledger.StreamPrefix)
	}
	return false
}

// Handle takes an event of the log: a hold placed with an expiry is
// scheduled, an ended hold forgotten. An undecodable hold event is an
// error and changes nothing.
func (s *Scheduler) Handle(_ context.Context, ev eventstore.Event) error {
	if !s.Wants(ev) {
		return nil
	}
	wallet := strings.TrimPrefix(ev.Stream, ledger.StreamPrefix)
	d, err := s.codec.Decode(ev)
	if err != nil {
		return fmt.Errorf("hold expiry: %w", err)
	}
	switch e := d.(type) {
	case ledger.HoldPlaced:
		if !e.ExpiresAt.IsZero() {
			s.schedule(hold{wallet, e.ID}, e.ExpiresAt)
			s.poke()
		}
	case ledger.HoldReleased:
		s.forget(hold{wallet, e.ID})
	case ledger.HoldExpired:
		s.forget(hold{wallet, e.ID})
	}
	return nil
}

// poke tells the loop that an entry may be due sooner.
func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Snapshot encodes the pending holds: a table of their wallets, then each
// hold as its wallet's number, its id and when it is due (Unix
// nanoseconds).
func (s *Scheduler) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	numbers := map[string]uint64{}
	var names []string
	for h := range s.pending {
		if _, ok := numbers[h.wallet]; !ok {
			numbers[h.wallet] = uint64(len(names))
			names = append(names, h.wallet)
		}
	}
	var w compact.Writer
	w.Uint(uint64(len(names)))
	for _, name := range names {
		w.String(name)
	}
	w.Uint(uint64(len(s.pending)))
	for h, e := range s.pending {
		w.Uint(numbers[h.wallet])
		w.String(h.id)
		w.Int(e.at.UnixNano())
	}
	return w.Bytes(), nil
}

// Restore replaces the pending holds with a snapshot's (none for nil). A
// corrupt snapshot is an error and changes nothing.
func (s *Scheduler) Restore(data []byte) error {
	pending := map[hold]*entry{}
	var q queue
	if len(data) > 0 {
		r := compact.NewReader(data)
		names := make([]string, r.Len())
		for i := range names {
			names[i] = r.String()
		}
		for range r.Len() {
			n := r.Uint()
			if n >= uint64(len(names)) {
				return fmt.Errorf("hold expiry: restore: %w", compact.ErrCorrupt)
			}
			h := hold{names[n], r.String()}
			e := &entry{hold: h, at: time.Unix(0, r.Int()).UTC(), index: len(q)}
			pending[h] = e
			q = append(q, e)
		}
		if err := r.Done(); err != nil {
			return fmt.Errorf("hold expiry: restore: %w", err)
		}
		heap.Init(&q)
	}
	s.mu.Lock()
	s.pending, s.queue = pending, q
	s.mu.Unlock()
	s.poke()
	return nil
}

// Run expires holds as they fall due until ctx is done (it returns nil).
// It starts once caughtUp returns (nil: at once): until the scheduler has
// handled the log up to its head, the holds it knows are history in
// progress (a later event may end them). caughtUp is the runner's CaughtUp
// for the scheduler; when it fails (the scheduler is parked) Run logs it
// and starts anyway, since the decider refuses to end a hold twice.
func (s *Scheduler) Run(ctx context.Context, caughtUp func(context.Context) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	if caughtUp != nil {
		if err := caughtUp(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("hold expiry starts before catching up", "err", err)
		}
	}
	s.log.Info("hold expiry ready", "holds", s.pendingCount())
	s.loop(ctx)
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
