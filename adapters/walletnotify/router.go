package walletnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/coinledger/coinledger/adapters/bus"
	"github.com/coinledger/coinledger/internal/logging"
)

// Topics of the notification bus.
const (
	// Topic names the notification topics: the sources' notifications go,
	// as JSON, to Topic.0 ... Topic.<Shards-1> by txid (TopicOf).
	Topic = "walletnotify"
	// PoisonTopic receives the notifications the handler kept failing on
	// (or panicked on), with the reason in metadata MetadataPoisonReason.
	PoisonTopic = "walletnotify.poison"
)

// Shards is how many topics the notifications are spread over by txid. The
// router handles the shards concurrently, and the notifications of one
// txid in order, one at a time (so they never race each other).
const Shards = 8

// TopicOf returns the topic of txid's notifications.
func TopicOf(txid string) string {
	h := fnv.New32a()
	h.Write([]byte(txid))
	return Topic + "." + strconv.Itoa(int(h.Sum32()%Shards))
}

// Topics returns every topic of the notification bus: the shards of Topic
// and PoisonTopic.
func Topics() []string {
	out := make([]string, 0, Shards+1)
	for shard := range Shards {
		out = append(out, Topic+"."+strconv.Itoa(shard))
	}
	return append(out, PoisonTopic)
}

// Metadata keys of the messages on the notification topics and PoisonTopic.
const (
	MetadataSource = "source"
	MetadataCoin   = "coin"
	MetadataTxID   = "txid"
	// MetadataPoisonReason is the last error (same key as watermill's
	// poison queue middleware uses).
	MetadataPoisonReason = "reason_poisoned"
	// MetadataAttempts is how many times the handler was called.
	MetadataAttempts = "attempts"
)

var (
	// ErrInvalidCoin: a notification without a coin.
	ErrInvalidCoin = errors.New("walletnotify: invalid coin")
	// ErrHandlerPanic: the handler panicked; the router recovered it.
	ErrHandlerPanic = errors.New("walletnotify: handler panicked")
)

// Publish returns a Sink that puts notifications on their topic of pub
// (TopicOf). The
// notification is validated first (txid per ParseTxID, which also lower-cases
// it; a non-blank coin, surrounding white space removed): an invalid one is
// refused with an error wrapping ErrInvalidTxID or ErrInvalidCoin and
// nothing is published. Every message gets a fresh random UUID: the same
// txid is notified again when its confirmations change, and each of those
// notifications must be a new message (the router's dedupe window, not the
// message id, absorbs bursts). The sink returns once pub has taken the
// message; it is safe for concurrent use if pub is.
func Publish(pub message.Publisher) Sink {
	return func(ctx context.Context, n Notification) error {
		txid, err := ParseTxID(n.TxID)
		if err != nil {
			return fmt.Errorf("walletnotify publish: %w", err)
		}
		coin := strings.TrimSpace(n.Coin)
		if coin == "" {
			return fmt.Errorf("walletnotify publish %s: %w: empty", txid, ErrInvalidCoin)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walletnotify publish %s %s: %w", coin, txid, err)
		}
		n.TxID, n.Coin = txid, coin
		payload, err := json.Marshal(n)
		if err != nil {
			return fmt.Errorf("walletnotify publish %s %s: %w", coin, txid, err)
		}
		msg := message.NewMessage(watermill.NewUUID(), payload)
		msg.SetContext(ctx) // its correlation id, if any, goes with it (bus.Bus.Publish)
		msg.Metadata.Set(MetadataSource, n.Source)
		msg.Metadata.Set(MetadataCoin, coin)
		msg.Metadata.Set(MetadataTxID, txid)
		if err := pub.Publish(TopicOf(txid), msg); err != nil {
			return fmt.Errorf("walletnotify publish %s %s: %w", coin, txid, err)
		}
		return nil
	}
}

// Handler processes one notification: the ledger asks the coin's backend
// about the transaction and records what it finds. It must be idempotent
// (the same notification may be handled again, after a failure or when it
// is notified again). An error makes the router retry with backoff; wrap
// it with Permanent when retrying cannot help. ctx is done when the router
// shuts down.
type Handler func(ctx context.Context, n Notification) error

