package walletnotify_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	busadapter "github.com/coinledger/coinledger/adapters/bus"
	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestRouterOnPostgresBus: on the durable bus the router delivers, hands
// the notification's correlation id to the handler, and still poisons
// what keeps failing (on the poison topic, which is also durable).
func TestRouterOnPostgresBus(t *testing.T) {
	t.Parallel()
	opts := walletnotify.RouterOptions{InitialInterval: time.Millisecond, MaxInterval: 2 * time.Millisecond, MaxRetries: 2}
	ps, err := busadapter.Open(context.Background(), dbtest.PostgresURL(t), busadapter.Options{Topics: walletnotify.Topics(),
		PollInterval: 20 * time.Millisecond, AckDeadline: opts.RetryBudget() + 10*time.Second})
	if err != nil {
		t.Fatal(err)
	}
	good, bad := txidN(1), txidN(2)
	var badCalls atomic.Int32
	correlations := make(chan string, 10)
	b := startRouterOn(t, ps, func(ctx context.Context, n walletnotify.Notification) error {
		if n.TxID == bad {
			badCalls.Add(1)
			return errors.New("node down")
		}
		correlations <- eventstore.CorrelationID(ctx)
		return nil
	}, opts)
	ctx := eventstore.WithCorrelationID(context.Background(), "req-7")
	if err := b.sink(ctx, walletnotify.Notification{Coin: "BTC", TxID: good, Source: "test"}); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-correlations:
		if id != "req-7" {
			t.Errorf("handler saw correlation id %q, want req-7", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler not called within 10 s")
	}
	b.notify(t, "BTC", bad)
	m := b.nextPoison(t)
	if m.Metadata.Get(walletnotify.MetadataTxID) != bad || m.Metadata.Get(walletnotify.MetadataAttempts) != "3" {
		t.Errorf("poison message metadata %v, want txid %s after 3 attempts", m.Metadata, bad)
	}
	if m.Metadata.Get("correlation_id") == "" {
		t.Error("poison message without the correlation id")
	}
	if n := badCalls.Load(); n != 3 {
		t.Errorf("failing handler called %d times, want 3", n)
	}
}

// TestRetryBudget: the waits between attempts at their jitter bound.
func TestRetryBudget(t *testing.T) {
	tests := []struct {
		opts walletnotify.RouterOptions
		want time.Duration
	}{
		{walletnotify.RouterOptions{MaxRetries: -1}, 0},
		{walletnotify.RouterOptions{InitialInterval: time.Second, MaxInterval: 3 * time.Second, MaxRetries: 4},
			(1 + 2 + 3 + 3) * 1200 * time.Millisecond},
		// Defaults: 1 s doubling to 1 min, 10 retries.
		{walletnotify.RouterOptions{}, (1 + 2 + 4 + 8 + 16 + 32 + 4*60) * 1200 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := tt.opts.RetryBudget(); got != tt.want {
			t.Errorf("%+v: budget %s, want %s", tt.opts, got, tt.want)
		}
	}
}
