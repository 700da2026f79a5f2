package market_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/market"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
)

var (
	btcusd = prices.MustPair("BTC-USD")
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

func newService(tb testing.TB) (*market.Service, *sqlite.Store) {
	tb.Helper()
	store := sqlitetest.Open(tb)
	svc := market.New(store, nil)
	tb.Cleanup(svc.Close)
	return svc, store
}

func record(tb testing.TB, svc *market.Service, source, price string, at time.Time) market.Result {
	tb.Helper()
	res, err := svc.Record(context.Background(), eventstore.Metadata{Actor: "feed"}, btcusd,
		prices.RecordTick{Source: source, Price: prices.MustParse(price), At: at})
	if err != nil {
		tb.Fatalf("record %s %s at %s: %v", source, price, at, err)
	}
	return res
}

func ticks(tb testing.TB, store eventstore.Store, pair prices.Pair) []prices.PriceTicked {
	tb.Helper()
	events, err := store.ReadStream(context.Background(), pair.Stream(), 0, 100000)
	if err != nil {
		tb.Fatal(err)
	}
	codec := eventstore.NewCodecOf(prices.Events()...)
	out := make([]prices.PriceTicked, 0, len(events))
	for _, e := range events {
		ev, err := codec.Decode(e)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ev.(prices.PriceTicked))
	}
	return out
}

func TestRecord(t *testing.T) {
	svc, store := newService(t)
	res := record(t, svc, "binance", "64000.12", t0)
	if !res.Recorded || res.Position == 0 {
		t.Fatalf("first tick: %+v, want recorded with a position", res)
	}
	got := ticks(t, store, btcusd)
	if len(got) != 1 {
		t.Fatalf("%d events, want 1", len(got))
	}
	want := prices.PriceTicked{Pair: btcusd, Price: prices.MustParse("64000.12"), Source: "binance", At: t0}
	if g := got[0]; g.Pair != want.Pair || g.Price != want.Price || g.Source != want.Source || !g.At.Equal(want.At) {
		t.Fatalf("event %+v, want %+v", g, want)
	}
	res2 := record(t, svc, "binance", "64001", t0.Add(time.Second))
	if !res2.Recorded || res2.Position <= res.Position {
		t.Fatalf("second tick: %+v after %+v", res2, res)
	}
}

func TestDuplicateDropped(t *testing.T) {
	svc, store := newService(t)
	first := record(t, svc, "binance", "64000", t0)
	dup := record(t, svc, "binance", "64000", t0)
	if dup.Recorded {
		t.Fatalf("duplicate recorded: %+v", dup)
	}
	if dup.Position != first.Position {
		t.Fatalf("duplicate answered position %d, want the stream's last %d", dup.Position, first.Position)
	}
	// Same time, another price: still the same (source, time) key.
	if r := record(t, svc, "binance", "1", t0); r.Recorded {
		t.Fatal("tick with a recorded (source, time) recorded again")
	}
	// Same time, another source: a distinct tick.
	if r := record(t, svc, "coinbase", "64000", t0); !r.Recorded {
		t.Fatal("another source's tick at the same time dropped")
	}
	// A new service (fresh writer state, loaded from the store) still
	// knows the tick.
	svc2 := market.New(store, nil)
	defer svc2.Close()
	if r := record(t, svc2, "binance", "64000", t0); r.Recorded {
		t.Fatal("duplicate recorded after reload")
	}
	if n := len(ticks(t, store, btcusd)); n != 2 {
		t.Fatalf("%d events, want 2", n)
	}
}

func TestCoalescing(t *testing.T) {
	svc, store := newService(t)
	record(t, svc, "binance", "64000", t0)
	if r := record(t, svc, "binance", "64000", t0.Add(10*time.Second)); r.Recorded {
		t.Fatal("unchanged price within CoalesceWithin recorded")
	}
	if r := record(t, svc, "binance", "64000.5", t0.Add(20*time.Second)); !r.Recorded {
		t.Fatal("changed price coalesced")
	}
	if r := record(t, svc, "binance", "64000.5", t0.Add(20*time.Second+prices.CoalesceWithin)); !r.Recorded {
		t.Fatal("unchanged price after CoalesceWithin dropped: a flat market must still tick")
	}
	if n := len(ticks(t, store, btcusd)); n != 3 {
		t.Fatalf("%d events, want 3", n)
	}
}