// Permanent marks err as not worth retrying: the router sends the
// notification to PoisonTopic at once. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// RouterOptions tune NewRouter. The zero value gives the defaults.
type RouterOptions struct {
	// InitialInterval is the wait before the first retry of a failed
	// notification (default 1 s); each further wait doubles (with ±20 %
	// jitter) up to MaxInterval (default 1 min).
	InitialInterval time.Duration `yaml:"initial_interval"`
	MaxInterval     time.Duration `yaml:"max_interval"`
	// MaxRetries is how many times a failed notification is retried before
	// it goes to PoisonTopic: 0 means the default 10, a negative value no
	// retries.
	MaxRetries int `yaml:"max_retries"`
	// DedupeWindow: a notification for a coin and txid the handler was
	// called for less than this long ago (and that did not fail) is acked
	// without calling the handler. 0 means the default 2 s, a negative
	// value turns deduplication off.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// Logger receives the router's and watermill's logs (nil: discarded).
	Logger *slog.Logger `yaml:"-"`
	// Now is the dedupe window's clock (nil: time.Now).
	Now func() time.Time `yaml:"-"`
}

// RetryBudget is the longest a notification can spend waiting between the
// handler's attempts before it is poisoned (every wait at its +20 % jitter
// bound), handler time aside. A durable bus must not give a message up
// (its ack deadline) before that, or one that keeps failing is redelivered
// with its retries counted from zero and never poisoned.
func (o RouterOptions) RetryBudget() time.Duration {
	o.setDefaults()
	var total time.Duration
	wait := o.InitialInterval
	for range max(o.MaxRetries, 0) {
		total += wait * 12 / 10
		wait = min(2*wait, o.MaxInterval)
	}
	return total
}

