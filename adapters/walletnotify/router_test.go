package walletnotify_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// txidN returns a distinct valid txid per n.
func txidN(n int) string { return fmt.Sprintf("%064x", n+1) }

// clock is a settable clock for the dedupe window.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// logs is a slog.Handler that keeps the messages logged, to wait on them.
type logs struct {
	mu   sync.Mutex
	msgs []string
	tb   testing.TB
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logs) WithGroup(string) slog.Handler            { return l }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *logs) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, m := range l.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

// waitFor waits until msg was logged n times.
func (l *logs) waitFor(msg string, n int) {
	l.tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.count(msg) < n {
		if time.Now().After(deadline) {
			l.tb.Fatalf("logged %q %d times, want %d", msg, l.count(msg), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

type bus struct {
	ps     pubSub
	sink   walletnotify.Sink
	logs   *logs
	poison <-chan *message.Message
	stop   func() // stops the router and waits for it
}

// pubSub is a bus the router runs on.
type pubSub interface {
	message.Publisher
	message.Subscriber
}

// startRouter runs a router on a fresh gochannel until the test ends.
func startRouter(t *testing.T, h walletnotify.Handler, opts walletnotify.RouterOptions) *bus {
	t.Helper()
	return startRouterOn(t, gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{}), h, opts)
}

// startRouterOn runs a router on ps until the test ends, and closes ps.
func startRouterOn(t *testing.T, ps pubSub, h walletnotify.Handler, opts walletnotify.RouterOptions) *bus {
	t.Helper()
	l := &logs{tb: t}
	opts.Logger = slog.New(l)
	r, err := walletnotify.NewRouter(ps, ps, h, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	poison, err := ps.Subscribe(ctx, walletnotify.PoisonTopic)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-r.Running():
	case err := <-done:
		t.Fatalf("router stopped at start: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("router not running after 5 s")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("router run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("router did not stop within 5 s")
			}
			_ = ps.Close()
		})
	}
	t.Cleanup(stop)
	return &bus{ps: ps, sink: walletnotify.Publish(ps), logs: l, poison: poison, stop: stop}
}

func (b *bus) notify(t *testing.T, coin, txid string) {
	t.Helper()
	if err := b.sink(context.Background(), walletnotify.Notification{Coin: coin, TxID: txid, Source: "test"}); err != nil {
		t.Fatal(err)
	}
}

func (b *bus) nextPoison(t *testing.T) *message.Message {
	t.Helper()
	select {
	case m := <-b.poison:
		m.Ack()
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("nothing on the poison topic after 5 s")
		return nil
	}
}

func (b *bus) noPoison(t *testing.T) {
	t.Helper()
	select {
	case m := <-b.poison:
		m.Ack()
		t.Fatalf("unexpected poison message %s: %s", m.Payload, m.Metadata.Get(walletnotify.MetadataPoisonReason))
	case <-time.After(50 * time.Millisecond):
	}
}

func receive(t *testing.T, ch <-chan walletnotify.Notification) walletnotify.Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called within 5 s")
		return walletnotify.Notification{}
	}
}

const (
	logDuplicate = "walletnotify duplicate skipped"
	logMalformed = "walletnotify malformed message dropped"
)

func TestRouterDelivers(t *testing.T) {
	t.Parallel()
	got := make(chan walletnotify.Notification, 10)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		got <- n
		return nil
	}, walletnotify.RouterOptions{})
	b.notify(t, " BTC ", strings.ToUpper(txid))
	n := receive(t, got)
	if want := (walletnotify.Notification{Coin: "BTC", TxID: txid, Source: "test"}); n != want {
		t.Fatalf("handler got %+v, want %+v", n, want)
	}
	b.noPoison(t)
}

