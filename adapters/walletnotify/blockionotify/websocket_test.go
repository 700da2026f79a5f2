package blockionotify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/blockio/blockiotest"
	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/blockionotify"
)

// recorder is a walletnotify.Sink that keeps what it takes (and refuses
// while failing is set).
type recorder struct {
	mu      sync.Mutex
	got     []walletnotify.Notification
	failing bool
}

func (r *recorder) sink(_ context.Context, n walletnotify.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing {
		return errors.New("queue full")
	}
	if _, err := walletnotify.ParseTxID(n.TxID); err != nil {
		panic(fmt.Sprintf("invalid txid reached the sink: %q", n.TxID))
	}
	r.got = append(r.got, n)
	return nil
}

func (r *recorder) notifications() []walletnotify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *recorder) setFailing(f bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failing = f
}

func (r *recorder) count(txid string) int {
	n := 0
	for _, got := range r.notifications() {
		if got.TxID == txid {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type wsFixture struct {
	server *blockiotest.Server
	ws     *blockionotify.Websocket
	rec    *recorder
	logs   *syncBuffer
}

func startWebsocketOn(t *testing.T, s *blockiotest.Server, cfg blockionotify.WebsocketConfig, source blockionotify.AddressSource, addrs []string) wsFixture {
	t.Helper()
	cfg.URL = s.WebsocketURL()
	cfg.Coin, cfg.Network = "BTC", s.Network()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	rec := &recorder{}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ws, err := blockionotify.NewWebsocket(cfg, rec.sink, source, logger)
	if err != nil {
		t.Fatal(err)
	}
	if addrs != nil {
		ws.SetAddresses(addrs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ws.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return wsFixture{server: s, ws: ws, rec: rec, logs: logs}
}

// subscribedOn returns the addresses subscribed on connection conn.
func subscribedOn(s *blockiotest.Server, conn int) []string {
	var addrs []string
	for _, sub := range s.Subscriptions() {
		if sub.Conn == conn && sub.Type == "address" {
			addrs = append(addrs, sub.Address)
		}
	}
	return addrs
}

func TestWebsocketSubscribesToAddresses(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	a1, a2, other := s.NewAddress(), s.NewAddress(), s.NewAddress()
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{}, nil, []string{a2, a1, a1, " "})
	eventually(t, "two address subscriptions", func() bool { return len(subscribedOn(s, 1)) == 2 })
	for _, sub := range s.Subscriptions() {
		if sub.Type != "address" || sub.Network != s.Network() || (sub.Address != a1 && sub.Address != a2) {
			t.Fatalf("subscription %+v", sub)
		}
	}

	txid := s.Pay(a2, 40_000)
	eventually(t, "the payment's notification", func() bool { return f.rec.count(txid) == 1 })
	if got := f.rec.notifications()[0]; got != (walletnotify.Notification{Coin: "BTC", TxID: txid, Source: blockionotify.SourceWebsocket}) {
		t.Fatalf("notification %+v", got)
	}
	s.Mine(1) // a confirmation is notified again
	eventually(t, "the confirmation's notification", func() bool { return f.rec.count(txid) == 2 })

	unsubscribed := s.Pay(other, 40_000)
	s.Pay(a1, 1_000)
	eventually(t, "the third notification", func() bool { return len(f.rec.notifications()) == 3 })
	if f.rec.count(unsubscribed) != 0 {
		t.Fatal("notified for an address not subscribed")
	}
}

func TestWebsocketSubscribesToAccount(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{APIKey: blockionotify.Secret(s.APIKey())}, nil, []string{s.NewAddress()})
	eventually(t, "the account subscription", func() bool { return len(s.Subscriptions()) == 1 })
	if sub := s.Subscriptions()[0]; sub.Type != "account" || !sub.KeyValid {
		t.Fatalf("subscription %+v, want the account's with its key", sub)
	}
	txid := s.Pay(s.NewAddress(), 10_000) // any address of the account
	eventually(t, "the account notification", func() bool { return f.rec.count(txid) == 1 })
	if strings.Contains(f.logs.String(), s.APIKey()) {
		t.Fatal("the API key was logged")
	}
}

func TestWebsocketDropsWhatIsNotATransaction(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	addr := s.NewAddress()
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{}, nil, []string{addr})
	eventually(t, "the subscription", func() bool { return len(s.Subscriptions()) == 1 })

	valid := strings.Repeat("ab", 32)
	s.PingWebsockets()
	for _, msg := range []string{
		`{"type":"ping"}`,
		`{"status":"success","data":{"message":"hello"}}`,
		`{"type":"new-blocks","data":{"network":"BTCTEST","block_no":7,"block_hash":"00"}}`,
		`{"type":"address","data":{"network":"LTC","txid":"` + valid + `"}}`,
		`{"type":"address","data":{"network":"BTCTEST","txid":"not-a-txid"}}`,
		`{"type":"address","data":"nope"}`,
		`not json at all`,
	} {
		s.SendWebsockets([]byte(msg))
	}
	txid := s.Pay(addr, 5_000)
	eventually(t, "the payment's notification", func() bool { return f.rec.count(txid) == 1 })
	if n := len(f.rec.notifications()); n != 1 {
		t.Fatalf("%d notifications: %+v", n, f.rec.notifications())
	}
	if n := s.WebsocketConnections(); n != 1 {
		t.Fatalf("%d connections: pings or junk must not end one", n)
	}
}

func TestWebsocketReconnectsAndResubscribes(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	addr := s.NewAddress()
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{}, nil, []string{addr})
	eventually(t, "the first subscription", func() bool { return len(subscribedOn(s, 1)) == 1 })
	for round := 2; round <= 3; round++ {
		s.DropWebsockets()
		eventually(t, "the subscription after a drop", func() bool { return slices.Equal(subscribedOn(s, round), []string{addr}) })
	}
	txid := s.Pay(addr, 5_000)
	eventually(t, "a notification after reconnecting", func() bool { return f.rec.count(txid) == 1 })
	if !strings.Contains(f.logs.String(), "blockio websocket lost") {
		t.Fatalf("the drop was not logged:\n%s", f.logs.String())
	}
}

func TestWebsocketResubscribesWhenAddressesChange(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	a1, a2 := s.NewAddress(), s.NewAddress()
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{}, nil, []string{a1})
	eventually(t, "the first subscription", func() bool { return len(subscribedOn(s, 1)) == 1 })
	f.ws.SetAddresses([]string{a1, a2})
	eventually(t, "the new address's subscription", func() bool { return len(subscribedOn(s, 1)) == 2 })
	if got := subscribedOn(s, 1); !slices.Equal(got, []string{a1, a2}) || s.WebsocketConnections() != 1 {
		t.Fatalf("subscriptions %v on %d connections; want a1 once, then a2, on one", got, s.WebsocketConnections())
	}
	txid := s.Pay(a2, 5_000)
	eventually(t, "the new address's notification", func() bool { return f.rec.count(txid) == 1 })
}