func (o *RouterOptions) setDefaults() {
	if o.InitialInterval == 0 {
		o.InitialInterval = time.Second
	}
	if o.MaxInterval == 0 {
		o.MaxInterval = time.Minute
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 10
	}
	if o.DedupeWindow == 0 {
		o.DedupeWindow = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Validate reports every problem at once; zero values are valid (defaults).
func (o RouterOptions) Validate() error {
	var errs []error
	if o.InitialInterval < 0 {
		errs = append(errs, fmt.Errorf("initial_interval: %s is negative", o.InitialInterval))
	}
	if o.MaxInterval < 0 {
		errs = append(errs, fmt.Errorf("max_interval: %s is negative", o.MaxInterval))
	}
	if o.InitialInterval > 0 && o.MaxInterval > 0 && o.InitialInterval > o.MaxInterval {
		errs = append(errs, fmt.Errorf("initial_interval: %s is above max_interval %s", o.InitialInterval, o.MaxInterval))
	}
	return errors.Join(errs...)
}

// NewRouter returns a watermill router (not yet running) that consumes
// Topic from sub and calls h for each notification. Per message, outermost
// first:
//
//   - poison: a notification that still fails after the retries, or whose
//     handler panicked or returned a Permanent error, is published on
//     PoisonTopic of pub with the error in metadata, logged at error level,
//     and acked;
//   - dedupe: see RouterOptions.DedupeWindow;
//   - retry: exponential backoff (RouterOptions), given up when the
//     message's context is done (router shutting down: the message is
//     nacked, not poisoned);
//   - recoverer: a panic in h becomes an error wrapping ErrHandlerPanic
//     (logged with its stack), never a crash;
//   - decode: a payload that is not a valid Notification is logged and
//     acked, never retried nor poisoned.
//
// The shards are handled concurrently, so h must be safe for concurrent
// use; one txid's notifications are handled one at a time, in order. Start it with Run(ctx) in a goroutine and
// wait on Running(); it stops when ctx is done or Close is called.
func NewRouter(sub message.Subscriber, pub message.Publisher, h Handler, opts RouterOptions) (*message.Router, error) {
	if sub == nil || pub == nil || h == nil {
		return nil, errors.New("walletnotify router: nil subscriber, publisher or handler")
	}
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("walletnotify router: %w", err)
	}
	opts.setDefaults()
	r, err := message.NewRouter(message.RouterConfig{}, logging.Watermill(opts.Logger))
	if err != nil {
		return nil, fmt.Errorf("walletnotify router: %w", err)
	}
	c := &chain{h: h, pub: pub, opts: opts, log: opts.Logger,
		dedupe: newDedupe(opts.DedupeWindow, opts.Now)}
	for _, topic := range Topics()[:Shards] {
		handler := r.AddConsumerHandler(topic, topic, sub, c.decode)
		handler.AddMiddleware(c.poison, c.deduplicate, c.retry, c.recoverer)
	}
	return r, nil
}

// chain holds the router's middleware and its state.
type chain struct {
	h      Handler
	pub    message.Publisher
	opts   RouterOptions
	log    *slog.Logger
	dedupe *dedupe
}

// attemptsKey counts handler calls in the message context, for the poison
// metadata.
type attemptsKey struct{}

type attempts struct {
	mu sync.Mutex
	n  int
}

func (a *attempts) inc() {
	a.mu.Lock()
	a.n++
	a.mu.Unlock()
}

func (a *attempts) get() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// decodeNotification parses a message payload; an error means malformed.
func decodeNotification(payload []byte) (Notification, error) {
	var n Notification
	if err := json.Unmarshal(payload, &n); err != nil {
		return n, fmt.Errorf("decode notification: %w", err)
	}
	txid, err := ParseTxID(n.TxID)
	if err != nil {
		return n, fmt.Errorf("decode notification: %w", err)
	}
	n.TxID = txid
	if n.Coin = strings.TrimSpace(n.Coin); n.Coin == "" {
		return n, fmt.Errorf("decode notification %s: %w: empty", txid, ErrInvalidCoin)
	}
	return n, nil
}

// decode is the handler edge: malformed payloads are dropped here.
func (c *chain) decode(msg *message.Message) error {
	n, err := decodeNotification(msg.Payload)
	if err != nil {
		c.log.Warn("walletnotify malformed message dropped", "message_uuid", msg.UUID,
			"source", msg.Metadata.Get(MetadataSource), "payload", truncate(string(msg.Payload), 200), "error", err)
		return nil
	}
	if a, ok := msg.Context().Value(attemptsKey{}).(*attempts); ok {
		a.inc()
	}
	return c.h(bus.Context(msg), n)
}

func (c *chain) recoverer(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) (out []*message.Message, err error) {
		defer func() {
			if v := recover(); v != nil {
				c.log.Error("walletnotify handler panicked", "message_uuid", msg.UUID,
					"coin", msg.Metadata.Get(MetadataCoin), "txid", msg.Metadata.Get(MetadataTxID),
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				out, err = nil, fmt.Errorf("%w: %v", ErrHandlerPanic, v)
			}
		}()
		return next(msg)
	}
}

// retryable tells whether err may go away by itself.
func retryable(err error) bool {
	var p permanentError
	return !errors.Is(err, ErrHandlerPanic) && !errors.As(err, &p)
}

func (c *chain) retry(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		ctx := msg.Context()
		wait := c.opts.InitialInterval
		for retry := 0; ; retry++ {
			out, err := next(msg)
			if err == nil || !retryable(err) || retry >= c.opts.MaxRetries || ctx.Err() != nil {
				return out, err
			}
			// ±20 % jitter, so that notifications failing together do not
			// all hit the node again at the same instant.
			d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
			c.log.Warn("walletnotify handler failed, retrying", "message_uuid", msg.UUID,
				"coin", msg.Metadata.Get(MetadataCoin), "txid", msg.Metadata.Get(MetadataTxID),
				"retry", retry+1, "max_retries", c.opts.MaxRetries, "wait", d, "error", err)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return out, fmt.Errorf("%w (retry abandoned: %w)", err, ctx.Err())
			case <-t.C:
			}
			wait = min(2*wait, c.opts.MaxInterval)
		}
	}
}

