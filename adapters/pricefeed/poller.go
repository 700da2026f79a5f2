package pricefeed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/internal/backoff"
)

// Poller defaults and limits.
const (
	DefaultInterval   = 30 * time.Second
	MinInterval       = time.Second
	DefaultTimeout    = 10 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	// maxBody bounds the response bodies a Poller reads.
	maxBody = 1 << 20
)

// PollerConfig configures a Poller: a preset for a known API, or a generic
// definition (URL, PricePath, TimePath) for any JSON API. Zero durations
// take the defaults. The yaml tags let the service config embed it.
type PollerConfig struct {
	// Name is the source name of the ticks (default: the preset's name;
	// required for a generic definition): 1 to 64 bytes of printable
	// ASCII without spaces.
	Name string `yaml:"name"`
	// Pairs are the markets to poll, "BTC/USD" or "BTC-USD"; at least one.
	Pairs []string `yaml:"pairs"`
	// Interval between polls (default 30s, at least 1s).
	Interval time.Duration `yaml:"interval"`
	// Timeout of one HTTP request (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxBackoff caps the wait after polls in which every pair failed: it
	// doubles from Interval up to MaxBackoff (default the larger of 5m and
	// Interval; not below Interval).
	MaxBackoff time.Duration `yaml:"max_backoff"`

	// Preset is coingecko, binance or coinbase; empty for a generic
	// definition.
	Preset string `yaml:"preset"`
	// BaseURL replaces a preset's host (default https://api.coingecko.com,
	// https://api.binance.com, https://api.coinbase.com); it may end in a
	// path prefix.
	BaseURL URL `yaml:"base_url"`
	// CoinGeckoIDs maps base symbols to CoinGecko coin ids, over the
	// defaults BTC: bitcoin, ETH: ethereum, LTC: litecoin, DOGE: dogecoin.
	CoinGeckoIDs map[string]string `yaml:"coingecko_ids"`
	// BinanceQuotes maps quote symbols to the symbol Binance quotes in,
	// over the default USD: USDT (BTC/USD is read from BTCUSDT).
	BinanceQuotes map[string]string `yaml:"binance_quotes"`

	// URL is the generic definition's URL template: {base} and {quote}
	// (and {base_lower}, {quote_lower}) are replaced by the pair's symbols.
	URL URL `yaml:"url"`
	// PricePath is the JSON path of the price in the response, a dot path
	// with array indexes ("data.rates.0.price"). The price may be a JSON
	// number or a decimal string.
	PricePath string `yaml:"price_path"`
	// TimePath is the optional JSON path of the price's time; without it
	// ticks carry the time of the poll.
	TimePath string `yaml:"time_path"`
	// TimeFormat is how the time is written: auto (default), unix,
	// unix_ms or rfc3339 (see TimeAuto).
	TimeFormat string `yaml:"time_format"`

	// Headers are sent with every request (API keys; never printed).
	Headers map[string]Secret `yaml:"headers"`

	// Client sends the requests (default http.DefaultClient).
	Client *http.Client `yaml:"-"`
	// Now gives tick times when the API gives none (default time.Now).
	Now func() time.Time `yaml:"-"`
	// Logger receives failures (default: discarded).
	Logger *slog.Logger `yaml:"-"`
}

// Validate reports every problem of c at once, each wrapping
// ErrInvalidConfig.
func (c PollerConfig) Validate() error {
	_, err := c.build()
	return err
}

// Poller is a Source that polls an HTTP price API. Make it with NewPoller.
type Poller struct {
	name       string
	interval   time.Duration
	timeout    time.Duration
	maxBackoff time.Duration
	requests   []request
	header     http.Header
	client     *http.Client
	now        func() time.Time
	log        *slog.Logger
}

// request is one HTTP GET of a poll and the pairs read from its response.
type request struct {
	url   string
	pairs []prices.Pair
	// read returns pair's price from the response body, and its time, or
	// the zero time when the body gives none.
	read func(body []byte, pair prices.Pair) (prices.Price, time.Time, error)
}

// NewPoller validates cfg and returns its Poller. It does no I/O.
func NewPoller(cfg PollerConfig) (*Poller, error) { return cfg.build() }

