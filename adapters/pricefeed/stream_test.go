package pricefeed_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coinledger/coinledger/adapters/pricefeed"
)

const subscribeMsg = `{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":1}`

// wsServer is a websocket test server playing a Binance-like trade stream.
// Each connection reads the subscribe message, reports it on subs, and
// then runs script(n, conn) for connection number n (from 1).
func wsServer(t *testing.T, script func(ctx context.Context, n int, c *websocket.Conn)) (url string, subs <-chan string) {
	t.Helper()
	ch := make(chan string, 100)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		mu.Lock()
		n++
		num := n
		mu.Unlock()
		_, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		ch <- string(msg)
		script(r.Context(), num, c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ch
}

func send(ctx context.Context, c *websocket.Conn, msgs ...string) {
	for _, m := range msgs {
		if c.Write(ctx, websocket.MessageText, []byte(m)) != nil {
			return
		}
	}
}

// holdOpen keeps a connection open until the client goes.
func holdOpen(ctx context.Context, c *websocket.Conn) {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
	}
}

func streamConfig(url string) pricefeed.StreamConfig {
	return pricefeed.StreamConfig{
		Name:       "binance-ws",
		URL:        pricefeed.URL(url),
		Subscribe:  []string{subscribeMsg},
		Symbols:    map[string]string{"BTCUSDT": "BTC/USD", "ethusdt": "ETH/USD"},
		SymbolPath: "s",
		PricePath:  "p",
		TimePath:   "T",
		TimeFormat: pricefeed.TimeUnixMilli,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	}
}

// runStream runs s in the background; stop cancels it and returns Run's
// error, failing t when Run does not return within 5 s.
func runStream(t *testing.T, s pricefeed.Source, sink pricefeed.Sink) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, sink) }()
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return within 5 s of cancel")
			return nil
		}
	}
}

func TestStream(t *testing.T) {
	t.Parallel()
	url, subs := wsServer(t, func(ctx context.Context, n int, c *websocket.Conn) {
		noise := []string{
			`{"result":null,"id":1}`, // subscription answer
			`pong`,                   // not JSON
			`{"e":"trade","E":1718000000100,"s":"DOGEUSDT","p":"0.16234512","T":1718000000099}`, // unknown symbol
			`[{"s":"BTCUSDT"}]`, // no symbol at the path
			`{"e":"trade","s":"BTCUSDT","p":"-1","T":1718000000100}`, // known symbol, bad price: logged
		}
		send(ctx, c, noise...)
		if n == 1 {
			send(ctx, c, `{"e":"trade","E":1718000000124,"s":"BTCUSDT","t":4005123456,"p":"97123.456789012345","q":"0.00100000","T":1718000000123,"m":true,"M":true}`)
			c.Close(websocket.StatusGoingAway, "server restart")
			return
		}
		send(ctx, c, `{"e":"trade","E":1718000001002,"s":"ethusdt","t":1700000001,"p":3.4567e3,"q":"0.5","T":1718000001001,"m":false,"M":true}`)
		holdOpen(ctx, c)
	})
	var logs bytes.Buffer
	cfg := streamConfig(url)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err := pricefeed.NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	stop := runStream(t, s, c.sink)
	got := c.wait(t, 2)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if len(got) != 2 || len(c.all()) != 2 {
		t.Fatalf("got %d ticks, want 2 (the others do not match): %v", len(c.all()), c.all())
	}
	checkTick(t, got[0], "binance-ws", "BTC-USD", "97123.456789012345", time.UnixMilli(1718000000123))
	checkTick(t, got[1], "binance-ws", "ETH-USD", "3456.7", time.UnixMilli(1718000001001))
	for i := range 2 {
		select {
		case m := <-subs:
			if m != subscribeMsg {
				t.Errorf("connection %d: subscribe message %q, want %q", i+1, m, subscribeMsg)
			}
		default:
			t.Fatalf("connection %d: no subscribe message (reconnect did not resubscribe)", i+1)
		}
	}
	for _, want := range []string{"price stream message rejected", "price stream disconnected", "pair=BTC-USD", "negative"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs do not mention %q:\n%s", want, logs.String())
		}
	}
}

