// Package bus is the message bus inbound work travels on (walletnotify
// notifications, price ticks) from the sources that accept it to the
// routers that handle it: an in-process gochannel in the embedded
// deployment, or PostgreSQL through watermill-sql when several instances
// share the read models' Postgres. Open chooses; the rest of the code sees
// only a message.Publisher and a message.Subscriber.
//
// Delivery is at least once in both: a message may be handled again (after
// a crash between the handler's effect and its ack on Postgres), so every
// handler's effect must be idempotent; see postgres.go for how the Postgres
// bus acknowledges.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/logging"
)

// Kinds of bus.
const (
	KindGoChannel = "gochannel"
	KindPostgres  = "postgres"
)

// ErrUnknownTopic: a topic Options.Topics does not declare.
var ErrUnknownTopic = errors.New("bus: unknown topic")

// Options tune Open. Topics is required; zero values elsewhere give the
// defaults.
type Options struct {
	// Topics are every topic the service publishes or subscribes to. The
	// Postgres bus creates their tables at Open (see migrate); both kinds
	// refuse other topics with ErrUnknownTopic.
	Topics []string
	// ConsumerGroup is shared by the subscribers of every instance on the
	// Postgres bus: each message of a topic is handled by one of them
	// (default "coinledger").
	ConsumerGroup string
	// PollInterval: how often an idle Postgres subscriber looks for new
	// messages (default 500 ms).
	PollInterval time.Duration
	// AckDeadline: a message the handler has not acked (or nacked) after
	// this long is given up by this subscriber and delivered again, here or
	// on another instance (Postgres; default 30 s). It must cover the
	// handler's own retries, or a message that keeps failing is never
	// poisoned, only redelivered.
	AckDeadline time.Duration
	// Logger receives watermill's logs (nil: discarded).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.ConsumerGroup == "" {
		o.ConsumerGroup = "coinledger"
	}
	if o.PollInterval == 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.AckDeadline == 0 {
		o.AckDeadline = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Bus publishes and subscribes. It is safe for concurrent use.
type Bus struct {
	kind   string
	topics []string
	pub    message.Publisher
	sub    message.Subscriber
	close  func() error
}

// Open returns the bus url names: "" for the in-process gochannel (the
// embedded default; messages live in memory and are lost with the
// process), or a postgres:// URL for watermill-sql on that database
// (durable, shared by every instance on it).
func Open(ctx context.Context, url string, opts Options) (*Bus, error) {
	if len(opts.Topics) == 0 {
		return nil, errors.New("open bus: no topics")
	}
	opts.setDefaults()
	switch {
	case url == "":
		ch := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 4096}, logging.Watermill(opts.Logger))
		return &Bus{kind: KindGoChannel, topics: opts.Topics, pub: ch, sub: ch, close: ch.Close}, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url, opts)
	}
	return nil, errors.New("open bus: want no URL (in-process) or a postgres:// URL")
}

// Kind names the bus: KindGoChannel or KindPostgres.
func (b *Bus) Kind() string { return b.kind }

// Publish puts msgs on topic. A message without a correlation id gets the
// one its context carries (eventstore.WithCorrelationID), else a new one,
// in metadata middleware.CorrelationIDMetadataKey: the id travels with the
// message to the consumer, which hands it on to the events it causes.
func (b *Bus) Publish(topic string, msgs ...*message.Message) error {
	if !slices.Contains(b.topics, topic) {
		return fmt.Errorf("publish %s: %w", topic, ErrUnknownTopic)
	}
	for _, m := range msgs {
		if middleware.MessageCorrelationID(m) != "" {
			continue
		}
		id := eventstore.CorrelationID(m.Context())
		if id == "" {
			id = watermill.NewUUID()
		}
		middleware.SetCorrelationID(id, m)
	}
	if err := b.pub.Publish(topic, msgs...); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe returns the messages of topic; on the Postgres bus, only
// those no other subscriber of the consumer group handled. The channel
// closes when ctx is done or the bus closes.
func (b *Bus) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	if !slices.Contains(b.topics, topic) {
		return nil, fmt.Errorf("subscribe %s: %w", topic, ErrUnknownTopic)
	}
	ch, err := b.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	return ch, nil
}

// Close stops the subscriptions (a message being handled is given up,
// not acked) and releases the bus.
func (b *Bus) Close() error { return b.close() }

// Context returns msg's context carrying its correlation id (for
// eventstore.CorrelationID), for handlers that pass it to the command side.
func Context(msg *message.Message) context.Context {
	return eventstore.WithCorrelationID(msg.Context(), middleware.MessageCorrelationID(msg))
}
