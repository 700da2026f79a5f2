package prices_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	pricesrm "github.com/coinledger/coinledger/projections/prices"
	"github.com/coinledger/coinledger/test/background"
)

var (
	btcusd = prices.MustPair("BTC-USD")
	ethusd = prices.MustPair("ETH-USD")
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// env is an event store and a read model kept current by a runner.
type env struct {
	store  eventstore.Store
	db     projections.DB
	runner *projections.Runner
	codec  *eventstore.Codec[prices.Event]
	last   uint64
}

func newEnv(t *testing.T, open dbtest.NewDB) *env {
	t.Helper()
	store := sqlitetest.Open(t)
	db := open(t)
	r := projections.NewRunner(db, store, projections.Options{}, pricesrm.New())
	background.Run(t, true, r.Run)
	return &env{store: store, db: db, runner: r, codec: eventstore.NewCodecOf(prices.Events()...)}
}

// tick appends ticks of pair (price, seconds after t0) in one append.
func (e *env) tick(tb testing.TB, pair prices.Pair, source string, ticks ...any) {
	tb.Helper()
	var events []prices.Event
	for i := 0; i < len(ticks); i += 2 {
		events = append(events, prices.PriceTicked{Pair: pair, Price: prices.MustParse(ticks[i].(string)), Source: source,
			At: t0.Add(ticks[i+1].(time.Duration))})
	}
	data, err := e.codec.Encode(eventstore.Metadata{Actor: "test"}, events)
	must(tb, err)
	res, err := e.store.Append(context.Background(), pair.Stream(), eventstore.Any, data...)
	must(tb, err)
	e.last = res.Position
}

func (e *env) sync(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(tb, e.runner.WaitFor(ctx, "prices", e.last))
}

func TestLatest(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		// A non-price event is ignored.
		_, err := e.store.Append(ctx, "other-1", eventstore.Any, eventstore.EventData{Type: prices.TypePriceTicked, Data: []byte(`{}`)})
		must(t, err)
		e.tick(t, btcusd, "binance", "64000.123456789012345678", 0*time.Second, "64010", 10*time.Second)
		e.sync(t)
		if _, err := pricesrm.Latest(ctx, e.db, ethusd); !errors.Is(err, pricesrm.ErrNotFound) {
			t.Fatalf("latest of a pair without ticks: %v, want ErrNotFound", err)
		}
		got, err := pricesrm.Latest(ctx, e.db, btcusd)
		must(t, err)
		if got.Price != prices.MustParse("64010") || got.Source != "binance" || !got.At.Equal(t0.Add(10*time.Second)) || got.Position != e.last {
			t.Fatalf("latest %+v", got)
		}
		// A late tick (older time) does not replace the newest price.
		e.tick(t, btcusd, "coinbase", "1", 5*time.Second)
		e.tick(t, ethusd, "coinbase", "3000.5", 7*time.Second)
		e.sync(t)
		got, err = pricesrm.Latest(ctx, e.db, btcusd)
		must(t, err)
		if got.Price != prices.MustParse("64010") {
			t.Fatalf("late tick replaced the latest price: %+v", got)
		}
		// A newer one, from another source, does; the exact decimal survives.
		e.tick(t, btcusd, "coinbase", "64020.000000000000000001", 11*time.Second)
		e.sync(t)
		got, err = pricesrm.Latest(ctx, e.db, btcusd)
		must(t, err)
		if got.Price.String() != "64020.000000000000000001" || got.Source != "coinbase" {
			t.Fatalf("latest %+v", got)
		}
		all, err := pricesrm.LatestAll(ctx, e.db)
		must(t, err)
		if len(all) != 2 || all[0].Pair != btcusd || all[1].Pair != ethusd || all[1].Price.String() != "3000.5" {
			t.Fatalf("latest all %+v", all)
		}
	})
}

func TestHistory(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		e.tick(t, btcusd, "a", "1", 1*time.Second, "2", 2*time.Second, "3", 3*time.Second)
		e.tick(t, btcusd, "b", "2.5", 2*time.Second) // same time, later position
		e.tick(t, ethusd, "a", "99", 2*time.Second)
		e.sync(t)
		got, err := pricesrm.History(ctx, e.db, btcusd, time.Time{}, time.Time{}, 0)
		must(t, err)
		want := []string{"3", "2.5", "2", "1"}
		if len(got) != len(want) {
			t.Fatalf("history %+v", got)
		}
		for i, w := range want {
			if got[i].Price.String() != w || got[i].Pair != btcusd {
				t.Fatalf("history[%d] = %+v, want price %s", i, got[i], w)
			}
		}
		// [from, to) and limit.
		got, err = pricesrm.History(ctx, e.db, btcusd, t0.Add(2*time.Second), t0.Add(3*time.Second), 0)
		must(t, err)
		if len(got) != 2 || got[0].Price.String() != "2.5" || got[1].Price.String() != "2" {
			t.Fatalf("history in range %+v", got)
		}
		got, err = pricesrm.History(ctx, e.db, btcusd, time.Time{}, time.Time{}, 1)
		must(t, err)
		if len(got) != 1 || got[0].Price.String() != "3" {
			t.Fatalf("history limit 1 %+v", got)
		}
		if _, err := pricesrm.History(ctx, e.db, btcusd, t0, t0, 0); !errors.Is(err, pricesrm.ErrInvalidQuery) {
			t.Fatalf("empty range: %v", err)
		}
	})
}