func TestPublishValidates(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer ps.Close()
	msgs, err := ps.Subscribe(t.Context(), walletnotify.TopicOf(txid))
	if err != nil {
		t.Fatal(err)
	}
	sink := walletnotify.Publish(ps)
	if err := sink(t.Context(), walletnotify.Notification{Coin: "BTC", TxID: "nope"}); !errors.Is(err, walletnotify.ErrInvalidTxID) {
		t.Errorf("bad txid: %v, want ErrInvalidTxID", err)
	}
	if err := sink(t.Context(), walletnotify.Notification{Coin: " ", TxID: txid}); !errors.Is(err, walletnotify.ErrInvalidCoin) {
		t.Errorf("blank coin: %v, want ErrInvalidCoin", err)
	}
	for range 2 {
		if err := sink(t.Context(), walletnotify.Notification{Coin: "LTC", TxID: txid, Source: "pipe"}); err != nil {
			t.Fatal(err)
		}
	}
	var uuids []string
	for range 2 {
		select {
		case m := <-msgs:
			m.Ack()
			uuids = append(uuids, m.UUID)
			if m.Metadata.Get(walletnotify.MetadataCoin) != "LTC" || m.Metadata.Get(walletnotify.MetadataSource) != "pipe" ||
				m.Metadata.Get(walletnotify.MetadataTxID) != txid {
				t.Errorf("metadata %v", m.Metadata)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("valid notification not published")
		}
	}
	if uuids[0] == uuids[1] {
		t.Errorf("same message UUID %s for two notifications of one txid", uuids[0])
	}
	select {
	case m := <-msgs:
		t.Fatalf("invalid notification published: %s", m.Payload)
	case <-time.After(20 * time.Millisecond):
	}
}

func TestRouterDedupeWindow(t *testing.T) {
	t.Parallel()
	clk := newClock()
	var calls atomic.Int32
	got := make(chan walletnotify.Notification, 10)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		calls.Add(1)
		got <- n
		return nil
	}, walletnotify.RouterOptions{Now: clk.Now})

	for range 5 {
		b.notify(t, "BTC", txid)
	}
	receive(t, got)
	b.logs.waitFor(logDuplicate, 4)
	if n := calls.Load(); n != 1 {
		t.Fatalf("5 notifications within the window: handler called %d times, want 1", n)
	}

	// Another txid, or the same txid of another coin, is not a duplicate.
	b.notify(t, "BTC", txidN(1))
	b.notify(t, "LTC", txid)
	receive(t, got)
	receive(t, got)

	clk.Advance(2*time.Second - time.Millisecond)
	b.notify(t, "BTC", txid)
	b.logs.waitFor(logDuplicate, 5)

	clk.Advance(time.Millisecond) // the window has passed: new confirmations
	b.notify(t, "BTC", txid)
	if n := receive(t, got); n.TxID != txid || n.Coin != "BTC" {
		t.Fatalf("after the window: got %+v", n)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("handler called %d times, want 4", n)
	}
}

func TestRouterDedupeOff(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		calls.Add(1)
		return nil
	}, walletnotify.RouterOptions{DedupeWindow: -1})
	for range 3 {
		b.notify(t, "BTC", txid)
	}
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("dedupe off: handler called %d times, want 3", n)
	}
}

func TestRouterRetries(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	done := make(chan walletnotify.Notification, 1)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		if calls.Add(1) <= 2 {
			return errors.New("node down")
		}
		done <- n
		return nil
	}, walletnotify.RouterOptions{InitialInterval: time.Millisecond, MaxInterval: 4 * time.Millisecond})
	b.notify(t, "BTC", txid)
	receive(t, done)
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler called %d times, want 3", n)
	}
	b.noPoison(t)
}

func TestRouterPoison(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		calls.Add(1)
		return errors.New("node down: connection refused")
	}, walletnotify.RouterOptions{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxRetries: 3})
	b.notify(t, "DOGE", txid)
	m := b.nextPoison(t)
	if reason := m.Metadata.Get(walletnotify.MetadataPoisonReason); !strings.Contains(reason, "connection refused") {
		t.Errorf("poison reason %q", reason)
	}
	if a := m.Metadata.Get(walletnotify.MetadataAttempts); a != "4" {
		t.Errorf("attempts %q, want 4", a)
	}
	if m.Metadata.Get(walletnotify.MetadataTxID) != txid || m.Metadata.Get(walletnotify.MetadataCoin) != "DOGE" ||
		!strings.Contains(string(m.Payload), txid) {
		t.Errorf("poison message %s %v", m.Payload, m.Metadata)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("handler called %d times, want 4 (1 + 3 retries)", n)
	}
	b.logs.waitFor("walletnotify notification poisoned", 1)
}

