package pricefeed_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/pricefeed"
	"github.com/coinledger/coinledger/domain/prices"
)

var fixedNow = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func clock() time.Time { return fixedNow }

// collector is a Sink that keeps the ticks it is given.
type collector struct {
	mu    sync.Mutex
	ticks []prices.PriceTicked
	fail  error // returned instead of taking a tick, when set
	got   chan struct{}
}

func newCollector() *collector { return &collector{got: make(chan struct{}, 1000)} }

func (c *collector) sink(_ context.Context, t prices.PriceTicked) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.ticks = append(c.ticks, t)
	c.got <- struct{}{}
	return nil
}

func (c *collector) all() []prices.PriceTicked {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]prices.PriceTicked(nil), c.ticks...)
}

// wait blocks until the collector holds n ticks, failing t after 10 s.
func (c *collector) wait(t *testing.T, n int) []prices.PriceTicked {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(c.all()) < n {
		select {
		case <-c.got:
		case <-deadline:
			t.Fatalf("got %d ticks, want %d", len(c.all()), n)
		}
	}
	return c.all()
}

// byPair indexes ticks by pair.
func byPair(ts []prices.PriceTicked) map[string]prices.PriceTicked {
	m := map[string]prices.PriceTicked{}
	for _, t := range ts {
		m[t.Pair.String()] = t
	}
	return m
}

