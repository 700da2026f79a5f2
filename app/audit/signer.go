package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/compact"
)

// SignerName is the signer's follower name.
const SignerName = "checkpoint_signer"

// SignerActor is the metadata actor of checkpoint events.
const SignerActor = "checkpoint-signer"

// Defaults of SignerOptions.
const (
	DefaultCheckpointEvery    = 10_000
	DefaultCheckpointInterval = 10 * time.Minute
)

// Errors of Signer.Checkpoint.
var (
	// ErrSignerStopped: the signer is not running (Run has not started or
	// has returned), so it cannot catch up with the log.
	ErrSignerStopped = errors.New("checkpoint signer not running")
	// ErrSignerRunning: Run was called while the signer was running.
	ErrSignerRunning = errors.New("checkpoint signer already running")
)

// SignerOptions tune a Signer.
type SignerOptions struct {
	// Keys returns the keyring to sign with; it is called for every
	// checkpoint, so a rotation (a new keyring file) applies to the next
	// one. Required.
	Keys func() (*Keyring, error)
	// Every is the number of events, checkpoints not counted, after which
	// the signer makes a checkpoint (0: DefaultCheckpointEvery; negative:
	// never by count).
	Every int
	// Interval: when events other than checkpoints arrived since the last
	// checkpoint, one is made every Interval (0: DefaultCheckpointInterval;
	// negative: never by time).
	Interval time.Duration
	// RetryAfter is how long the signer waits after a checkpoint it could
	// not make (the store refused the append, the keys could not be read)
	// before it tries again (0: 5 s).
	RetryAfter time.Duration
	// Now is the clock of RetryAfter (nil: time.Now).
	Now func() time.Time
	// Logger logs checkpoints made and failures (nil: none).
	Logger *slog.Logger
}

