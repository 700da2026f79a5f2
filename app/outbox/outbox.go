// Package outbox is the outbox notifier: it turns every firing of a price
// alert (alerts.triggered) into deliveries, one per channel, and delivers
// them by email and webhook with retries, a delivery log and manual
// redelivery.
//
// Deliveries are event-sourced. The delivery of firing seq of alert id to
// a channel is the stream "delivery-<id>.<seq>.<channel>": notify.queued
// (appended with expected version NoStream and a deterministic event id, so
// a replay of the log never queues a firing twice), then one
// notify.attempted per attempt, and notify.delivered or notify.gave_up;
// notify.redelivery_requested makes it pending again. The notifier's
// memory is rebuilt from the log on every start, and side effects are only
// ever caused by pending deliveries: replaying the log (a restart, a new
// instance, a projection rebuild) re-sends nothing that was delivered or
// given up.
//
// Delivery is at least once. The notifier sends, then records the attempt;
// a crash (or a failure to record) between the two leaves the delivery
// pending, and it is sent again after the restart. Every attempt of a
// delivery carries the same delivery id (the email's Message-ID, the
// webhook's delivery id), so receivers can drop duplicates.
//
// The notifier is a singleton worker: run one per event store. Two would
// both send every pending delivery.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore"
)

// Mail is an email to send.
type Mail struct {
	From      string // empty: the mailer's default sender
	To        string
	Subject   string
	Text      string
	MessageID string // "<id@domain>", the same for every attempt of a delivery
}

// Mailer sends email. SendMail returns nil once the message is accepted
// for delivery; an error means it was not (retry later unless
// Config.Permanent says otherwise). It must be safe for concurrent use.
type Mailer interface {
	SendMail(ctx context.Context, m Mail) error
}

// Webhook is a webhook request to POST: Body to URL, signed with Secret,
// identified by DeliveryID (the same for every attempt).
type Webhook struct {
	URL        string
	Secret     []byte
	DeliveryID string
	EventType  string
	Body       []byte
}

// Poster posts webhooks. PostWebhook returns the HTTP status of the answer
// (0 if none) and an error when the request failed; a non-2xx status
// without an error is taken as a failure too. It must be safe for
// concurrent use.
type Poster interface {
	PostWebhook(ctx context.Context, w Webhook) (status int, err error)
}

// StatusError is the failure of a webhook answered with a non-2xx status.
// 4xx statuses other than 408 and 429 are permanent.
type StatusError struct{ Status int }

func (e *StatusError) Error() string { return "webhook answered HTTP " + strconv.Itoa(e.Status) }

// Permanent reports whether retrying cannot help.
func (e *StatusError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 429
}

