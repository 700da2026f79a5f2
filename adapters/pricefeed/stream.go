package pricefeed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/internal/backoff"
)

// Stream defaults.
const (
	DefaultReadLimit        = 256 << 10
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultDialTimeout      = 10 * time.Second
	DefaultStreamMinBackoff = time.Second
	DefaultStreamMaxBackoff = time.Minute
	writeTimeout            = 10 * time.Second
)

// StreamConfig configures a Stream: a websocket URL, the messages that
// subscribe to the prices, and where a price message keeps its symbol,
// price and time. Zero values take the defaults. The yaml tags let the
// service config embed it.
type StreamConfig struct {
	// Name is the source name of the ticks: 1 to 64 bytes of printable
	// ASCII without spaces.
	Name string `yaml:"name"`
	// URL is the ws:// or wss:// address of the stream.
	URL URL `yaml:"url"`
	// Subscribe are text messages sent, in order, after every connect
	// (e.g. {"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}).
	Subscribe []string `yaml:"subscribe"`
	// Headers are sent with the handshake (API keys; never printed).
	Headers map[string]Secret `yaml:"headers"`

	// Symbols maps the symbols the stream writes (compared without regard
	// to case) to pairs: BTCUSDT: BTC/USD. Messages for other symbols are
	// ignored.
	Symbols map[string]string `yaml:"symbols"`
	// SymbolPath is the JSON path of the symbol in a message ("s", or
	// "data.s" for a combined stream). Messages without it (heartbeats,
	// subscription answers) are ignored.
	SymbolPath string `yaml:"symbol_path"`
	// PricePath is the JSON path of the price, a number or decimal string.
	PricePath string `yaml:"price_path"`
	// TimePath is the optional JSON path of the price's time; without it
	// ticks carry the time the message arrived.
	TimePath string `yaml:"time_path"`
	// TimeFormat is how the time is written: auto (default), unix,
	// unix_ms or rfc3339 (see TimeAuto).
	TimeFormat string `yaml:"time_format"`

	// ReadLimit is the largest message read, in bytes (default 256 KiB); a
	// larger one drops the connection.
	ReadLimit int64 `yaml:"read_limit"`
	// IdleTimeout drops a connection that brought no message for this long
	// (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// DialTimeout bounds the connect and handshake (default 10s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MinBackoff and MaxBackoff bound the wait before a reconnect, which
	// doubles from MinBackoff (default 1s) to MaxBackoff (default the
	// larger of 1m and MinBackoff) while connections bring no price.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`

	// Client makes the handshake (default http.DefaultClient).
	Client *http.Client `yaml:"-"`
	// Now gives tick times without a TimePath (default time.Now).
	Now func() time.Time `yaml:"-"`
	// Logger receives failures (default: discarded).
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports every problem of c at once, each wrapping
// ErrInvalidConfig.
func (c StreamConfig) Validate() error {
	_, err := c.build()
	return err
}

// Stream is a Source that follows a websocket price stream. Make it with
// NewStream.
type Stream struct {
	name        string
	url         string
	subscribe   []string
	header      http.Header
	symbols     map[string]prices.Pair // upper-case symbol → pair
	symbolPath  path
	pricePath   path
	timePath    path
	timeFormat  string
	readLimit   int64
	idleTimeout time.Duration
	dialTimeout time.Duration
	minBackoff  time.Duration
	maxBackoff  time.Duration
	client      *http.Client
	now         func() time.Time
	log         *slog.Logger
}

// NewStream validates cfg and returns its Stream. It does no I/O.
func NewStream(cfg StreamConfig) (*Stream, error) { return cfg.build() }

func (c StreamConfig) build() (*Stream, error) {
	var errs []error
	if !prices.ValidSource(c.Name) {
		errs = append(errs, fmt.Errorf("name: %q: want 1 to %d bytes of printable ASCII without spaces", clip(c.Name), prices.MaxSourceLen))
	}
	s := &Stream{
		name:        c.Name,
		url:         c.URL.Reveal(),
		subscribe:   c.Subscribe,
		symbols:     map[string]prices.Pair{},
		timeFormat:  c.TimeFormat,
		readLimit:   c.ReadLimit,
		idleTimeout: c.IdleTimeout,
		dialTimeout: c.DialTimeout,
		minBackoff:  c.MinBackoff,
		maxBackoff:  c.MaxBackoff,
		client:      c.Client,
		now:         c.Now,
		log:         orDiscard(c.Logger).With("source", c.Name),
	}
	if c.URL == "" {
		errs = append(errs, errors.New("url: required"))
	} else if err := checkURL(c.URL.Reveal(), "ws", "wss"); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	}
	for i, m := range c.Subscribe {
		if strings.TrimSpace(m) == "" {
			errs = append(errs, fmt.Errorf("subscribe: message %d is empty", i+1))
		}
	}
	var herrs []error
	s.header, herrs = buildHeaders(c.Headers)
	errs = append(errs, herrs...)

	if len(c.Symbols) == 0 {
		errs = append(errs, errors.New("symbols: none given (want e.g. BTCUSDT: BTC/USD)"))
	}
	for sym, pair := range c.Symbols {
		key := strings.ToUpper(sym)
		p, err := parsePair(pair)
		switch {
		case key == "":
			errs = append(errs, errors.New("symbols: empty symbol"))
		case err != nil:
			errs = append(errs, fmt.Errorf("symbols: %s: %q: want BASE/QUOTE", clip(sym), clip(pair)))
		case s.symbols[key] != prices.Pair{} && s.symbols[key] != p:
			errs = append(errs, fmt.Errorf("symbols: %s given twice (symbols are compared without regard to case)", clip(key)))
		default:
			s.symbols[key] = p
		}
	}
	for _, f := range []struct {
		name, value string
		dst         *path
		required    bool
	}{
		{"symbol_path", c.SymbolPath, &s.symbolPath, true},
		{"price_path", c.PricePath, &s.pricePath, true},
		{"time_path", c.TimePath, &s.timePath, false},
	} {
		if f.value == "" {
			if f.required {
				errs = append(errs, fmt.Errorf("%s: required", f.name))
			}
			continue
		}
		p, err := parsePath(f.value)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
		}
		*f.dst = p
	}
	if !validTimeFormat(c.TimeFormat) {
		errs = append(errs, fmt.Errorf("time_format: %q: want auto, unix, unix_ms or rfc3339", clip(c.TimeFormat)))
	}

	if s.readLimit == 0 {
		s.readLimit = DefaultReadLimit
	}
	if s.idleTimeout == 0 {
		s.idleTimeout = DefaultIdleTimeout
	}
	if s.dialTimeout == 0 {
		s.dialTimeout = DefaultDialTimeout
	}
	if s.minBackoff == 0 {
		s.minBackoff = DefaultStreamMinBackoff
	}
	if s.maxBackoff == 0 {
		s.maxBackoff = max(DefaultStreamMaxBackoff, s.minBackoff)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"read_limit", s.readLimit},
		{"idle_timeout", int64(s.idleTimeout)},
		{"dial_timeout", int64(s.dialTimeout)},
		{"min_backoff", int64(s.minBackoff)},
		{"max_backoff", int64(s.maxBackoff)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: negative", f.name))
		}
	}
	if s.maxBackoff < s.minBackoff {
		errs = append(errs, fmt.Errorf("max_backoff: %s is below min_backoff %s", s.maxBackoff, s.minBackoff))
	}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := configError("stream", c.Name, errs); err != nil {
		return nil, err
	}
	return s, nil
}