func TestRouterPermanentNotRetriedAndNotDeduped(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	ok := make(chan walletnotify.Notification, 1)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		if calls.Add(1) == 1 {
			return walletnotify.Permanent(errors.New("not a wallet transaction"))
		}
		ok <- n
		return nil
	}, walletnotify.RouterOptions{Now: newClock().Now, InitialInterval: time.Hour, MaxInterval: time.Hour})
	b.notify(t, "BTC", txid)
	m := b.nextPoison(t)
	if a := m.Metadata.Get(walletnotify.MetadataAttempts); a != "1" {
		t.Errorf("attempts %q, want 1", a)
	}
	// The failed notification does not hold back the next one, though the
	// clock has not moved.
	b.notify(t, "BTC", txid)
	receive(t, ok)
}

func TestRouterRecoversPanic(t *testing.T) {
	t.Parallel()
	ok := make(chan walletnotify.Notification, 1)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		if n.TxID == txid {
			var m map[string]int
			m["boom"]++ // nil map: panics
		}
		ok <- n
		return nil
	}, walletnotify.RouterOptions{})
	b.notify(t, "BTC", txid)
	m := b.nextPoison(t)
	if reason := m.Metadata.Get(walletnotify.MetadataPoisonReason); !strings.Contains(reason, "panicked") ||
		!strings.Contains(reason, "nil map") {
		t.Errorf("poison reason %q", reason)
	}
	b.logs.waitFor("walletnotify handler panicked", 1)
	b.notify(t, "BTC", txidN(7))
	if n := receive(t, ok); n.TxID != txidN(7) {
		t.Fatalf("after the panic: got %+v", n)
	}
}

func TestRouterDropsMalformed(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		calls.Add(1)
		return nil
	}, walletnotify.RouterOptions{InitialInterval: time.Millisecond, MaxInterval: time.Millisecond})
	for _, payload := range []string{
		"not json",
		`{"coin":"BTC","txid":"abc"}`,
		`{"coin":"","txid":"` + txid + `"}`,
		`["BTC"]`,
	} {
		if err := b.ps.Publish(walletnotify.TopicOf(txid), message.NewMessage(watermill.NewUUID(), []byte(payload))); err != nil {
			t.Fatal(err)
		}
	}
	b.logs.waitFor(logMalformed, 4)
	time.Sleep(20 * time.Millisecond) // a nacked message would be redelivered and logged again
	if n := b.logs.count(logMalformed); n != 4 {
		t.Errorf("malformed logged %d times, want 4 (acked, not retried)", n)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for malformed payloads", n)
	}
	b.noPoison(t)
}

func TestRouterStopsDuringRetries(t *testing.T) {
	t.Parallel()
	called := make(chan struct{}, 1)
	b := startRouter(t, func(ctx context.Context, n walletnotify.Notification) error {
		select {
		case called <- struct{}{}:
		default:
		}
		return errors.New("node down")
	}, walletnotify.RouterOptions{InitialInterval: time.Minute})
	b.notify(t, "BTC", txid)
	<-called
	start := time.Now()
	b.stop()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("router took %s to stop while waiting to retry", d)
	}
	if n := b.logs.count("walletnotify notification poisoned"); n != 0 {
		t.Errorf("notification poisoned at shutdown")
	}
}

func TestNewRouterRejectsBadOptions(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	defer ps.Close()
	h := func(context.Context, walletnotify.Notification) error { return nil }
	for _, o := range []walletnotify.RouterOptions{
		{InitialInterval: -time.Second},
		{InitialInterval: time.Minute, MaxInterval: time.Second},
	} {
		if _, err := walletnotify.NewRouter(ps, ps, h, o); err == nil {
			t.Errorf("NewRouter(%+v) accepted", o)
		}
	}
	if _, err := walletnotify.NewRouter(ps, ps, nil, walletnotify.RouterOptions{}); err == nil {
		t.Error("NewRouter with nil handler accepted")
	}
}