// Config configures a Notifier. Store is required; the rest has defaults.
type Config struct {
	Store eventstore.Store
	// Mail sends the email deliveries and Hooks the webhook ones. A
	// delivery to a channel without one gives up at its first attempt.
	Mail  Mailer
	Hooks Poster
	// WebhookSecret signs webhooks (passed to Hooks).
	WebhookSecret []byte
	// Clock is the time of attempts and schedules (default time.Now).
	Clock func() time.Time
	// Backoff is the retry schedule: given the number of failed attempts
	// since the delivery was queued (or its redelivery requested), how
	// long to wait before the next one, or false to give up. Default
	// DefaultBackoff: 10 s, 1 min, then 10 min, 6 attempts in all.
	Backoff func(failed int) (time.Duration, bool)
	// Permanent reports errors not worth retrying (an address the server
	// rejects): the delivery gives up at once. Default: none, apart from
	// the StatusErrors of 4xx answers.
	Permanent func(error) bool
	// From is the sender of the emails.
	From string
	// Logger (default: discard).
	Logger *slog.Logger
	// Workers is how many deliveries are sent at once (default 4).
	Workers int
	// AttemptTimeout bounds one send (default 30 s).
	AttemptTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Backoff == nil {
		c.Backoff = DefaultBackoff
	}
	if c.Permanent == nil {
		c.Permanent = func(error) bool { return false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 30 * time.Second
	}
}

// Errors of the worker.
var (
	// ErrStopped: the notifier stopped while a caller waited for it.
	ErrStopped = errors.New("notifier stopped")
	// ErrRunning: Run was called while the notifier was already running.
	ErrRunning = errors.New("notifier already running")
)

// Actor is the metadata actor of the events the notifier appends.
const Actor = "notifier"

// Notifier is the outbox worker. Run it once; Redeliver and Deliveries
// may be called from anywhere, concurrently.
type Notifier struct {
	cfg        Config
	log        *slog.Logger
	codec      *eventstore.Codec[Event]
	alertCodec *eventstore.Codec[alerts.Event]
	repo       *eventstore.Repository[*Delivery, Event]
	running    atomic.Bool

	mu      sync.Mutex
	state   progress
	changed chan struct{} // closed and replaced when state changes
}

// progress is what the running loop tells waiters.
type progress struct {
	pos      uint64 // last event processed
	caughtUp bool   // reached the head the run started at
	busy     int    // deliveries pending, being queued or being sent
	stopped  error  // set when Run returns, nil while running
}

// New returns a notifier. It does no I/O.
func New(cfg Config) *Notifier {
	cfg.setDefaults()
	codec := eventstore.NewCodecOf(Events()...)
	agg := eventstore.Aggregate[*Delivery, Event]{Initial: newDelivery, Evolve: evolve}
	return &Notifier{cfg: cfg, log: cfg.Logger, codec: codec, alertCodec: eventstore.NewCodecOf(alerts.Events()...),
		repo: eventstore.NewRepository(cfg.Store, codec, agg), changed: make(chan struct{})}
}

func (n *Notifier) now() time.Time { return n.cfg.Clock().UTC() }

func (n *Notifier) publish(p progress) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p == n.state {
		return
	}
	n.state = p
	close(n.changed)
	n.changed = make(chan struct{})
}

// Run follows the log from position 0 until ctx is done (it returns nil)
// or the log cannot be read (it returns the error). While it catches up
// with the log it only rebuilds its memory; then it queues a delivery per
// channel for every firing not yet queued, sends the pending deliveries
// that are due, records every attempt, retries on the Backoff schedule and
// gives up when it ends or an error is permanent. Run may be called again
// after it returned.
func (n *Notifier) Run(ctx context.Context) error {
	if !n.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer n.running.Store(false)
	n.publish(progress{})
	err := n.run(ctx)
	stopped := ErrStopped
	if err != nil && ctx.Err() == nil {
		stopped = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	n.mu.Lock()
	p := n.state
	n.mu.Unlock()
	p.stopped = stopped
	n.publish(p)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (n *Notifier) run(ctx context.Context) error {
	head, err := n.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	l := &loop{n: n, target: head, caughtUp: head == 0, pending: map[string]*entry{}, toQueue: map[string]*queueItem{},
		inflight: map[string]uint64{}}
	batches := make(chan []eventstore.Event, 4)
	jobs := make(chan job, n.cfg.Workers)
	results := make(chan result, n.cfg.Workers)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := n.cfg.Store.Subscribe(gctx, 0, func(ctx context.Context, events []eventstore.Event) error {
			select {
			case batches <- events:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err == nil {
			err = errors.New("subscription ended")
		}
		return fmt.Errorf("notifier: subscription: %w", err)
	})
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
	g.Go(func() error { return l.run(gctx, batches, jobs, results) })
	return g.Wait()
}

// loop is the state of one Run, owned by its loop goroutine.
type loop struct {
	n        *Notifier
	pos      uint64
	target   uint64
	caughtUp bool
	pending  map[string]*entry     // deliveries with status pending
	toQueue  map[string]*queueItem // firings seen, their queued event not yet
	inflight map[string]uint64     // being sent (0), or recorded at a position not yet processed
	busy     int                   // jobs handed to workers
}

// entry is a pending delivery.
type entry struct {
	d       *Delivery
	next    uint64    // revision of its stream's next event to apply
	retryAt time.Time // after a send whose attempt could not be recorded
}

// queueItem is a delivery to queue.
type queueItem struct {
	q        Queued
	meta     eventstore.Metadata
	appended bool      // waiting for the queued event to come by
	retryAt  time.Time // after a failed append
}

type job struct {
	q       Queued
	attempt int // number of the attempt
}

type result struct {
	id  string
	pos uint64 // position of the recorded attempt's last event
	err error  // sending or recording failed before anything was recorded
}

// maxSleep bounds the loop's wait for a due delivery, so that a clock that
// jumps is noticed.
const maxSleep = time.Second

func (l *loop) run(ctx context.Context, batches <-chan []eventstore.Event, jobs chan<- job, results <-chan result) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if l.caughtUp {
			l.flush(ctx)
		}
		wake := l.dispatch(jobs)
		l.n.publish(progress{pos: l.pos, caughtUp: l.caughtUp, busy: len(l.pending) + len(l.toQueue) + len(l.inflight)})
		var tick <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(min(max(wake.Sub(l.n.now()), time.Millisecond), maxSleep))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case events := <-batches:
			if err := l.apply(ctx, events); err != nil {
				return err
			}
		case r := <-results:
			l.finished(r)
		case <-tick:
		}
	}
}