func (c PollerConfig) build() (*Poller, error) {
	var errs []error
	name := c.Name
	if name == "" {
		name = c.Preset
	}
	if !prices.ValidSource(name) {
		errs = append(errs, fmt.Errorf("name: %q: want 1 to %d bytes of printable ASCII without spaces", clip(name), prices.MaxSourceLen))
	}
	pairs, perrs := parsePairs(c.Pairs)
	errs = append(errs, perrs...)
	p := &Poller{
		name:       name,
		interval:   c.Interval,
		timeout:    c.Timeout,
		maxBackoff: c.MaxBackoff,
		client:     c.Client,
		now:        c.Now,
		log:        orDiscard(c.Logger).With("source", name),
	}
	if p.interval == 0 {
		p.interval = DefaultInterval
	}
	if p.interval < MinInterval {
		errs = append(errs, fmt.Errorf("interval: %s is below the minimum %s", p.interval, MinInterval))
	}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s is negative", p.timeout))
	}
	if p.maxBackoff == 0 {
		p.maxBackoff = max(DefaultMaxBackoff, p.interval)
	}
	if p.maxBackoff < p.interval {
		errs = append(errs, fmt.Errorf("max_backoff: %s is below the interval %s", p.maxBackoff, p.interval))
	}
	if p.client == nil {
		p.client = http.DefaultClient
	}
	if p.now == nil {
		p.now = time.Now
	}
	var herrs []error
	p.header, herrs = buildHeaders(c.Headers)
	errs = append(errs, herrs...)
	if !validTimeFormat(c.TimeFormat) {
		errs = append(errs, fmt.Errorf("time_format: %q: want auto, unix, unix_ms or rfc3339", clip(c.TimeFormat)))
	}

	var rerrs []error
	switch c.Preset {
	case "":
		p.requests, rerrs = c.generic(pairs)
	case "coingecko", "binance", "coinbase":
		p.requests, rerrs = c.preset(pairs)
	default:
		rerrs = []error{fmt.Errorf("preset: unknown preset %q (want coingecko, binance, coinbase, or none with url and price_path)", clip(c.Preset))}
	}
	errs = append(errs, rerrs...)
	if err := configError("poller", name, errs); err != nil {
		return nil, err
	}
	return p, nil
}

// Name returns the source name the ticks carry.
func (p *Poller) Name() string { return p.name }

// Run polls every pair right away and then every Interval until ctx is done,
// handing each price to sink, and returns ctx.Err(). Per-pair failures are
// logged and do not stop the other pairs. After a poll in which no pair
// could be read, the wait doubles (Interval, 2×Interval, … up to
// MaxBackoff) until a poll reads a price again.
func (p *Poller) Run(ctx context.Context, sink Sink) error {
	failures := 0
	for {
		start := time.Now()
		read, errs := p.poll(ctx, sink)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, e := range errs {
			p.log.WarnContext(ctx, "price poll failed", "pair", e.pairs, "err", e.err)
		}
		if read > 0 {
			failures = 0
		} else {
			failures++
		}
		wait := backoff.Exp(p.interval, p.maxBackoff, failures)
		if failures > 0 {
			p.log.WarnContext(ctx, "price poll read no price, backing off", "failures", failures, "retry_in", wait)
		}
		if !backoff.Sleep(ctx, wait-time.Since(start)) {
			return ctx.Err()
		}
	}
}

// Poll fetches every pair once and hands each price read to sink. It
// returns the failures, one per pair (or per request, for a preset that
// reads several pairs in one), joined; nil when every pair reached sink.
func (p *Poller) Poll(ctx context.Context, sink Sink) error {
	_, errs := p.poll(ctx, sink)
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = fmt.Errorf("pricefeed %s poll %s: %w", p.name, e.pairs, e.err)
	}
	return errors.Join(out...)
}

// pollError is a failure of a poll for some pairs.
type pollError struct {
	pairs string
	err   error
}

// poll runs every request and returns the number of prices read (whether
// or not sink took them) and the failures.
func (p *Poller) poll(ctx context.Context, sink Sink) (int, []pollError) {
	now := p.now().UTC().Round(0)
	var errs []pollError
	read := 0
	for _, r := range p.requests {
		body, err := p.get(ctx, r.url)
		if err != nil {
			if ctx.Err() != nil {
				return read, errs
			}
			errs = append(errs, pollError{pairs: pairList(r.pairs), err: err})
			continue
		}
		for _, pair := range r.pairs {
			price, at, err := r.read(body, pair)
			if err != nil {
				errs = append(errs, pollError{pairs: pair.String(), err: err})
				continue
			}
			read++
			if at.IsZero() {
				at = now
			}
			t := prices.PriceTicked{Pair: pair, Price: price, Source: p.name, At: at}
			if err := sink(ctx, t); err != nil {
				if ctx.Err() != nil {
					return read, errs
				}
				errs = append(errs, pollError{pairs: pair.String(), err: fmt.Errorf("sink: %w", err)})
			}
		}
	}
	return read, errs
}

// get fetches u and returns its body. Errors wrap ErrHTTPStatus for a
// status other than 2xx and ErrMalformed for a body over 1 MiB.
func (p *Poller) get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	shown := redactURL(u)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", shown, err)
	}
	req.Header = p.header.Clone()
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		// A *url.Error repeats the whole URL, query (API keys) included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("get %s: %w", shown, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("get %s: read body: %w", shown, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("get %s: %w %s: %s", shown, ErrHTTPStatus, resp.Status, snippet(body))
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("get %s: %w: body larger than %d bytes", shown, ErrMalformed, maxBody)
	}
	return body, nil
}

func pairList(ps []prices.Pair) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