func TestStreamClockWithoutTimePath(t *testing.T) {
	t.Parallel()
	url, _ := wsServer(t, func(ctx context.Context, _ int, c *websocket.Conn) {
		send(ctx, c, `{"type":"ticker","product_id":"BTC-USD","price":"97123.45","time":"2025-01-02T03:04:05.000000Z"}`)
		holdOpen(ctx, c)
	})
	cfg := streamConfig(url)
	cfg.Symbols = map[string]string{"BTC-USD": "BTC/USD"}
	cfg.SymbolPath, cfg.PricePath, cfg.TimePath, cfg.TimeFormat = "product_id", "price", "", ""
	cfg.Now = func() time.Time { return fixedNow }
	s, err := pricefeed.NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	stop := runStream(t, s, c.sink)
	got := c.wait(t, 1)
	_ = stop()
	checkTick(t, got[0], "binance-ws", "BTC-USD", "97123.45", fixedNow)
}

func TestStreamReconnectsWhenIdle(t *testing.T) {
	t.Parallel()
	url, subs := wsServer(t, func(ctx context.Context, _ int, c *websocket.Conn) { holdOpen(ctx, c) })
	cfg := streamConfig(url)
	cfg.IdleTimeout = 100 * time.Millisecond
	s, err := pricefeed.NewStream(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := runStream(t, s, newCollector().sink)
	for i := range 3 {
		select {
		case <-subs:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d connections, want 3: an idle connection is dropped and made again", i)
		}
	}
	_ = stop()
}

func TestStreamStopsOnCancel(t *testing.T) {
	t.Parallel()
	t.Run("connected", func(t *testing.T) {
		t.Parallel()
		url, subs := wsServer(t, func(ctx context.Context, _ int, c *websocket.Conn) { holdOpen(ctx, c) })
		s, err := pricefeed.NewStream(streamConfig(url))
		if err != nil {
			t.Fatal(err)
		}
		stop := runStream(t, s, newCollector().sink)
		<-subs
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	t.Run("server gone", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := "ws" + strings.TrimPrefix(srv.URL, "http")
		srv.Close()
		s, err := pricefeed.NewStream(streamConfig(url))
		if err != nil {
			t.Fatal(err)
		}
		stop := runStream(t, s, newCollector().sink)
		time.Sleep(100 * time.Millisecond) // a few failed dials
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

func TestStreamValidate(t *testing.T) {
	t.Parallel()
	if err := streamConfig("wss://stream.binance.com:9443/ws").Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name string
		edit func(*pricefeed.StreamConfig)
		want []string
	}{
		{"no name", func(c *pricefeed.StreamConfig) { c.Name = "" }, []string{"name:"}},
		{"http url", func(c *pricefeed.StreamConfig) { c.URL = "https://example.com/ws" }, []string{"url:", "ws or wss"}},
		{"no url", func(c *pricefeed.StreamConfig) { c.URL = "" }, []string{"url: required"}},
		{"no symbols", func(c *pricefeed.StreamConfig) { c.Symbols = nil }, []string{"symbols: none given"}},
		{"bad pair", func(c *pricefeed.StreamConfig) { c.Symbols = map[string]string{"BTCUSDT": "BTCUSD"} }, []string{"symbols: BTCUSDT"}},
		{"symbol twice", func(c *pricefeed.StreamConfig) {
			c.Symbols = map[string]string{"btcusdt": "BTC/USD", "BTCUSDT": "BTC/EUR"}
		}, []string{"BTCUSDT given twice"}},
		{"paths", func(c *pricefeed.StreamConfig) { c.SymbolPath, c.PricePath, c.TimePath = "", "a..b", "." }, []string{"symbol_path: required", "price_path", "time_path"}},
		{"empty subscribe", func(c *pricefeed.StreamConfig) { c.Subscribe = []string{" "} }, []string{"subscribe"}},
		{"backoff", func(c *pricefeed.StreamConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, []string{"max_backoff"}},
		{"negative", func(c *pricefeed.StreamConfig) { c.ReadLimit, c.IdleTimeout = -1, -time.Second }, []string{"read_limit: negative", "idle_timeout: negative"}},
	}
	for _, tt := range tests {
		cfg := streamConfig("wss://stream.binance.com:9443/ws")
		tt.edit(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, pricefeed.ErrInvalidConfig) {
			t.Errorf("%s: Validate = %v, want ErrInvalidConfig", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
	}
}

// Both sources are Sources.
var (
	_ pricefeed.Source = (*pricefeed.Poller)(nil)
	_ pricefeed.Source = (*pricefeed.Stream)(nil)
)