// apply folds a batch of the log into the loop's state.
func (l *loop) apply(ctx context.Context, events []eventstore.Event) error {
	for _, ev := range events {
		switch {
		case ev.Type == alerts.TypeAlertTriggered && strings.HasPrefix(ev.Stream, alerts.StreamPrefix):
			l.triggered(ev)
		case strings.HasPrefix(ev.Stream, StreamPrefix) && l.n.codec.Knows(ev.Type):
			if err := l.delivery(ctx, ev); err != nil {
				return err
			}
		}
		l.pos = ev.Position
	}
	for id, at := range l.inflight {
		if at != 0 && at <= l.pos {
			delete(l.inflight, id)
		}
	}
	if !l.caughtUp && l.pos >= l.target {
		l.caughtUp = true
		l.n.log.Info("notifier caught up", "position", l.pos, "pending", len(l.pending), "to_queue", len(l.toQueue))
	}
	return nil
}

// triggered notes the deliveries of a firing, to be queued once caught up.
func (l *loop) triggered(ev eventstore.Event) {
	d, err := l.n.alertCodec.Decode(ev)
	if err != nil {
		l.n.log.Error("notifier: undecodable alert event", "stream", ev.Stream, "position", ev.Position, "err", err)
		return
	}
	t, ok := d.(alerts.AlertTriggered)
	if !ok {
		return
	}
	for _, ch := range channels {
		to := t.Channels.Email
		if ch == ChannelWebhook {
			to = t.Channels.Webhook
		}
		if to == "" {
			continue
		}
		id := DeliveryID(t.ID, t.Seq, ch)
		if _, known := l.pending[id]; known {
			continue
		}
		l.toQueue[id] = &queueItem{
			q: Queued{DeliveryID: id, AlertID: t.ID, Seq: t.Seq, Channel: ch, To: to, Owner: t.Owner, Pair: t.Pair,
				Direction: t.Direction, Target: t.Target, Price: t.Price, TickPosition: t.TickPosition, TriggeredAt: t.At,
				TriggerPosition: ev.Position},
			meta: eventstore.Metadata{Actor: Actor, CausationID: ev.ID.String(), CorrelationID: ev.Metadata.CorrelationID,
				IdempotencyKey: id + "#queued"},
		}
	}
}