func TestOHLC(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		// Minute 0: 10, 12.5, 9.75, 11 ; minute 1: nothing ; minute 2: 20.000000000000000001, 19
		e.tick(t, btcusd, "a", "10", 0*time.Second, "12.5", 15*time.Second, "9.75", 30*time.Second, "11", 59*time.Second)
		e.tick(t, btcusd, "a", "20.000000000000000001", 2*time.Minute+1*time.Second, "19", 2*time.Minute+2*time.Second)
		e.tick(t, btcusd, "b", "18", 2*time.Minute+2*time.Second) // same time, later: the close
		e.tick(t, btcusd, "a", "1000", 3*time.Minute)             // outside [from, to)
		e.tick(t, ethusd, "a", "1", 30*time.Second)
		e.sync(t)
		got, err := pricesrm.OHLC(ctx, e.db, btcusd, t0, t0.Add(3*time.Minute), time.Minute)
		must(t, err)
		want := []struct {
			start                  time.Time
			open, high, low, close string
			n                      int
		}{
			{t0, "10", "12.5", "9.75", "11", 4},
			{t0.Add(2 * time.Minute), "20.000000000000000001", "20.000000000000000001", "18", "18", 3},
		}
		if len(got) != len(want) {
			t.Fatalf("candles %+v", got)
		}
		for i, w := range want {
			g := got[i]
			if !g.Start.Equal(w.start) || g.Open.String() != w.open || g.High.String() != w.high || g.Low.String() != w.low ||
				g.Close.String() != w.close || g.Ticks != w.n {
				t.Errorf("candle %d = {%s %s %s %s %s %d}, want %+v", i, g.Start, g.Open, g.High, g.Low, g.Close, g.Ticks, w)
			}
		}
		// Buckets align to the epoch, not to from.
		got, err = pricesrm.OHLC(ctx, e.db, btcusd, t0.Add(20*time.Second), t0.Add(3*time.Minute), time.Hour)
		must(t, err)
		if len(got) != 1 || !got[0].Start.Equal(t0) || got[0].Open.String() != "9.75" || got[0].Ticks != 5 {
			t.Fatalf("hour candle %+v", got)
		}
		for _, bad := range []struct {
			from, to time.Time
			bucket   time.Duration
			err      error
		}{
			{t0, t0.Add(time.Hour), 0, pricesrm.ErrInvalidQuery},
			{t0, t0.Add(time.Hour), time.Nanosecond, pricesrm.ErrInvalidQuery},
			{time.Time{}, t0, time.Minute, pricesrm.ErrInvalidQuery},
			{t0, t0, time.Minute, pricesrm.ErrInvalidQuery},
			{t0, t0.Add(365 * 24 * time.Hour), time.Second, pricesrm.ErrTooManyTicks},
		} {
			if _, err := pricesrm.OHLC(ctx, e.db, btcusd, bad.from, bad.to, bad.bucket); !errors.Is(err, bad.err) {
				t.Errorf("OHLC(%s, %s, %s): %v, want %v", bad.from, bad.to, bad.bucket, err, bad.err)
			}
		}
	})
}

func TestFold(t *testing.T) {
	p := prices.MustParse
	ticks := []pricesrm.Tick{
		{Price: p("5"), At: t0.Add(-time.Second)}, // before the epoch-aligned bucket of t0
		{Price: p("7"), At: t0},
		{Price: p("6"), At: t0.Add(time.Second)},
	}
	got := pricesrm.Fold(ticks, 10*time.Second)
	if len(got) != 2 || !got[0].Start.Equal(t0.Add(-10*time.Second)) || got[0].Ticks != 1 ||
		got[1].Open != p("7") || got[1].Close != p("6") || got[1].High != p("7") || got[1].Low != p("6") {
		t.Fatalf("fold %+v", got)
	}
	// Before 1970: floor division, not truncation.
	old := time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)
	got = pricesrm.Fold([]pricesrm.Tick{{Price: p("1"), At: old}}, time.Minute)
	if !got[0].Start.Equal(time.Date(1969, 12, 31, 23, 59, 0, 0, time.UTC)) {
		t.Fatalf("pre-epoch bucket starts %s", got[0].Start)
	}
}

func TestTooManyTicks(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		const limit = 50
		var ticks []any
		for i := range limit + 1 {
			ticks = append(ticks, "1", time.Duration(i)*time.Second)
		}
		e.tick(t, btcusd, "a", ticks...)
		e.sync(t)
		_, err := pricesrm.OHLCLimited(ctx, e.db, btcusd, t0, t0.Add(time.Hour), time.Minute, limit)
		if !errors.Is(err, pricesrm.ErrTooManyTicks) {
			t.Fatalf("OHLC over %d ticks with limit %d: %v, want ErrTooManyTicks", limit+1, limit, err)
		}
		got, err := pricesrm.OHLCLimited(ctx, e.db, btcusd, t0, t0.Add(limit*time.Second), time.Minute, limit)
		must(t, err)
		if len(got) != 1 || got[0].Ticks != limit {
			t.Fatalf("%d ticks under the limit: %+v", limit, got)
		}
	})
}