// Name returns the source name the ticks carry.
func (s *Stream) Name() string { return s.name }

// Run connects, sends the subscribe messages and hands the price of every
// message for a known symbol to sink, until ctx is done; then it closes the
// connection and returns ctx.Err(). Messages that are not JSON or carry no
// known symbol are ignored; a message for a known symbol whose price or
// time cannot be read is logged and skipped. When the connection fails or
// the server closes it, Run reconnects and subscribes again after a wait
// that doubles from MinBackoff to MaxBackoff while connections bring no
// price.
func (s *Stream) Run(ctx context.Context, sink Sink) error {
	failures := 0
	for {
		read, err := s.session(ctx, sink)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if read {
			failures = 0
		}
		wait := backoff.Exp(s.minBackoff, s.maxBackoff, failures)
		failures++
		s.log.WarnContext(ctx, "price stream disconnected", "err", err, "retry_in", wait)
		if !backoff.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// session runs one connection until it fails or ctx is done. It reports
// whether the connection brought a price, and why it ended.
func (s *Stream) session(ctx context.Context, sink Sink) (bool, error) {
	shown := redactURL(s.url)
	dctx, cancel := context.WithTimeout(ctx, s.dialTimeout)
	conn, _, err := websocket.Dial(dctx, s.url, &websocket.DialOptions{
		HTTPClient: s.client,
		HTTPHeader: s.header.Clone(),
	})
	cancel()
	if err != nil {
		return false, fmt.Errorf("dial %s: %w", shown, err)
	}
	// CloseNow, not Close: shutting down must not wait for the server's
	// half of a close handshake.
	defer conn.CloseNow()
	conn.SetReadLimit(s.readLimit)
	for i, m := range s.subscribe {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := conn.Write(wctx, websocket.MessageText, []byte(m))
		cancel()
		if err != nil {
			return false, fmt.Errorf("%s: subscribe message %d: %w", shown, i+1, err)
		}
	}
	read := false
	for {
		rctx, cancel := context.WithTimeout(ctx, s.idleTimeout)
		_, msg, err := conn.Read(rctx)
		idle := rctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err != nil && idle:
			return read, fmt.Errorf("%s: no message for %s", shown, s.idleTimeout)
		case err != nil:
			return read, fmt.Errorf("%s: read: %w", shown, err)
		}
		t, ok, err := s.decode(msg)
		if err != nil {
			s.log.WarnContext(ctx, "price stream message rejected", "pair", t.Pair.String(), "err", err)
			continue
		}
		if !ok {
			continue
		}
		read = true
		if err := sink(ctx, t); err != nil {
			if ctx.Err() != nil {
				return read, ctx.Err()
			}
			s.log.ErrorContext(ctx, "price stream sink failed", "pair", t.Pair.String(), "err", err)
		}
	}
}

// decode reads a message. It reports ok false, with no error, for a
// message that is not a price of a known symbol; an error for one that is
// but cannot be read (the returned tick then names the pair).
func (s *Stream) decode(msg []byte) (t prices.PriceTicked, ok bool, err error) {
	raw, err := s.symbolPath.lookup(msg)
	if err != nil {
		return t, false, nil
	}
	sym, _, err := scalar(raw)
	if err != nil {
		return t, false, nil
	}
	pair, known := s.symbols[strings.ToUpper(sym)]
	if !known {
		return t, false, nil
	}
	t = prices.PriceTicked{Pair: pair, Source: s.name}
	if raw, err = s.pricePath.lookup(msg); err == nil {
		t.Price, err = decodePrice(raw)
	}
	if err != nil {
		return t, false, err
	}
	if s.timePath == nil {
		t.At = s.now().UTC().Round(0)
		return t, true, nil
	}
	if raw, err = s.timePath.lookup(msg); err == nil {
		t.At, err = decodeTime(raw, s.timeFormat)
	}
	if err != nil {
		return t, false, fmt.Errorf("time: %w", err)
	}
	return t, true, nil
}