// serve starts a test server answering the request paths (with query) in
// bodies; others get 404.
func serve(t *testing.T, bodies map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.RequestURI()]
		if !ok {
			http.Error(w, `{"error":"not found: `+r.URL.RequestURI()+`"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func mustPoller(t *testing.T, cfg pricefeed.PollerConfig) *pricefeed.Poller {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = clock
	}
	p, err := pricefeed.NewPoller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func checkTick(t *testing.T, got prices.PriceTicked, source, pair, price string, at time.Time) {
	t.Helper()
	if got.Source != source || got.Pair != prices.MustPair(pair) || got.Price != prices.MustParse(price) || !got.At.Equal(at) {
		t.Errorf("tick = %s %s %s at %s, want %s %s %s at %s", got.Source, got.Pair, got.Price, got.At, source, pair, price, at)
	}
}

func TestCoinGecko(t *testing.T) {
	t.Parallel()
	// One request for every pair, as the simple/price docs describe it.
	srv := serve(t, map[string]string{
		"/api/v3/simple/price?ids=bitcoin%2Cethereum&include_last_updated_at=true&precision=full&vs_currencies=eur%2Cusd": `{
  "bitcoin": {"usd": 97123.456789012345, "eur": 9.3456789012345678E+4, "last_updated_at": 1718000000},
  "ethereum": {"usd": 3456.78901234567, "eur": 3301.1, "last_updated_at": 1718000012}
}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{
		Preset:  "coingecko",
		BaseURL: pricefeed.URL(srv.URL),
		Pairs:   []string{"BTC/USD", "eth-usd", "BTC/EUR"},
	})
	c := newCollector()
	if err := p.Poll(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	got := byPair(c.all())
	if len(got) != 3 {
		t.Fatalf("got %d ticks, want 3: %v", len(got), got)
	}
	checkTick(t, got["BTC-USD"], "coingecko", "BTC-USD", "97123.456789012345", time.Unix(1718000000, 0))
	checkTick(t, got["BTC-EUR"], "coingecko", "BTC-EUR", "93456.789012345678", time.Unix(1718000000, 0))
	checkTick(t, got["ETH-USD"], "coingecko", "ETH-USD", "3456.78901234567", time.Unix(1718000012, 0))
}

func TestCoinGeckoCustomIDAndNoTime(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{
		"/api/v3/simple/price?ids=solana&include_last_updated_at=true&precision=full&vs_currencies=usd": `{"solana":{"usd":187.12345678}}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{
		Name:         "cg-pro",
		Preset:       "coingecko",
		BaseURL:      pricefeed.URL(srv.URL + "/"),
		Pairs:        []string{"SOL/USD"},
		CoinGeckoIDs: map[string]string{"sol": "solana"},
	})
	c := newCollector()
	if err := p.Poll(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	checkTick(t, c.wait(t, 1)[0], "cg-pro", "SOL-USD", "187.12345678", fixedNow)
}

func TestBinance(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{
		"/api/v3/ticker/price?symbol=BTCUSDT": `{"symbol":"BTCUSDT","price":"97123.45678901"}`,
		"/api/v3/ticker/price?symbol=ETHBTC":  `{"symbol":"ETHBTC","price":"0.03561000"}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{Preset: "binance", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD", "ETH/BTC"}})
	c := newCollector()
	if err := p.Poll(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	got := byPair(c.all())
	checkTick(t, got["BTC-USD"], "binance", "BTC-USD", "97123.45678901", fixedNow)
	checkTick(t, got["ETH-BTC"], "binance", "ETH-BTC", "0.03561", fixedNow)
}

func TestBinanceWrongSymbol(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{
		"/api/v3/ticker/price?symbol=BTCEUR": `{"symbol":"BTCUSDT","price":"97123.45"}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{Preset: "binance", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/EUR"}})
	err := p.Poll(context.Background(), newCollector().sink)
	if !errors.Is(err, pricefeed.ErrMalformed) || !strings.Contains(err.Error(), "BTCUSDT") {
		t.Errorf("error %v, want ErrMalformed naming BTCUSDT", err)
	}
}

func TestCoinbase(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{
		"/v2/prices/BTC-USD/spot": `{"data":{"amount":"97123.456789012345","base":"BTC","currency":"USD"}}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{Preset: "coinbase", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD"}})
	c := newCollector()
	if err := p.Poll(context.Background(), c.sink); err != nil {
		t.Fatal(err)
	}
	checkTick(t, c.wait(t, 1)[0], "coinbase", "BTC-USD", "97123.456789012345", fixedNow)
}

func TestGeneric(t *testing.T) {
	t.Parallel()
	at := time.Unix(1718000000, 0).UTC()
	tests := []struct {
		name, ts, format string
		want             time.Time
	}{
		{"unix seconds", `1718000000`, "", at},
		{"unix seconds string", `"1718000000.5"`, pricefeed.TimeUnix, at.Add(500 * time.Millisecond)},
		{"unix milliseconds", `1718000000123`, "", at.Add(123 * time.Millisecond)},
		{"unix milliseconds explicit", `1718000000123`, pricefeed.TimeUnixMilli, at.Add(123 * time.Millisecond)},
		{"rfc3339", `"2024-06-10T06:13:20.25Z"`, "", at.Add(250 * time.Millisecond)},
		{"rfc3339 explicit", `"2024-06-10T08:13:20+02:00"`, pricefeed.TimeRFC3339, at},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotKey atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotKey.Store(r.Header.Get("X-Api-Key"))
				if r.URL.Path != "/v1/rates/btc" || r.URL.Query().Get("quote") != "USD" {
					http.NotFound(w, r)
					return
				}
				_, _ = w.Write([]byte(`{"data":{"rates":[
					{"venue":"a","price":"97123.456789012345","ts":` + tt.ts + `},
					{"venue":"b","price":"97000","ts":` + tt.ts + `}]}}`))
			}))
			t.Cleanup(srv.Close)
			p := mustPoller(t, pricefeed.PollerConfig{
				Name:       "rates",
				Pairs:      []string{"BTC/USD"},
				URL:        pricefeed.URL(srv.URL + "/v1/rates/{base_lower}?quote={quote}"),
				PricePath:  "data.rates.0.price",
				TimePath:   "data.rates.0.ts",
				TimeFormat: tt.format,
				Headers:    map[string]pricefeed.Secret{"X-Api-Key": "k-123"},
			})
			c := newCollector()
			if err := p.Poll(context.Background(), c.sink); err != nil {
				t.Fatal(err)
			}
			checkTick(t, c.wait(t, 1)[0], "rates", "BTC-USD", "97123.456789012345", tt.want)
			if k, _ := gotKey.Load().(string); k != "k-123" {
				t.Errorf("X-Api-Key = %q, want the configured header", k)
			}
		})
	}
}

func TestPollErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		status int
		body   string
		err    error
		inMsg  string
	}{
		{"non-2xx", http.StatusTooManyRequests, `{"status":{"error_code":429,"error_message":"You've exceeded the Rate Limit."}}`, pricefeed.ErrHTTPStatus, "429"},
		{"server error", http.StatusBadGateway, `<html>bad gateway</html>`, pricefeed.ErrHTTPStatus, "502"},
		{"malformed JSON", 200, `{"data":{"amount":"97123.45"`, pricefeed.ErrMalformed, "not JSON"},
		{"HTML", 200, `<html>maintenance</html>`, pricefeed.ErrMalformed, "not JSON"},
		{"missing path", 200, `{"data":{"base":"BTC","currency":"USD"}}`, pricefeed.ErrNoValue, "data.amount"},
		{"null price", 200, `{"data":{"amount":null}}`, pricefeed.ErrNoValue, "null"},
		{"exponent too small", 200, `{"data":{"amount":1e-19}}`, prices.ErrTooManyDecimals, "1e-19"},
		{"exponent too large", 200, `{"data":{"amount":"1E+21"}}`, prices.ErrOverflow, "1E+21"},
		{"negative", 200, `{"data":{"amount":"-97123.45"}}`, prices.ErrNegative, "-97123.45"},
		{"zero", 200, `{"data":{"amount":"0.00"}}`, prices.ErrInvalidPrice, "zero"},
		{"wrong pair", 200, `{"data":{"amount":"1.0","base":"ETH","currency":"USD"}}`, pricefeed.ErrMalformed, "data.base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			t.Cleanup(srv.Close)
			p := mustPoller(t, pricefeed.PollerConfig{Preset: "coinbase", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD"}})
			c := newCollector()
			err := p.Poll(context.Background(), c.sink)
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.inMsg) {
				t.Errorf("error %v, want %v mentioning %q", err, tt.err, tt.inMsg)
			}
			if !strings.Contains(err.Error(), "BTC-USD") {
				t.Errorf("error %v does not name the pair", err)
			}
			if n := len(c.all()); n != 0 {
				t.Errorf("%d ticks emitted, want none", n)
			}
		})
	}
}

