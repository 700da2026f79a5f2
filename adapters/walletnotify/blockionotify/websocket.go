package blockionotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// DefaultWebsocketURL is block.io's notification server.
const DefaultWebsocketURL = "wss://n.block.io/"

// Defaults of WebsocketConfig.
const (
	DefaultReadLimit    = 64 << 10
	DefaultIdleTimeout  = 2 * time.Minute
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
	DefaultPollInterval = 30 * time.Second
	DefaultDialTimeout  = 15 * time.Second
)

const writeTimeout = 10 * time.Second

// WebsocketConfig configures a Websocket.
type WebsocketConfig struct {
	// URL of block.io's notification server (default
	// DefaultWebsocketURL): wss, or ws to a loopback address (tests).
	URL string `yaml:"url"`
	// Coin is the coin code the notifications carry, e.g. BTC.
	Coin string `yaml:"coin"`
	// Network is block.io's network code (default: Coin), e.g. BTCTEST.
	Network string `yaml:"network"`
	// APIKey, when set, subscribes to the whole account ({"type":
	// "account"}) instead of to each address.
	APIKey Secret `yaml:"api_key"`
	// ReadLimit bounds a message in bytes (default DefaultReadLimit); a
	// longer one ends the connection.
	ReadLimit int64 `yaml:"read_limit"`
	// IdleTimeout: a connection that brings nothing for this long (block.io
	// pings) is replaced (default DefaultIdleTimeout).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MinBackoff and MaxBackoff bound the wait before reconnecting
	// (defaults 1 s and 1 min): it doubles after each connection that
	// brought nothing, with ±20 % jitter, and starts over after one that
	// did.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// PollInterval is how often the AddressSource is asked (default 30 s).
	PollInterval time.Duration `yaml:"poll_interval"`
	// DialTimeout bounds a connection attempt (default 15 s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

func (c *WebsocketConfig) setDefaults() {
	c.Coin = strings.TrimSpace(c.Coin)
	if c.URL == "" {
		c.URL = DefaultWebsocketURL
	}
	if c.Network == "" {
		c.Network = c.Coin
	}
	c.Network = strings.ToUpper(strings.TrimSpace(c.Network))
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.IdleTimeout, DefaultIdleTimeout}, {&c.MinBackoff, DefaultMinBackoff}, {&c.MaxBackoff, DefaultMaxBackoff}, {&c.PollInterval, DefaultPollInterval}, {&c.DialTimeout, DefaultDialTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
}

// Validate sets the defaults and reports every problem at once (each
// wrapping ErrInvalidConfig).
func (c *WebsocketConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: websocket "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Coin == "" {
		bad("coin is required")
	}
	if u, err := url.Parse(c.URL); err != nil || u.Host == "" {
		bad("url %q is not an absolute URL", c.URL)
	} else if u.User != nil {
		bad("url must not carry user info")
	} else if u.Scheme != "wss" && (u.Scheme != "ws" || !isLoopback(u.Hostname())) {
		bad("url must be wss (ws only to a loopback address)")
	}
	if c.ReadLimit < 1024 {
		bad("read_limit %d is below 1024", c.ReadLimit)
	}
	if c.IdleTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.PollInterval < 0 || c.DialTimeout < 0 {
		bad("durations must not be negative")
	}
	if c.MaxBackoff < c.MinBackoff {
		bad("max_backoff %s is below min_backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// AddressSource returns the addresses to subscribe to (all of the coin's
// wallet addresses). Websocket polls it every PollInterval.
type AddressSource func(ctx context.Context) ([]string, error)

// Websocket is the block.io websocket source. Run it once; SetAddresses may
// be called at any time, from any goroutine.
type Websocket struct {
	cfg     WebsocketConfig
	sink    walletnotify.Sink
	source  AddressSource
	log     *slog.Logger
	changed chan struct{} // a signal: the addresses changed

	mu    sync.Mutex
	addrs []string // sorted, unique
}

// NewWebsocket returns a source for cfg (validated) that passes
// notifications to sink, subscribing to the addresses of source (nil:
// only those given to SetAddresses) unless cfg.APIKey subscribes to the
// account. logger may be nil. It does no I/O.
func NewWebsocket(cfg WebsocketConfig, sink walletnotify.Sink, source AddressSource, logger *slog.Logger) (*Websocket, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: websocket needs a sink", ErrInvalidConfig)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Websocket{
		cfg:     cfg,
		sink:    sink,
		source:  source,
		log:     logger.With("source", SourceWebsocket, "coin", cfg.Coin),
		changed: make(chan struct{}, 1),
	}, nil
}

// SetAddresses replaces the addresses to subscribe to. Addresses not yet
// subscribed on the current connection are subscribed at once; block.io
// has no unsubscribe, so a removed address stays subscribed until the next
// connection (its notifications are harmless).
func (w *Websocket) SetAddresses(addrs []string) {
	var clean []string
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			clean = append(clean, a)
		}
	}
	slices.Sort(clean)
	clean = slices.Compact(clean)
	w.mu.Lock()
	same := slices.Equal(clean, w.addrs)
	w.addrs = clean
	w.mu.Unlock()
	if !same {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *Websocket) addresses() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.addrs
}

