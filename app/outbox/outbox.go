// Package outbox is the outbox notifier: it turns every firing of a price
// alert (alerts.triggered) into deliveries, one per channel, and delivers
// them by email and webhook with retries, a delivery log and manual
// redelivery. It also sends the deliveries of integrators' webhooks that
// another follower queues (Queue, ChannelHook): signed with each hook's
// secret (Config.HookSecrets), one at a time per hook in the order of the
// log.
//
// Deliveries are event-sourced. The delivery of firing seq of alert id to
// a channel is the stream "delivery-<id>.<seq>.<channel>": notify.queued
// (appended with expected version NoStream and a deterministic event id, so
// a replay of the log never queues a firing twice), then one
// notify.attempted per attempt, and notify.delivered or notify.gave_up;
// notify.redelivery_requested makes it pending again.
//
// The notifier has two parts. Its Follower follows the log under the
// projection runner (projections.Follow): it queues the deliveries of each
// firing and keeps the pending ones in memory, with a snapshot the runner
// stores beside its position, so a restart reads only the log after the
// snapshot. Run sends the pending deliveries and records every attempt.
// Side effects are only ever caused by deliveries that are pending in
// their stream, which Run reads again before each send: replaying the log
// (a restart, from any snapshot or none, a new instance) re-sends nothing
// that was delivered or given up.
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
	"sync"
	"sync/atomic"
	"time"

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

// Secrets gives the signing secret of an integrator's webhook. An error
// wrapping ErrNotFound (the hook was deleted, or may no longer be
// delivered) makes its deliveries give up; any other is retried. It must be safe for concurrent use.
type Secrets interface {
	HookSecret(ctx context.Context, hook string) ([]byte, error)
}

// Config configures a Notifier. Store is required; the rest has defaults.
type Config struct {
	Store eventstore.Store
	// Mail sends the email deliveries and Hooks the webhook ones. A
	// delivery to a channel without one gives up at its first attempt.
	Mail  Mailer
	Hooks Poster
	// WebhookSecret signs alert webhooks (passed to Hooks).
	WebhookSecret []byte
	// HookSecrets gives the secrets of integrators' webhooks; without it
	// their deliveries give up.
	HookSecrets Secrets
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

// Notifier is the outbox notifier: register its Follower with the
// projection runner and run Run beside it. Redeliver and Deliveries may be
// called from anywhere, concurrently.
type Notifier struct {
	cfg        Config
	log        *slog.Logger
	codec      *eventstore.Codec[Event]
	alertCodec *eventstore.Codec[alerts.Event]
	repo       *eventstore.Repository[*Delivery, Event]
	follower   *Follower
	running    atomic.Bool
	outcomes   struct{ delivered, failed, gaveUp atomic.Uint64 } // Stats

	mu      sync.Mutex
	state   progress
	changed chan struct{} // closed and replaced when state changes
}

// Stats is the notifier's queue and what its attempts came to since the
// process started (metrics).
type Stats struct {
	Pending           int    // deliveries waiting to be sent or retried
	Delivered, Failed uint64 // attempts that delivered, that failed
	GaveUp            uint64 // deliveries given up
}

// Stats returns the queue depth and the attempts' outcomes so far.
func (n *Notifier) Stats() Stats {
	f := n.follower
	f.mu.Lock()
	pending := len(f.pending)
	f.mu.Unlock()
	return Stats{Pending: pending, Delivered: n.outcomes.delivered.Load(), Failed: n.outcomes.failed.Load(),
		GaveUp: n.outcomes.gaveUp.Load()}
}

// progress is what the running sender tells waiters.
type progress struct {
	running bool  // Run is in progress
	sending int   // deliveries handed to the sending workers
	stopped error // set when Run returns, nil before and while it runs
}

// New returns a notifier. It does no I/O.
func New(cfg Config) *Notifier {
	cfg.setDefaults()
	codec := eventstore.NewCodecOf(Events()...)
	agg := eventstore.Aggregate[*Delivery, Event]{Initial: newDelivery, Evolve: evolve}
	n := &Notifier{cfg: cfg, log: cfg.Logger, codec: codec, alertCodec: eventstore.NewCodecOf(alerts.Events()...),
		repo: eventstore.NewRepository(cfg.Store, codec, agg), changed: make(chan struct{})}
	n.follower = newFollower(n)
	return n
}

// Follower returns the part of the notifier that follows the log, for the
// projection runner (projections.Follow). Run sends what it finds pending.
func (n *Notifier) Follower() *Follower { return n.follower }

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
	return n.deliveries(ctx, id, channels)
}

// HookDeliveries returns the delivery log of an integrator's webhook, as
// Deliveries does for an alert: deliveries 1, 2, ... up to the first
// missing one. Callers show it only to the hook's owner.
func (n *Notifier) HookDeliveries(ctx context.Context, hookID string) ([]Delivery, error) {
	id := alerts.ID(hookID) // the same id rule
	if !id.Valid() {
		return nil, nil
	}
	return n.deliveries(ctx, id, []Channel{ChannelHook})
}

// deliveries reads the delivery streams of source on chs, sequence 1, 2,
// ... up to the first with none.
func (n *Notifier) deliveries(ctx context.Context, id alerts.ID, chs []Channel) ([]Delivery, error) {
	var out []Delivery
	for seq := 1; ; seq++ {
		found := false
		for _, ch := range chs {
			l, err := n.repo.Load(ctx, stream(DeliveryID(id, seq, ch)))
			if err != nil {
				return nil, fmt.Errorf("deliveries of %s: %w", id, err)
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