func TestPollOnePairFailsOthersGoOn(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{
		"/api/v3/ticker/price?symbol=BTCUSDT": `{"symbol":"BTCUSDT","price":"97123.45"}`,
		"/api/v3/ticker/price?symbol=LTCUSDT": `{"symbol":"LTCUSDT","price":"88.12"}`,
	})
	p := mustPoller(t, pricefeed.PollerConfig{Preset: "binance", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD", "XYZ/USD", "LTC/USD"}})
	c := newCollector()
	err := p.Poll(context.Background(), c.sink)
	if !errors.Is(err, pricefeed.ErrHTTPStatus) || !strings.Contains(err.Error(), "XYZ-USD") || strings.Contains(err.Error(), "BTC-USD") {
		t.Errorf("error %v, want one HTTP status error for XYZ-USD", err)
	}
	got := byPair(c.all())
	if len(got) != 2 || got["BTC-USD"].Price != prices.MustParse("97123.45") || got["LTC-USD"].Price != prices.MustParse("88.12") {
		t.Errorf("ticks %v, want BTC-USD and LTC-USD", got)
	}
}

func TestPollSinkError(t *testing.T) {
	t.Parallel()
	srv := serve(t, map[string]string{"/v2/prices/BTC-USD/spot": `{"data":{"amount":"1.5"}}`})
	p := mustPoller(t, pricefeed.PollerConfig{Preset: "coinbase", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD"}})
	c := newCollector()
	c.fail = errors.New("bus down")
	if err := p.Poll(context.Background(), c.sink); err == nil || !strings.Contains(err.Error(), "bus down") {
		t.Errorf("error %v, want the sink's", err)
	}
}

func TestRunPollsAtInterval(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"data":{"amount":"97123.45"}}`))
	}))
	t.Cleanup(srv.Close)
	p := mustPoller(t, pricefeed.PollerConfig{
		Preset: "coinbase", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD", "ETH/USD"},
		Interval: pricefeed.MinInterval, Now: time.Now,
	})
	c := newCollector()
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := p.Run(ctx, c.sink); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's error", err)
	}
	// Polls at about 0, 1 s and 2 s; two pairs each.
	if n := len(c.all()); n < 4 || n > 8 {
		t.Errorf("%d ticks in 2.5 s at a 1 s interval with 2 pairs, want 4 to 8", n)
	}
	if h := hits.Load(); h < 4 || h > 8 {
		t.Errorf("%d requests, want 4 to 8", h)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	// The second request hangs until the client gives up.
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) > 1 {
			<-r.Context().Done()
			return
		}
		_, _ = w.Write([]byte(`{"data":{"amount":"97123.45"}}`))
	}))
	t.Cleanup(srv.Close)
	p := mustPoller(t, pricefeed.PollerConfig{
		Preset: "coinbase", BaseURL: pricefeed.URL(srv.URL), Pairs: []string{"BTC/USD", "ETH/USD"},
		Interval: time.Hour, Timeout: time.Hour,
	})
	c := newCollector()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, c.sink) }()
	c.wait(t, 1)
	for hits.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestPollerValidate(t *testing.T) {
	t.Parallel()
	ok := pricefeed.PollerConfig{Preset: "coingecko", Pairs: []string{"BTC/USD"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name string
		cfg  pricefeed.PollerConfig
		want []string // every one in the error
	}{
		{"unknown preset", pricefeed.PollerConfig{Preset: "kraken", Pairs: []string{"BTC/USD"}}, []string{`unknown preset "kraken"`}},
		{"empty pairs", pricefeed.PollerConfig{Preset: "binance"}, []string{"pairs: none given"}},
		{"bad pair", pricefeed.PollerConfig{Preset: "binance", Pairs: []string{"BTCUSD", "BTC/BTC"}}, []string{`"BTCUSD"`, `"BTC/BTC"`}},
		{"repeated pair", pricefeed.PollerConfig{Preset: "binance", Pairs: []string{"BTC/USD", "btc-usd"}}, []string{"BTC-USD given twice"}},
		{"interval too small", pricefeed.PollerConfig{Preset: "binance", Pairs: []string{"BTC/USD"}, Interval: 500 * time.Millisecond}, []string{"interval: 500ms is below the minimum 1s"}},
		{"bad base URL", pricefeed.PollerConfig{Preset: "binance", Pairs: []string{"BTC/USD"}, BaseURL: "ftp://example.com"}, []string{"base_url", "want a http or https URL"}},
		{"no coingecko id", pricefeed.PollerConfig{Preset: "coingecko", Pairs: []string{"XMR/USD"}}, []string{"no coin id for XMR"}},
		{"generic without url", pricefeed.PollerConfig{Name: "x", Pairs: []string{"BTC/USD"}, PricePath: "price"}, []string{"url: required"}},
		{"generic bad url", pricefeed.PollerConfig{Name: "x", Pairs: []string{"BTC/USD"}, URL: "example.com/{base}", PricePath: "price"}, []string{"url:"}},
		{"generic unknown placeholder", pricefeed.PollerConfig{Name: "x", Pairs: []string{"BTC/USD"}, URL: "https://example.com/{symbol}", PricePath: "price"}, []string{"unknown placeholder"}},
		{"generic same url", pricefeed.PollerConfig{Name: "x", Pairs: []string{"BTC/USD", "ETH/USD"}, URL: "https://example.com/{quote}", PricePath: "price"}, []string{"same URL"}},
		{"generic bad path", pricefeed.PollerConfig{Name: "x", Pairs: []string{"BTC/USD"}, URL: "https://example.com/{base}", PricePath: "a..b", TimePath: "."}, []string{"price_path", "time_path"}},
		{"generic needs a name", pricefeed.PollerConfig{Pairs: []string{"BTC/USD"}, URL: "https://example.com/{base}", PricePath: "p"}, []string{"name:"}},
		{"preset with generic fields", pricefeed.PollerConfig{Preset: "coinbase", Pairs: []string{"BTC/USD"}, PricePath: "p"}, []string{"generic definition"}},
		{"bad time format", pricefeed.PollerConfig{Preset: "coinbase", Pairs: []string{"BTC/USD"}, TimeFormat: "iso"}, []string{"time_format"}},
		{"bad header", pricefeed.PollerConfig{Preset: "coinbase", Pairs: []string{"BTC/USD"}, Headers: map[string]pricefeed.Secret{"X Key": "v"}}, []string{"headers"}},
		{"all at once", pricefeed.PollerConfig{Preset: "kraken", Interval: time.Millisecond}, []string{"unknown preset", "pairs: none given", "interval"}},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if !errors.Is(err, pricefeed.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
		if _, nerr := pricefeed.NewPoller(tt.cfg); nerr == nil {
			t.Errorf("%s: NewPoller accepted what Validate rejects", tt.name)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	cfg := pricefeed.PollerConfig{Headers: map[string]pricefeed.Secret{"X-Api-Key": "k-123"}}
	for _, s := range []string{
		cfg.Headers["X-Api-Key"].String(),
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%+v", cfg),
	} {
		if strings.Contains(s, "k-123") {
			t.Errorf("secret printed: %s", s)
		}
	}
}