// Run connects and passes notifications on until ctx is done (it then
// returns nil), reconnecting whenever the connection fails.
func (w *Websocket) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	if w.source != nil {
		g.Go(func() error { return w.poll(gctx) })
	}
	g.Go(func() error { return w.connect(gctx) })
	err := g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// poll asks the address source now and every PollInterval.
func (w *Websocket) poll(ctx context.Context) error {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		addrs, err := w.source(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			w.log.Warn("blockio websocket address source failed", "err", err)
		case err == nil:
			w.SetAddresses(addrs)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// connect runs sessions one after the other, with backoff.
func (w *Websocket) connect(ctx context.Context) error {
	backoff := w.cfg.MinBackoff
	for {
		brought, err := w.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if brought {
			backoff = w.cfg.MinBackoff
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		w.log.Warn("blockio websocket lost", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// session is one connection: subscribe, then read until it fails. It
// reports whether the connection brought any message.
func (w *Websocket) session(ctx context.Context) (bool, error) {
	dctx, cancel := context.WithTimeout(ctx, w.cfg.DialTimeout)
	conn, _, err := websocket.Dial(dctx, w.cfg.URL, &websocket.DialOptions{
		HTTPHeader: http.Header{"User-Agent": {"coinledger-blockionotify/1"}},
	})
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(w.cfg.ReadLimit)

	subscribed := map[string]bool{}
	if err := w.subscribe(ctx, conn, subscribed); err != nil {
		return false, err
	}
	w.log.Info("blockio websocket connected", "url", w.cfg.URL, "network", w.cfg.Network, "subscriptions", len(subscribed))

	var brought atomic.Bool
	msgs := make(chan []byte)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for {
			rctx, cancel := context.WithTimeout(gctx, w.cfg.IdleTimeout)
			_, b, err := conn.Read(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("read: %w", err)
			}
			brought.Store(true)
			select {
			case msgs <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return gctx.Err()
			case <-w.changed:
				if err := w.subscribe(gctx, conn, subscribed); err != nil {
					return err
				}
			case b := <-msgs:
				w.handle(gctx, b)
			}
		}
	})
	err = g.Wait()
	return brought.Load(), err
}

// subscribe sends the subscriptions not sent on this connection yet: the
// account's when there is an API key, else one per address.
func (w *Websocket) subscribe(ctx context.Context, conn *websocket.Conn, done map[string]bool) error {
	send := func(id string, msg map[string]string) error {
		if done[id] {
			return nil
		}
		b, _ := json.Marshal(msg)
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		done[id] = true
		return nil
	}
	if key := w.cfg.APIKey.Reveal(); key != "" {
		return send("\x00account", map[string]string{"type": "account", "api_key": key})
	}
	for _, a := range w.addresses() {
		if err := send(a, map[string]string{"type": "address", "network": w.cfg.Network, "address": a}); err != nil {
			return err
		}
	}
	return nil
}

// handle passes a transaction notification on; everything else is
// dropped (refusals and unreadable messages with a warning).
func (w *Websocket) handle(ctx context.Context, b []byte) {
	n, err := decode(b)
	switch {
	case err != nil:
		w.log.Warn("blockio websocket message dropped", "err", err)
		return
	case n.failure != "":
		w.log.Warn("blockio websocket request refused", "message", w.redact(n.failure))
		return
	case n.kind != kindTx:
		return
	case !networkOK(n.network, w.cfg.Network):
		w.log.Warn("blockio websocket notification of another network dropped", "network", n.network, "txid", n.txid)
		return
	}
	if err := w.sink(ctx, walletnotify.Notification{Coin: w.cfg.Coin, TxID: n.txid, Source: SourceWebsocket}); err != nil && ctx.Err() == nil {
		w.log.Warn("blockio websocket notification not taken", "txid", n.txid, "err", err)
	}
}

func (w *Websocket) redact(s string) string {
	if k := w.cfg.APIKey.Reveal(); k != "" {
		s = strings.ReplaceAll(s, k, "[redacted]")
	}
	return s
}