// delivery folds an event of a delivery stream.
func (l *loop) delivery(ctx context.Context, ev eventstore.Event) error {
	id := strings.TrimPrefix(ev.Stream, StreamPrefix)
	d, err := l.n.codec.Decode(ev)
	if err != nil {
		l.n.log.Error("notifier: undecodable delivery event", "stream", ev.Stream, "position", ev.Position, "err", err)
		return nil
	}
	e := l.pending[id]
	if e == nil {
		switch d.(type) {
		case Queued:
			delete(l.toQueue, id)
			e = &entry{d: newDelivery()}
		case RedeliveryRequested:
			// A settled delivery is not in memory: load it, request
			// included (and whatever followed it).
			loaded, err := l.n.repo.Load(ctx, ev.Stream)
			if err != nil {
				return fmt.Errorf("notifier: redelivery of %s: %w", id, err)
			}
			if loaded.State.Status == StatusPending {
				l.pending[id] = &entry{d: loaded.State, next: loaded.Next}
			}
			return nil
		default:
			return nil // a settled delivery
		}
		l.pending[id] = e
	}
	if ev.Revision < e.next {
		return nil
	}
	evolve(e.d, d)
	e.next = ev.Revision + 1
	if e.d.Status != StatusPending {
		delete(l.pending, id)
	}
	return nil
}

// flush queues the noted deliveries.
func (l *loop) flush(ctx context.Context) {
	now := l.n.now()
	for id, it := range l.toQueue {
		if it.appended || it.retryAt.After(now) {
			continue
		}
		q := it.q
		q.At = now
		data, err := l.n.codec.Encode(it.meta, []Event{q})
		if err == nil {
			_, err = l.n.cfg.Store.Append(ctx, stream(id), eventstore.NoStream, data...)
		}
		switch {
		case err == nil:
			it.appended = true
		case errors.Is(err, eventstore.ErrConflict):
			delete(l.toQueue, id) // queued before: its events come by or came by
		case ctx.Err() != nil:
			return
		default:
			l.n.log.Error("notifier: queue delivery failed", "delivery", id, "err", err)
			it.retryAt = now.Add(time.Second)
		}
	}
}

// dispatch hands due deliveries to idle workers and returns when the next
// one is due (zero: nothing to wait for).
func (l *loop) dispatch(jobs chan<- job) time.Time {
	now := l.n.now()
	var wake time.Time
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for _, it := range l.toQueue {
		if !it.appended && it.retryAt.After(now) {
			later(it.retryAt)
		}
	}
	if !l.caughtUp {
		return wake
	}
	for id, e := range l.pending {
		if _, busy := l.inflight[id]; busy {
			continue
		}
		due := e.d.NextAttempt
		if e.retryAt.After(due) {
			due = e.retryAt
		}
		if due.After(now) {
			later(due)
			continue
		}
		if l.busy >= cap(jobs) {
			continue // a worker's result wakes the loop
		}
		jobs <- job{q: e.d.Queued, attempt: len(e.d.Attempts) + 1}
		l.busy++
		l.inflight[id] = 0
	}
	return wake
}

// finished takes a worker's result.
func (l *loop) finished(r result) {
	l.busy--
	if r.err != nil {
		delete(l.inflight, r.id)
		if e := l.pending[r.id]; e != nil {
			e.retryAt = l.n.now().Add(retryRecord)
		}
		return
	}
	if r.pos <= l.pos {
		delete(l.inflight, r.id)
		return
	}
	l.inflight[r.id] = r.pos
}

// retryRecord is how long a delivery waits after its attempt could not be
// recorded (the send may have happened: at least once).
const retryRecord = 5 * time.Second

