// Package alerting is the command side of price alerts and the alert
// engine that fires them.
//
// Service creates and deletes alerts for their owners. Engine follows the
// event store as a projections.Follower (a Runner drives it from its
// snapshot): it keeps every watched alert in an in-memory index
// (alerts.Index) and, for each recorded price tick, triggers the alerts the
// tick crosses by executing alerts.Trigger on their streams. Notifications
// are not sent here: the notifier (package notify) follows the
// AlertTriggered events through its outbox.
package alerting

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/eventstore"
)

// ErrChannelUnavailable: an alert names a notification channel this
// service cannot deliver to (an email channel without an SMTP server).
var ErrChannelUnavailable = errors.New("notification channel unavailable")

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver = egress.Resolver

// Config is what a Service offers besides its store.
type Config struct {
	// Email says an SMTP server is configured. Without one, an alert with
	// an email channel is refused (ErrChannelUnavailable) rather than
	// accepted and never delivered.
	Email bool
	// Webhooks says where webhook channels may point. A webhook whose URL
	// or any address its host resolves to the policy forbids is refused
	// (egress.ErrForbidden). The notifier checks again when it connects.
	Webhooks egress.Policy
	// Resolver resolves webhook hosts (nil: net.DefaultResolver).
	Resolver Resolver
}

// Service executes alert commands. It is safe for concurrent use.
type Service struct {
	store eventstore.Store
	codec *eventstore.Codec[alerts.Event]
	repo  *eventstore.Repository[*alerts.Alert, alerts.Event]
	cfg   Config
	now   func() time.Time
	newID func() alerts.ID
}

// aggregate folds an alert stream.
var aggregate = eventstore.Aggregate[*alerts.Alert, alerts.Event]{Initial: alerts.New, Evolve: alerts.Evolve}

// New returns a service over store that offers the channels cfg
// describes. It does no I/O.
func New(store eventstore.Store, cfg Config) *Service {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	codec := eventstore.NewCodecOf(alerts.Events()...)
	return &Service{store: store, codec: codec, repo: eventstore.NewRepository(store, codec, aggregate), cfg: cfg,
		now: time.Now, newID: func() alerts.ID { return alerts.ID(uuid.NewString()) }}
}

// idNamespace derives alert ids from idempotency keys.
var idNamespace = uuid.MustParse("0b6f3c8e-2f0e-4d44-9a3e-5f3b4a1c7d21")

// Create creates the alert c describes and returns its id and the position
// of its AlertCreated. The id is chosen here when c.ID is empty: random, or
// derived from the owner and meta.IdempotencyKey when there is one, so that
// a retried request lands on the same stream and is answered with the
// original id and position (a reuse of the key for a different alert is
// alerts.ErrExists). c.At defaults to now. The stream must not exist
// (alerts.ErrExists). Invalid input wraps alerts.ErrValidation, a channel
// the service does not offer ErrChannelUnavailable, and a webhook target
// the policy forbids (scheme, user info, address) egress.ErrForbidden.
func (s *Service) Create(ctx context.Context, meta eventstore.Metadata, c alerts.Create) (alerts.ID, uint64, error) {
	host, err := s.checkChannels(c.Channels)
	if err != nil {
		return "", 0, err
	}
	if c.ID == "" {
		c.ID = s.newID()
		if meta.IdempotencyKey != "" {
			c.ID = alerts.ID(uuid.NewSHA1(idNamespace, []byte(c.Owner+"\x00"+meta.IdempotencyKey)).String())
		}
	}
	if c.At.IsZero() {
		c.At = s.now().UTC()
	}
	events, err := alerts.Decide(alerts.New(), c)
	if err != nil {
		return "", 0, err
	}
	data, err := s.codec.Encode(meta, events)
	if err != nil {
		return "", 0, fmt.Errorf("create alert %s: %w", c.ID, err)
	}
	if meta.IdempotencyKey != "" {
		// The store would take a retried append for the original whatever
		// its content; a reuse of the key must match the original request.
		pos, found, err := s.replayed(ctx, meta, c)
		if err != nil {
			return "", 0, err
		}
		if found {
			return c.ID, pos, nil
		}
	}
	// Last, as the one look-up over the network: after the checks that
	// cost nothing, and not for a retry answered with the original.
	if err := s.checkHost(ctx, host); err != nil {
		return "", 0, err
	}
	res, err := s.store.Append(ctx, c.ID.Stream(), eventstore.NoStream, data...)
	if errors.Is(err, eventstore.ErrConflict) {
		return "", 0, fmt.Errorf("create alert %s: %w", c.ID, alerts.ErrExists)
	}
	if err != nil {
		return "", 0, fmt.Errorf("create alert %s: %w", c.ID, err)
	}
	return c.ID, res.Position, nil
}