func TestWebsocketPollsAddressSource(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	var mu sync.Mutex
	addrs := []string{s.NewAddress()}
	calls := 0
	source := func(context.Context) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls++; calls == 2 {
			return nil, errors.New("database away")
		}
		return slices.Clone(addrs), nil
	}
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{PollInterval: 10 * time.Millisecond}, source, nil)
	eventually(t, "the polled address's subscription", func() bool { return len(subscribedOn(s, 1)) == 1 })
	added := s.NewAddress()
	mu.Lock()
	addrs = append(addrs, added)
	mu.Unlock()
	eventually(t, "the added address's subscription", func() bool { return slices.Contains(subscribedOn(s, 1), added) })
	if !strings.Contains(f.logs.String(), "database away") {
		t.Fatal("the failing source was not logged")
	}
}

func TestWebsocketReadLimit(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	addr := s.NewAddress()
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{ReadLimit: 1024}, nil, []string{addr})
	eventually(t, "the subscription", func() bool { return len(s.Subscriptions()) == 1 })
	s.SendWebsockets([]byte(`{"type":"ping","data":"` + strings.Repeat("x", 4096) + `"}`))
	eventually(t, "a new connection after an oversized message", func() bool { return len(subscribedOn(s, 2)) == 1 })
	txid := s.Pay(addr, 5_000)
	eventually(t, "a notification on the new connection", func() bool { return f.rec.count(txid) == 1 })
}

func TestWebsocketNeverLogsTheKey(t *testing.T) {
	t.Parallel()
	s := blockiotest.New(t, blockiotest.Options{})
	key := "refused-key-1234-abcd"
	f := startWebsocketOn(t, s, blockionotify.WebsocketConfig{APIKey: blockionotify.Secret(key)}, nil, nil)
	eventually(t, "the refused subscription", func() bool { return len(s.Subscriptions()) == 1 })
	s.SendWebsockets([]byte(`{"status":"fail","data":{"error_message":"API key ` + key + ` is not valid"}}`))
	s.DropWebsockets()
	eventually(t, "the refusal and the drop logged", func() bool {
		l := f.logs.String()
		return strings.Contains(l, "request refused") && strings.Contains(l, "websocket lost")
	})
	if sub := s.Subscriptions()[0]; sub.KeyValid {
		t.Fatalf("subscription %+v", sub)
	}
	if l := f.logs.String(); strings.Contains(l, key) || !strings.Contains(l, "[redacted]") {
		t.Fatalf("logs:\n%s", l)
	}
}

func TestWebsocketConfig(t *testing.T) {
	t.Parallel()
	cfg := blockionotify.WebsocketConfig{Coin: "DOGE", APIKey: "cfg-key-xyz"}
	if err := cfg.Validate(); err != nil || cfg.URL != blockionotify.DefaultWebsocketURL || cfg.Network != "DOGE" || cfg.ReadLimit != blockionotify.DefaultReadLimit {
		t.Fatalf("defaults %+v, %v", cfg, err)
	}
	bad := blockionotify.WebsocketConfig{URL: "ws://n.block.io/", ReadLimit: 10, MinBackoff: time.Minute, MaxBackoff: time.Second}
	err := bad.Validate()
	if !errors.Is(err, blockionotify.ErrInvalidConfig) {
		t.Fatalf("bad config: %v", err)
	}
	for _, want := range []string{"coin", "wss", "read_limit", "max_backoff"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v does not mention %s", err, want)
		}
	}
	if _, err := blockionotify.NewWebsocket(blockionotify.WebsocketConfig{Coin: "BTC"}, nil, nil, nil); !errors.Is(err, blockionotify.ErrInvalidConfig) {
		t.Fatalf("no sink: %v", err)
	}
	if s := fmt.Sprintf("%v %+v", cfg, cfg); strings.Contains(s, "cfg-key-xyz") || !strings.Contains(s, "[redacted]") {
		t.Fatalf("config shows its key: %s", s)
	}
}