func (o *SignerOptions) setDefaults() {
	if o.Every == 0 {
		o.Every = DefaultCheckpointEvery
	}
	if o.Interval == 0 {
		o.Interval = DefaultCheckpointInterval
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Signer appends signed checkpoints (domain/audit) to audit.Stream. It is
// a side-effecting follower of the log (projections.Follower, named
// SignerName) that folds every event into a Tally, and makes checkpoint
// n+1 of the tally as it stands:
//
//   - in Handle, when Every events other than checkpoints have followed
//     the newest checkpoint's position;
//   - in Run, every Interval, when any such event has;
//   - on demand (Checkpoint), at the head of the log.
//
// Idempotence: checkpoint n is appended as revision n-1 of its stream
// with that exact expected revision and an event id that depends on n
// only (checkpointEvent). The statement is a function of the log up to
// its position and the signature is deterministic, so a replay after a
// crash makes the identical event and the store recognises the retry; if
// checkpoint n exists already (made by another instance, or by this one
// before the crash at another position), the append is refused and the
// signer adopts the stored one. Either way, no number is taken twice and
// nothing is ever rewritten.
//
// The signer counts from the checkpoints it sees in the log, not from the
// ones it makes: a checkpoint it appended but has not seen yet is pending,
// and no other is made by count or time until it is seen. Its own
// checkpoint events are never counted, so a quiet log gets no more
// checkpoints.
//
// Snapshot: the tally and the counters, compactly (see Snapshot).
type Signer struct {
	store   eventstore.Store
	opts    SignerOptions
	log     *slog.Logger
	running atomic.Bool
	started chan struct{} // closed when Run has set caughtUp

	mu       sync.Mutex
	caughtUp func(context.Context) error // set by Run
	tally    *Tally
	last     uint64    // number of the newest checkpoint seen in the log
	since    uint64    // events after its position, checkpoints not counted
	pending  uint64    // number of a checkpoint appended and not seen yet
	booksAt  uint64    // position of an event the books failed on (see Handle)
	retryAt  time.Time // no checkpoint by count or time before then
	made     *built    // the newest checkpoint this signer made, with its trees
}

// built is a checkpoint with its liability trees.
type built struct {
	c     audit.Checkpoint
	trees map[string]*liability.Tree
}

// NewSigner returns a signer that appends to store. It does no I/O.
func NewSigner(store eventstore.Store, opts SignerOptions) *Signer {
	opts.setDefaults()
	return &Signer{store: store, opts: opts, log: opts.Logger, tally: NewTally(), started: make(chan struct{})}
}

// Name implements projections.Follower.
func (s *Signer) Name() string { return SignerName }

// Version implements projections.Follower: bump it when the tally or the
// snapshot encoding changes.
func (s *Signer) Version() int { return 1 }

// SideEffects marks the signer as acting on the world
// (projections.SideEffecting).
func (s *Signer) SideEffects() {}

// Handle folds e into the tally and makes a checkpoint when Every events
// have passed. A checkpoint event is read as such: it resets the count
// (one that cannot be read is folded and counted as any other event, and
// logged: the chain must cover it, and audit verify names it). An event
// the books cannot fold (a wallet event that does not decode) is an
// error; the chain has taken it, so handed again only the books retry it,
// and an operator's skip leaves the chain whole.
func (s *Signer) Handle(ctx context.Context, e eventstore.Event) error {
	var seen *audit.Checkpoint
	if e.Stream == audit.Stream {
		c, err := decodeCheckpoint(e)
		if err != nil {
			s.log.Error("checkpoint event unreadable", "position", e.Position, "stream", e.Stream, "err", err)
		} else {
			seen = &c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.booksAt != 0 && s.booksAt == e.Position {
		// The chain took e before the books failed on it.
		_, _, _, err = s.tally.books.Apply(e)
	} else {
		_, _, _, err = s.tally.Add(e)
	}
	if err != nil {
		s.booksAt = e.Position
		return fmt.Errorf("checkpoint signer: %w", err)
	}
	s.booksAt = 0
	if seen != nil {
		s.last = max(s.last, seen.Number)
		if s.pending <= seen.Number {
			s.pending = 0
		}
		// The events between the checkpoint's position and its event.
		s.since = 0
		if s.tally.Chain.Events > seen.Events+1 {
			s.since = s.tally.Chain.Events - seen.Events - 1
		}
		return nil
	}
	s.since++
	if s.opts.Every > 0 && s.since >= uint64(s.opts.Every) && s.mayMake() {
		s.makeOrWait(ctx)
	}
	return nil
}

// mayMake reports whether a checkpoint may be made by count or time: none
// is pending and no failure asks to wait. s.mu is held.
func (s *Signer) mayMake() bool { return s.pending == 0 && !s.opts.Now().Before(s.retryAt) }

// makeOrWait makes a checkpoint of the tally; when it fails, it logs why
// and waits RetryAfter before the next try. s.mu is held.
func (s *Signer) makeOrWait(ctx context.Context) {
	if _, _, err := s.make(ctx); err != nil {
		if ctx.Err() == nil {
			s.log.Error("checkpoint not made", "position", s.tally.Last.Position, "err", err)
		}
		s.retryAt = s.opts.Now().Add(s.opts.RetryAfter)
	}
}

// make signs the next checkpoint of the tally and appends it. It returns
// the checkpoint it signed and whether the log took it: false when the
// number was taken already, by a stored checkpoint the signer adopts (it
// is pending until seen). s.mu is held.
func (s *Signer) make(ctx context.Context) (c audit.Checkpoint, took bool, err error) {
	keys, err := s.opts.Keys()
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("make checkpoint: keys: %w", err)
	}
	number := max(s.last, s.pending) + 1
	st, trees, err := s.tally.Statement(number, keys.SaltSecret())
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("make checkpoint: %w", err)
	}
	c = keys.Sign(st)
	ev, err := checkpointEvent(c)
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("make checkpoint %d: %w", number, err)
	}
	_, err = s.store.Append(ctx, audit.Stream, eventstore.ExpectRevision(number-1), ev)
	if errors.Is(err, eventstore.ErrConflict) {
		stored, gerr := GetCheckpoint(ctx, s.store, number)
		if gerr != nil {
			return audit.Checkpoint{}, false, fmt.Errorf("make checkpoint %d: %w (reading the stored one: %w)", number, err, gerr)
		}
		s.pending = max(s.pending, number)
		s.log.Info("checkpoint adopted", "number", number, "position", stored.Position)
		return c, false, nil
	}
	if err != nil {
		return audit.Checkpoint{}, false, fmt.Errorf("make checkpoint %d: %w", number, err)
	}
	s.pending = number
	s.made = &built{c: c, trees: trees}
	s.log.Info("checkpoint signed", "number", number, "position", c.Position, "events", c.Events, "key_id", c.KeyID)
	return c, true, nil
}

// Checkpoint makes a checkpoint now, at the head of the log: it waits
// until the signer has handled every event the store holds, then makes
// the next checkpoint and returns it as the log holds it. Before Run has
// started it waits for it (or ctx); after Run returned it fails with
// ErrSignerStopped.
func (s *Signer) Checkpoint(ctx context.Context) (audit.Checkpoint, error) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return audit.Checkpoint{}, fmt.Errorf("checkpoint now: %w: %w", ErrSignerStopped, ctx.Err())
	}
	s.mu.Lock()
	caughtUp := s.caughtUp
	s.mu.Unlock()
	if caughtUp == nil || !s.running.Load() {
		return audit.Checkpoint{}, fmt.Errorf("checkpoint now: %w", ErrSignerStopped)
	}
	if err := caughtUp(ctx); err != nil {
		return audit.Checkpoint{}, fmt.Errorf("checkpoint now: %w", err)
	}
	// Another instance may take a number first: then the next one.
	for range 3 {
		s.mu.Lock()
		c, took, err := s.make(ctx)
		s.mu.Unlock()
		if err != nil {
			return audit.Checkpoint{}, err
		}
		if !took {
			continue
		}
		// What the store holds under the number is the answer: a store
		// recognises a retry by event id, so an append of another
		// checkpoint with the number could have "succeeded".
		stored, err := GetCheckpoint(ctx, s.store, c.Number)
		if err != nil {
			return audit.Checkpoint{}, err
		}
		if bytes.Equal(stored.Signature, c.Signature) {
			return stored, nil
		}
	}
	return audit.Checkpoint{}, fmt.Errorf("checkpoint now: three numbers in a row were taken by other signers: %w", eventstore.ErrConflict)
}