// checkChannels refuses a channel the service does not offer and a webhook
// URL the policy forbids as far as that is known without a look-up. It
// returns the webhook's host name that checkHost must resolve ("" for
// none: no webhook, or an IP literal, checked).
func (s *Service) checkChannels(ch alerts.Channels) (host string, err error) {
	if ch.Email != "" && !s.cfg.Email {
		return "", fmt.Errorf("%s: %w: email: no SMTP server is configured", createOp, ErrChannelUnavailable)
	}
	if ch.Webhook == "" {
		return "", nil
	}
	u, err := url.Parse(ch.Webhook)
	if err != nil {
		return "", nil // not a URL: the domain's validation says so
	}
	host, err = s.cfg.Webhooks.CheckURL(u)
	if err != nil {
		return "", fmt.Errorf("%s: webhook: %w", createOp, err)
	}
	return host, nil
}

// checkHost refuses a webhook host ("" : nothing to check) that does not
// resolve or any of whose addresses the policy forbids.
func (s *Service) checkHost(ctx context.Context, host string) error {
	if err := s.cfg.Webhooks.CheckHost(ctx, s.cfg.Resolver, host); err != nil {
		return fmt.Errorf("%s: webhook: %w", createOp, err)
	}
	return nil
}

// createOp names Create in the errors of its channel checks.
const createOp = "alerts: create"

// replayed looks for an earlier Create of c.ID under meta's idempotency
// key: found with the original's position when the stream holds the same
// alert, alerts.ErrExists when it holds another.
func (s *Service) replayed(ctx context.Context, meta eventstore.Metadata, c alerts.Create) (uint64, bool, error) {
	events, err := s.store.ReadStream(ctx, c.ID.Stream(), 0, 1)
	if err != nil {
		return 0, false, fmt.Errorf("create alert %s: %w", c.ID, err)
	}
	if len(events) == 0 {
		return 0, false, nil
	}
	exists := fmt.Errorf("create alert %s: %w", c.ID, alerts.ErrExists)
	if events[0].Metadata.IdempotencyKey != meta.IdempotencyKey {
		return 0, false, exists
	}
	ev, err := s.codec.Decode(events[0])
	if err != nil {
		return 0, false, fmt.Errorf("create alert %s: %w", c.ID, err)
	}
	orig, ok := ev.(alerts.AlertCreated)
	if !ok || orig.Owner != c.Owner || orig.Pair != c.Pair || orig.Direction != c.Direction || orig.Target != c.Target ||
		orig.Channels != c.Channels || (orig.Rearm == nil) != (c.Rearm == nil) || (orig.Rearm != nil && *orig.Rearm != *c.Rearm) {
		return 0, false, exists
	}
	return events[0].Position, true, nil
}

// Delete deletes alert id for by and returns the position of its
// AlertDeleted (or, for an alert already deleted, of its last event). An
// alert by does not own answers alerts.ErrNotFound exactly as a missing
// one does: same error, same message, and the same work (one read of the
// stream) before the answer.
func (s *Service) Delete(ctx context.Context, meta eventstore.Metadata, id alerts.ID, by string) (uint64, error) {
	if !id.Valid() {
		// No such stream can exist; answer as for a missing alert.
		_, err := alerts.Decide(alerts.New(), alerts.Delete{By: by})
		return 0, err
	}
	res, _, err := s.repo.Update(ctx, id.Stream(), meta, func(a *alerts.Alert) ([]alerts.Event, error) {
		return alerts.Decide(a, alerts.Delete{By: by, At: s.now().UTC()})
	})
	if err != nil {
		return 0, err
	}
	return res.Position, nil
}