// work sends one delivery and records the attempt.
func (n *Notifier) work(ctx context.Context, j job) result {
	id := j.q.DeliveryID
	o := n.send(ctx, j.q)
	if ctx.Err() != nil {
		// Shutting down: the send may have been cut short; it is tried
		// again after the restart.
		return result{id: id, err: ctx.Err()}
	}
	if o.err != nil {
		n.log.Warn("notification attempt failed", "delivery", id, "attempt", j.attempt, "status", o.status,
			"permanent", o.permanent, "err", o.err)
	}
	meta := eventstore.Metadata{Actor: Actor, IdempotencyKey: id + "#" + strconv.Itoa(j.attempt)}
	var err error
	for try := 1; try <= 3; try++ {
		var res eventstore.AppendResult
		var events []Event
		res, events, err = n.repo.Update(ctx, stream(id), meta, func(d *Delivery) ([]Event, error) {
			return recordAttempt(d, o, n.cfg.Backoff)
		})
		if err == nil {
			for _, e := range events {
				switch e := e.(type) {
				case Delivered:
					n.log.Info("notification delivered", "delivery", id, "attempt", e.Attempt)
				case GaveUp:
					n.log.Warn("notification gave up", "delivery", id, "attempts", e.Attempts, "reason", e.Reason)
				}
			}
			return result{id: id, pos: res.Position}
		}
		if ctx.Err() != nil {
			return result{id: id, err: ctx.Err()}
		}
		select {
		case <-ctx.Done():
			return result{id: id, err: ctx.Err()}
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
	n.log.Error("notifier: attempt not recorded; the delivery will be sent again", "delivery", id, "attempt", j.attempt, "err", err)
	return result{id: id, err: err}
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
		status, err = n.cfg.Hooks.PostWebhook(ctx, w)
		if err == nil && status != 0 && (status < 200 || status > 299) {
			err = &StatusError{Status: status}
		}
	default:
		err, permanent = fmt.Errorf("unknown channel %q", q.Channel), true
	}
	if err != nil && !permanent {
		var se *StatusError
		permanent = n.cfg.Permanent(err) || (errors.As(err, &se) && se.Permanent())
	}
	return outcome{err: err, status: status, permanent: permanent, at: n.now()}
}

// WaitIdle blocks until the notifier has processed the log up to the
// store's head as of the call and has nothing left to do: every firing
// queued and every delivery delivered or given up (one waiting for a retry
// is not idle). It returns ctx.Err() or ErrStopped when Run returns first.
// Called before Run, it waits for Run.
func (n *Notifier) WaitIdle(ctx context.Context) error {
	head, err := n.cfg.Store.Head(ctx)
	if err != nil {
		return fmt.Errorf("wait idle: %w", err)
	}
	for {
		n.mu.Lock()
		p, changed := n.state, n.changed
		n.mu.Unlock()
		if p.stopped != nil {
			return fmt.Errorf("wait idle: %w", p.stopped)
		}
		if n.running.Load() && p.caughtUp && p.pos >= head && p.busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Redeliver asks for delivery deliveryID to be sent again, for by, who
// must own the alert: to anyone else the delivery does not exist
// (ErrNotFound, as for a missing one). The running notifier picks the
// request up from the log, sends at once and, on failure, follows the
// retry schedule from its start. A delivery still pending is retried at
// once.
func (n *Notifier) Redeliver(ctx context.Context, deliveryID, by string) error {
	notFound := fmt.Errorf("redeliver: %w", ErrNotFound)
	if _, _, _, ok := parseDeliveryID(deliveryID); !ok || by == "" {
		return notFound
	}
	_, _, err := n.repo.Update(ctx, stream(deliveryID), eventstore.Metadata{Actor: by}, func(d *Delivery) ([]Event, error) {
		if !d.exists() || d.Queued.Owner != by {
			return nil, notFound
		}
		return []Event{RedeliveryRequested{DeliveryID: deliveryID, By: by, At: n.now()}}, nil
	})
	return err
}

// Deliveries returns the delivery log of an alert: every delivery of its
// firings 1, 2, ... up to the first firing with none, email before webhook,
// each with its status and attempts. It reads the streams directly (their
// names are deterministic), two reads per firing, so it is current to the
// last append. It does not check ownership: callers show it only to the
// alert's owner (Delivery.Queued.Owner), like the alert itself.
func (n *Notifier) Deliveries(ctx context.Context, alertID string) ([]Delivery, error) {
	id := alerts.ID(alertID)
	if !id.Valid() {
		return nil, nil
	}
	var out []Delivery
	for seq := 1; ; seq++ {
		found := false
		for _, ch := range channels {
			l, err := n.repo.Load(ctx, stream(DeliveryID(id, seq, ch)))
			if err != nil {
				return nil, fmt.Errorf("deliveries of alert %s: %w", id, err)
			}
			if l.Next == 0 {
				continue
			}
			found = true
			out = append(out, *l.State)
		}
		if !found {
			return out, nil
		}
	}
}
