// Package redisnotify takes walletnotify txids from a Redis pubsub channel,
// for a node on another machine that can reach Redis:
//
//	walletnotify=redis-cli -h redis.internal publish bitcoind_walletnotify_pubsub %s
//
// A message is a txid, or JSON {"txid":"…","coin":"LTC"} when one channel
// serves several coins. Redis pubsub keeps nothing: a notification
// published while this source is not subscribed is lost (the ledger's own
// rescans are the safety net). Plain Redis connections are not encrypted:
// use rediss:// or a tunnel across networks.
package redisnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// DefaultChannel is the channel when Config.Channel is empty.
const DefaultChannel = "bitcoind_walletnotify_pubsub"

const (
	maxPayload   = 1024
	minReconnect = 100 * time.Millisecond
	maxReconnect = 5 * time.Second
)

// Secret is a credential (package secret): never printed, logged or marshalled.
type Secret = secret.String

// Config configures a Source. It can be embedded in the service's YAML
// configuration.
type Config struct {
	// Addr is Redis's host:port (default 127.0.0.1:6379).
	Addr string `yaml:"addr"`
	// URL (redis://user:password@host:port/db or rediss://…) replaces
	// Addr, Username, Password and DB; set one or the other.
	URL      Secret `yaml:"url"`
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	DB       int    `yaml:"db"`
	// Channel to subscribe to (default bitcoind_walletnotify_pubsub).
	Channel string `yaml:"channel"`
	// Coin of plain txids and of JSON messages without a coin. Empty: only
	// JSON messages that name their coin are taken.
	Coin string `yaml:"coin"`
	// PingInterval: after this long without traffic the connection is
	// pinged, and after twice this long without an answer it is replaced
	// (default 30 s).
	PingInterval time.Duration `yaml:"ping_interval"`
	// Logger (nil: discarded). Nothing secret is logged.
	Logger *slog.Logger `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.Addr == "" && c.URL == "" {
		c.Addr = "127.0.0.1:6379"
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem at once. It never quotes the URL.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if c.Addr != "" || c.Username != "" || c.Password != "" || c.DB != 0 {
			errs = append(errs, errors.New("url: set either url or addr/username/password/db"))
		}
		if _, err := c.options(); err != nil {
			errs = append(errs, err)
		}
	} else if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr: %q is not host:port", c.Addr))
		}
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("db: %d is negative", c.DB))
	}
	if c.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("ping_interval: %s is negative", c.PingInterval))
	}
	return errors.Join(errs...)
}

// options builds the go-redis options; errors never quote the URL.
func (c Config) options() (*redis.Options, error) {
	if c.URL == "" {
		return &redis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password.Reveal(), DB: c.DB}, nil
	}
	opts, err := redis.ParseURL(c.URL.Reveal())
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error quotes the URL, password and all
		}
		return nil, fmt.Errorf("url: %w", err)
	}
	return opts, nil
}

// Source is a Redis pubsub walletnotify source.
type Source struct {
	cfg  Config
	sink walletnotify.Sink
	log  *slog.Logger
}

// New returns a source for cfg that hands notifications to sink. It does
// no I/O; see Run.
func New(cfg Config, sink walletnotify.Sink) *Source {
	cfg.setDefaults()
	return &Source{cfg: cfg, sink: sink, log: cfg.Logger.With("source", "redis", "channel", cfg.Channel)}
}

// Run subscribes to the channel and hands each message to the sink until
// ctx is done. A lost connection (Redis restarting, say) is logged once and
// retried with backoff (0.1 s doubling to 5 s) for as long as it takes; the
// subscription is renewed on the new connection and that is logged too.
// Malformed messages are logged and dropped; a sink error is logged and the
// message lost. Messages are handled one at a time, in order.
//
// Run returns nil once ctx is done, and an error only for an invalid
// configuration: an unreachable Redis (or a wrong password) is retried, not
// returned.
func (s *Source) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("redisnotify config: %w", err)
	}
	opts, err := s.cfg.options()
	if err != nil {
		return fmt.Errorf("redisnotify config: %w", err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	log := s.log.With("addr", opts.Addr, "db", opts.DB)

	// The PubSub is closed when ctx is done, which ends a pending Receive.
	var mu sync.Mutex
	var ps *redis.PubSub
	subscribe := func() *redis.PubSub {
		mu.Lock()
		defer mu.Unlock()
		if ps != nil {
			_ = ps.Close()
		}
		ps = rdb.Subscribe(ctx, s.cfg.Channel)
		if ctx.Err() != nil {
			_ = ps.Close()
		}
		return ps
	}
	closePS := func() {
		mu.Lock()
		defer mu.Unlock()
		_ = ps.Close()
	}
	cur := subscribe()
	stop := context.AfterFunc(ctx, closePS)
	defer func() {
		if stop() {
			closePS()
		}
	}()

	var (
		up       bool      // subscription confirmed on the current connection
		reported bool      // the outage was logged
		since    time.Time // start of the outage
		wait     = minReconnect
		idle     int // receive timeouts in a row
	)
	fail := func(err error) {
		if up || !reported {
			log.Error("walletnotify redis unavailable", "error", err)
			since, reported = time.Now(), true
		} else {
			log.Debug("walletnotify redis still unavailable", "error", err)
		}
		up = false
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		wait = min(2*wait, maxReconnect)
	}
	for {
		msg, err := cur.ReceiveTimeout(ctx, s.cfg.PingInterval)
		if ctx.Err() != nil {
			log.Info("walletnotify redis stopped")
			return nil
		}
		if err != nil {
			var nerr net.Error
			if up && errors.As(err, &nerr) && nerr.Timeout() {
				idle++
				if idle == 1 {
					if err := cur.Ping(ctx); err != nil {
						fail(err)
					}
					continue
				}
				log.Warn("walletnotify redis unresponsive, resubscribing", "silent_for", time.Duration(idle)*s.cfg.PingInterval)
				idle, up, reported, since = 0, false, true, time.Now()
				cur = subscribe()
				continue
			}
			fail(err)
			continue
		}
		idle = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" || up {
				continue
			}
			if reported {
				log.Info("walletnotify redis resubscribed", "down_for", time.Since(since).Round(time.Millisecond))
			} else {
				log.Info("walletnotify redis subscribed", "coin", s.cfg.Coin)
			}
			up, reported, wait = true, false, minReconnect
		case *redis.Message:
			s.notify(ctx, log, m.Payload)
		}
	}
}

// notify hands one message to the sink.
func (s *Source) notify(ctx context.Context, log *slog.Logger, payload string) {
	walletnotify.Forward(ctx, log, s.sink, payload, s.parse)
}

// parse reads a message: a txid, or JSON {"txid":…,"coin":…}.
func (s *Source) parse(payload string) (walletnotify.Notification, error) {
	n := walletnotify.Notification{Coin: s.cfg.Coin, Source: "redis"}
	if len(payload) > maxPayload {
		return n, fmt.Errorf("%w: message of %d bytes", walletnotify.ErrInvalidTxID, len(payload))
	}
	raw := payload
	if t := strings.TrimSpace(payload); strings.HasPrefix(t, "{") {
		var m struct {
			TxID string `json:"txid"`
			Coin string `json:"coin"`
		}
		if err := json.Unmarshal([]byte(t), &m); err != nil {
			return n, fmt.Errorf("%w: %w", walletnotify.ErrInvalidTxID, err)
		}
		raw = m.TxID
		if c := strings.TrimSpace(m.Coin); c != "" {
			n.Coin = c
		}
	}
	txid, err := walletnotify.ParseTxID(raw)
	if err != nil {
		return n, err
	}
	n.TxID = txid
	if n.Coin == "" {
		return n, fmt.Errorf("%w: no coin in the message and none configured", walletnotify.ErrInvalidCoin)
	}
	return n, nil
}