// Run makes checkpoints by time until ctx is done (it returns nil), and
// retries one by count that failed. It starts once caughtUp (the runner's
// CaughtUp for the signer) returns, and keeps caughtUp for Checkpoint.
func (s *Signer) Run(ctx context.Context, caughtUp func(context.Context) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrSignerRunning
	}
	defer s.running.Store(false)
	s.mu.Lock()
	first := s.caughtUp == nil
	s.caughtUp = caughtUp
	s.mu.Unlock()
	if first {
		close(s.started)
	}
	if err := caughtUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("checkpoint signer starts before catching up", "err", err)
	}
	retry := time.NewTicker(s.opts.RetryAfter)
	defer retry.Stop()
	var every <-chan time.Time
	if s.opts.Interval > 0 {
		t := time.NewTicker(s.opts.Interval)
		defer t.Stop()
		every = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-every:
			s.mu.Lock()
			due := s.since > 0 && s.mayMake()
			s.mu.Unlock()
			if due {
				if _, err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
					s.log.Error("checkpoint not made", "err", err)
				}
			}
		case <-retry.C:
			s.mu.Lock()
			if s.opts.Every > 0 && s.since >= uint64(s.opts.Every) && s.mayMake() {
				s.makeOrWait(ctx)
			}
			s.mu.Unlock()
		}
	}
}

// trees returns the liability trees of checkpoint c if this signer made
// it (the newest it made only), for proofs without a fold of the log.
func (s *Signer) trees(c audit.Checkpoint) map[string]*liability.Tree {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.made == nil || s.made.c.Number != c.Number || !bytes.Equal(s.made.c.Signature, c.Signature) {
		return nil
	}
	return s.made.trees
}

// signerVersion is the version byte of the signer's snapshot.
const signerVersion = 1

// Snapshot encodes the signer's state (internal/compact):
//
//	byte version (1), uvarint last, uvarint since, uvarint pending, the tally (see appendTally)
//
// The liability trees are not kept: they are made again from the tally.
func (s *Signer) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w compact.Writer
	w.Raw([]byte{signerVersion})
	w.Uint(s.last)
	w.Uint(s.since)
	w.Uint(s.pending)
	s.tally.appendTally(&w)
	return w.Bytes(), nil
}

// Restore replaces the state with a snapshot's (the empty log's for nil).
// A corrupt snapshot is an error and changes nothing.
func (s *Signer) Restore(data []byte) error {
	tally, last, since, pending := NewTally(), uint64(0), uint64(0), uint64(0)
	if len(data) > 0 {
		r := compact.NewReader(data)
		if v := r.Raw(1); len(v) != 1 || v[0] != signerVersion {
			return fmt.Errorf("checkpoint signer: restore: version %v, want %d", v, signerVersion)
		}
		last, since, pending = r.Uint(), r.Uint(), r.Uint()
		t, err := readTally(r)
		if err == nil {
			err = r.Done()
		}
		if err != nil {
			return fmt.Errorf("checkpoint signer: restore: %w", errors.Join(ErrTallyEncoding, err))
		}
		tally = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tally, s.last, s.since, s.pending, s.booksAt, s.made = tally, last, since, pending, 0, nil
	return nil
}
