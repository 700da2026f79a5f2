package outbox

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore"
)

// Run sends the deliveries the Follower finds pending, as they fall due,
// until ctx is done (it returns nil). It reads each delivery's stream
// before sending it and sends only one that is pending and due there, then
// records the attempt: delivered, a retry on the Backoff schedule, or given
// up when the schedule ends or the error is permanent. Run reads no log of
// its own: it waits for the Follower (driven by the projection runner) to
// read the recorded events before it considers a delivery again. Run may be
// called again after it returned.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer n.running.Store(false)
	n.publish(progress{running: true})
	err := n.run(ctx)
	stopped := ErrStopped
	if err != nil && ctx.Err() == nil {
		stopped = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	n.publish(progress{stopped: stopped})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (n *Notifier) run(ctx context.Context) error {
	jobs := make(chan job)
	results := make(chan result, n.cfg.Workers)
	g, gctx := errgroup.WithContext(ctx)
	for range n.cfg.Workers {
		g.Go(func() error {
			for {
				select {
				case j := <-jobs:
					results <- n.work(gctx, j)
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		})
	}
	s := &sender{n: n, holds: map[string]hold{}}
	g.Go(func() error { return s.run(gctx, jobs, results) })
	return g.Wait()
}

// sender is the state of one Run, owned by its loop goroutine.
type sender struct {
	n     *Notifier
	holds map[string]hold // deliveries not to send now, by id
	busy  int             // jobs handed to workers
}

// hold keeps a pending delivery from being sent: while it is being sent,
// until the Follower has read its stream up to revision next (the attempt
// just recorded, or what the stream held when it was found not due), and
// not before until.
type hold struct {
	sending bool
	next    uint64
	until   time.Time
}

type job struct {
	id   string
	next uint64 // the revision the Follower had read the stream up to
}

type result struct {
	id string
	// The delivery is held until the Follower has read its stream up to
	// next and until has passed.
	next  uint64
	until time.Time
}

// maxSleep bounds the loop's wait for a due delivery, so that a clock that
// jumps is noticed.
const maxSleep = time.Second

func (s *sender) run(ctx context.Context, jobs chan<- job, results <-chan result) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, wake, changed := s.due()
		for _, j := range due {
			select {
			case jobs <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s.n.publish(progress{running: true, sending: s.busy})
		var tick <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(min(max(wake.Sub(s.n.now()), time.Millisecond), maxSleep))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case r := <-results:
			s.busy--
			s.holds[r.id] = hold{next: r.next, until: r.until}
		case <-tick:
		}
	}
}

// due returns the jobs to hand to idle workers now (marking them held as
// sending), when the next delivery falls due (zero: none waits), and a
// channel closed when the Follower's state next changes.
func (s *sender) due() ([]job, time.Time, <-chan struct{}) {
	f := s.n.follower
	now := s.n.now()
	var (
		jobs []job
		wake time.Time
	)
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, h := range s.holds {
		if _, ok := f.pending[id]; !ok && !h.sending {
			delete(s.holds, id) // settled
		}
	}
	first := firstOfHooks(f.pending)
	for id, p := range f.pending {
		if src, seq, ch, _ := parseDeliveryID(id); ch == ChannelHook && first[src] != seq {
			continue // an earlier delivery of the hook is pending: its settling wakes the loop
		}
		if h, held := s.holds[id]; held {
			if h.sending || p.next < h.next {
				continue // the Follower's change wakes the loop
			}
			if h.until.After(now) {
				later(h.until)
				continue
			}
			delete(s.holds, id)
		}
		if p.due.After(now) {
			later(p.due)
			continue
		}
		if s.busy >= s.n.cfg.Workers {
			continue // a worker's result wakes the loop
		}
		jobs = append(jobs, job{id: id, next: p.next})
		s.holds[id] = hold{sending: true}
		s.busy++
	}
	return jobs, wake, f.changed
}

// firstOfHooks returns, per integrator's webhook with pending deliveries,
// the lowest sequence number pending: a hook's deliveries are sent one at
// a time, in the order of the log, so a receiver gets a deposit's seen
// before its confirmed. A delivery waiting for a retry holds the hook's
// later ones back until it is delivered or given up.
func firstOfHooks(pending map[string]pending) map[alerts.ID]int {
	first := map[alerts.ID]int{}
	for id := range pending {
		if src, seq, ch, ok := parseDeliveryID(id); ok && ch == ChannelHook {
			if cur, seen := first[src]; !seen || seq < cur {
				first[src] = seq
			}
		}
	}
	return first
}

// retryRecord is how long a delivery waits after its stream could not be
// read or its attempt recorded (the send may have happened: at least once).
const retryRecord = 5 * time.Second

// work reads the delivery's stream and, if it is pending and due there,
// sends it and records the attempt.
func (n *Notifier) work(ctx context.Context, j job) result {
	id := j.id
	retry := result{id: id, until: n.now().Add(retryRecord)}
	l, err := n.repo.Load(ctx, stream(id))
	if err != nil {
		if ctx.Err() == nil {
			n.log.Error("notifier: read delivery failed", "delivery", id, "err", err)
		}
		return retry
	}
	if d := l.State; d.Status != StatusPending || d.NextAttempt.After(n.now()) {
		// The Follower is behind the stream (it resumed from an older
		// snapshot, or another instance acted): wait until it has read it.
		until := d.NextAttempt
		if d.Status != StatusPending {
			until = retry.until
		}
		return result{id: id, next: l.Next, until: until}
	}
	attempt := len(l.State.Attempts) + 1
	o := n.send(ctx, l.State.Queued)
	if ctx.Err() != nil {
		// Shutting down: the send may have been cut short; it is tried
		// again after the restart.
		return retry
	}
	if o.err != nil {
		n.log.Warn("notification attempt failed", "delivery", id, "attempt", attempt, "status", o.status,
			"permanent", o.permanent, "err", o.err)
	}
	meta := eventstore.Metadata{Actor: Actor, IdempotencyKey: id + "#" + strconv.Itoa(attempt)}
	for try := 1; try <= 3; try++ {
		var res eventstore.AppendResult
		var events []Event
		res, events, err = n.repo.Update(ctx, stream(id), meta, func(d *Delivery) ([]Event, error) {
			return recordAttempt(d, o, n.cfg.Backoff)
		})
		if err == nil {
			for _, e := range events {
				switch e := e.(type) {
				case Attempted:
					if e.OK {
						n.outcomes.delivered.Add(1)
					} else {
						n.outcomes.failed.Add(1)
					}
				case Delivered:
					n.log.Info("notification delivered", "delivery", id, "attempt", e.Attempt)
				case GaveUp:
					n.outcomes.gaveUp.Add(1)
					n.log.Warn("notification gave up", "delivery", id, "attempts", e.Attempts, "reason", e.Reason)
				}
			}
			return result{id: id, next: res.NextRevision}
		}
		select {
		case <-ctx.Done():
			return retry
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
	n.log.Error("notifier: attempt not recorded; the delivery will be sent again", "delivery", id, "attempt", attempt, "err", err)
	return retry
}

// send makes one attempt.
func (n *Notifier) send(ctx context.Context, q Queued) outcome {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.AttemptTimeout)
	defer cancel()
	var err error
	var status int
	permanent := false
	switch q.Channel {
	case ChannelEmail:
		if n.cfg.Mail == nil {
			err, permanent = errors.New("no mailer configured"), true
			break
		}
		err = n.cfg.Mail.SendMail(ctx, message(q, n.cfg.From))
	case ChannelWebhook:
		if n.cfg.Hooks == nil {
			err, permanent = errors.New("no webhook poster configured"), true
			break
		}
		var w Webhook
		if w, err = webhook(q, n.cfg.WebhookSecret); err != nil {
			permanent = true
			break
		}
		status, err = n.post(ctx, w)
	case ChannelHook:
		status, permanent, err = n.sendHook(ctx, q)
	default:
		err, permanent = fmt.Errorf("unknown channel %q", q.Channel), true
	}
	if err != nil && !permanent {
		var se *StatusError
		permanent = n.cfg.Permanent(err) || (errors.As(err, &se) && se.Permanent())
	}
	return outcome{err: err, status: status, permanent: permanent, at: n.now()}
}

// sendHook posts the delivery of an integrator's webhook, signed with the
// hook's current secret; a deleted hook's delivery gives up.
func (n *Notifier) sendHook(ctx context.Context, q Queued) (status int, permanent bool, err error) {
	if n.cfg.Hooks == nil || n.cfg.HookSecrets == nil {
		return 0, true, errors.New("no webhook poster configured")
	}
	secret, err := n.cfg.HookSecrets.HookSecret(ctx, q.Hook)
	if err != nil {
		return 0, errors.Is(err, ErrNotFound), fmt.Errorf("secret of hook %s: %w", q.Hook, err)
	}
	status, err = n.post(ctx, Webhook{URL: q.To, Secret: secret, DeliveryID: q.DeliveryID, EventType: q.Event, Body: q.Body})
	return status, false, err
}

// post posts w; a non-2xx answer is a StatusError.
func (n *Notifier) post(ctx context.Context, w Webhook) (int, error) {
	status, err := n.cfg.Hooks.PostWebhook(ctx, w)
	if err == nil && status != 0 && (status < 200 || status > 299) {
		err = &StatusError{Status: status}
	}
	return status, err
}

// WaitIdle blocks until the notifier has nothing left to do as far as its
// Follower has read the log: no delivery awaiting its queued event, none
// pending (one waiting for a retry is not idle) and none being sent. To
// wait for the log up to some position, first wait for the Follower to
// reach it (projections.Runner.WaitFor or CaughtUp with FollowerName). It
// returns ctx.Err() or ErrStopped when Run returns first. Called before
// Run, it waits for Run.
func (n *Notifier) WaitIdle(ctx context.Context) error {
	for {
		n.mu.Lock()
		p, changed := n.state, n.changed
		n.mu.Unlock()
		busy, followed := n.follower.busy()
		if p.stopped != nil {
			return fmt.Errorf("wait idle: %w", p.stopped)
		}
		if p.running && p.sending == 0 && busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		case <-followed:
		}
	}
}