func (c *chain) deduplicate(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		n, err := decodeNotification(msg.Payload)
		if err != nil {
			return next(msg) // the decode step drops it
		}
		key := n.Coin + "/" + n.TxID
		started, ok := c.dedupe.begin(key)
		if !ok {
			c.log.Debug("walletnotify duplicate skipped", "message_uuid", msg.UUID, "coin", n.Coin, "txid", n.TxID)
			return nil, nil
		}
		out, err := next(msg)
		if err != nil {
			c.dedupe.forget(key, started)
		}
		return out, err
	}
}

func (c *chain) poison(next message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		a := &attempts{}
		msg.SetContext(context.WithValue(msg.Context(), attemptsKey{}, a))
		out, err := next(msg)
		if err == nil {
			return out, nil
		}
		if msg.Context().Err() != nil {
			// Shutting down: not the notification's fault. Nack it.
			return out, err
		}
		coin, txid := msg.Metadata.Get(MetadataCoin), msg.Metadata.Get(MetadataTxID)
		if n, derr := decodeNotification(msg.Payload); derr == nil {
			coin, txid = n.Coin, n.TxID
		}
		p := message.NewMessage(msg.UUID, msg.Payload)
		for k, v := range msg.Metadata {
			p.Metadata.Set(k, v)
		}
		p.Metadata.Set(MetadataPoisonReason, err.Error())
		p.Metadata.Set(MetadataAttempts, fmt.Sprint(a.get()))
		if perr := c.pub.Publish(PoisonTopic, p); perr != nil {
			c.log.Error("walletnotify poison publish failed", "message_uuid", msg.UUID,
				"coin", coin, "txid", txid, "error", err, "publish_error", perr)
			return out, errors.Join(err, fmt.Errorf("walletnotify publish %s: %w", PoisonTopic, perr))
		}
		c.log.Error("walletnotify notification poisoned", "message_uuid", msg.UUID, "coin", coin,
			"txid", txid, "attempts", a.get(), "topic", PoisonTopic, "error", err)
		return out, nil
	}
}

// dedupe remembers, per coin and txid, when the handler was last called,
// for window; the entry is dropped when that call fails so that a new
// notification is handled at once.
type dedupe struct {
	window time.Duration // <= 0: off
	now    func() time.Time

	mu        sync.Mutex
	seen      map[string]time.Time
	lastSweep time.Time
}

func newDedupe(window time.Duration, now func() time.Time) *dedupe {
	return &dedupe{window: window, now: now, seen: make(map[string]time.Time)}
}

// begin reports whether key may be handled now, and if so records it with
// the returned time.
func (d *dedupe) begin(key string) (time.Time, bool) {
	now := d.now()
	if d.window <= 0 {
		return now, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.lastSweep) >= d.window {
		for k, t := range d.seen {
			if now.Sub(t) >= d.window {
				delete(d.seen, k)
			}
		}
		d.lastSweep = now
	}
	if t, ok := d.seen[key]; ok && now.Sub(t) < d.window && !now.Before(t) {
		return t, false
	}
	d.seen[key] = now
	return now, true
}

// forget drops key if it was recorded at started.
func (d *dedupe) forget(key string, started time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.seen[key]; ok && t.Equal(started) {
		delete(d.seen, key)
	}
}

// Forward parses raw, a line or message a source read, with parse and
// hands the notification to sink, logging what became of it: a malformed
// one is logged (clipped to 120 bytes) and dropped, a sink failure logged
// (the source has no sender to tell). Sources that read lines or messages
// use it.
func Forward(ctx context.Context, log *slog.Logger, sink Sink, raw string, parse func(string) (Notification, error)) {
	n, err := parse(raw)
	if err != nil {
		log.Warn("walletnotify malformed txid dropped", "raw", truncate(strings.TrimSpace(raw), 120), "error", err)
		return
	}
	if err := sink(ctx, n); err != nil {
		log.Error("walletnotify sink failed", "coin", n.Coin, "txid", n.TxID, "error", err)
		return
	}
	log.Info("walletnotify received", "coin", n.Coin, "txid", n.TxID)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