func TestValidation(t *testing.T) {
	svc, store := newService(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		pair prices.Pair
		cmd  prices.RecordTick
	}{
		{"zero pair", prices.Pair{}, prices.RecordTick{Source: "x", Price: prices.MustParse("1"), At: t0}},
		{"zero price", btcusd, prices.RecordTick{Source: "x", At: t0}},
		{"no time", btcusd, prices.RecordTick{Source: "x", Price: prices.MustParse("1")}},
		{"bad source", btcusd, prices.RecordTick{Source: "has space", Price: prices.MustParse("1"), At: t0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Record(ctx, eventstore.Metadata{}, tc.pair, tc.cmd)
			if !errors.Is(err, prices.ErrValidation) {
				t.Fatalf("err = %v, want ErrValidation", err)
			}
		})
	}
	if head, _ := store.Head(ctx); head != 0 {
		t.Fatalf("invalid ticks appended %d events", head)
	}
}

// TestConcurrent records every tick of a set from many goroutines at once,
// each tick several times: every distinct tick is recorded exactly once.
func TestConcurrent(t *testing.T) {
	svc, store := newService(t)
	const sources, perSource, goroutines = 16, 20, 12
	type tick struct {
		source string
		price  prices.Price
		at     time.Time
	}
	var all []tick
	for s := range sources {
		for i := range perSource {
			p, _ := prices.New(uint64(64000_00+s*1000+i), 2) // distinct: nothing coalesces
			all = append(all, tick{fmt.Sprintf("feed%d", s), p, t0.Add(time.Duration(i) * time.Second)})
		}
	}
	var mu sync.Mutex
	recorded := map[int]int{}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range all {
				i := (k*7 + g*13) % len(all) // every goroutine in its own order
				c := all[i]
				res, err := svc.Record(context.Background(), eventstore.Metadata{}, btcusd,
					prices.RecordTick{Source: c.source, Price: c.price, At: c.at})
				if err != nil {
					errs <- err
					return
				}
				if res.Recorded {
					mu.Lock()
					recorded[i]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range all {
		if recorded[i] != 1 {
			t.Errorf("tick %d (%s at %s) reported recorded %d times, want 1", i, all[i].source, all[i].at, recorded[i])
		}
	}
	got := ticks(t, store, btcusd)
	if len(got) != len(all) {
		t.Fatalf("%d events, want %d", len(got), len(all))
	}
	seen := map[string]bool{}
	for _, e := range got {
		k := e.Source + "@" + e.At.String()
		if seen[k] {
			t.Fatalf("tick %s recorded twice", k)
		}
		seen[k] = true
	}
}

func TestClosed(t *testing.T) {
	svc, _ := newService(t)
	svc.Close()
	_, err := svc.Record(context.Background(), eventstore.Metadata{}, btcusd,
		prices.RecordTick{Source: "x", Price: prices.MustParse("1"), At: t0})
	if !errors.Is(err, eventstore.ErrBatcherClosed) {
		t.Fatalf("err = %v, want ErrBatcherClosed", err)
	}
}

// TestRecordRefusesTicksFromTheFuture: a tick more than prices.MaxAhead
// ahead of the service's clock is refused (it would pin "latest" until its
// time comes); one within it is recorded.
func TestRecordRefusesTicksFromTheFuture(t *testing.T) {
	store := sqlitetest.Open(t)
	svc := market.New(store, func() time.Time { return t0 })
	t.Cleanup(svc.Close)
	ctx := context.Background()
	tick := func(at time.Time) error {
		_, err := svc.Record(ctx, eventstore.Metadata{}, btcusd, prices.RecordTick{Source: "x", Price: prices.MustParse("1"), At: at})
		return err
	}
	for _, at := range []time.Time{t0.Add(prices.MaxAhead + time.Second), t0.AddDate(100, 0, 0)} {
		if err := tick(at); !errors.Is(err, prices.ErrValidation) {
			t.Fatalf("tick at %s with the clock at %s: err %v, want ErrValidation", at, t0, err)
		}
	}
	if head, _ := store.Head(ctx); head != 0 {
		t.Fatalf("future ticks appended %d events", head)
	}
	if err := tick(t0.Add(4 * time.Minute)); err != nil {
		t.Fatalf("tick 4 minutes ahead: %v", err)
	}
}
