package alerting_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/app/market"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	projsqlite "github.com/coinledger/coinledger/projections/sqlite"
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

// world is a store with the services that write to it.
type world struct {
	store  eventstore.Store
	market *market.Service
	alerts *alerting.Service
	at     time.Time // time of the next tick
}

func newWorld(tb testing.TB, store eventstore.Store) *world {
	tb.Helper()
	m := market.New(store, nil)
	tb.Cleanup(m.Close)
	return &world{store: store, market: m, alerts: alerting.New(store, alerting.Config{Email: true}), at: t0}
}

// tick records price for pair 10 seconds after the previous tick and
// returns its position.
func (w *world) tick(tb testing.TB, pair prices.Pair, price string) uint64 {
	tb.Helper()
	w.at = w.at.Add(10 * time.Second)
	return w.tickAt(tb, pair, price, w.at)
}

func (w *world) tickAt(tb testing.TB, pair prices.Pair, price string, at time.Time) uint64 {
	tb.Helper()
	res, err := w.market.Record(context.Background(), eventstore.Metadata{Actor: "feed"}, pair,
		prices.RecordTick{Source: "test", Price: prices.MustParse(price), At: at})
	must(tb, err)
	if !res.Recorded {
		tb.Fatalf("tick %s %s at %s not recorded", pair, price, at)
	}
	return res.Position
}

func (w *world) create(tb testing.TB, c alerts.Create) alerts.ID {
	tb.Helper()
	id, _, err := w.alerts.Create(context.Background(), eventstore.Metadata{Actor: c.Owner}, c)
	must(tb, err)
	return id
}

func above(owner, target string) alerts.Create {
	return alerts.Create{Owner: owner, Pair: btcusd, Direction: alerts.Above, Target: prices.MustParse(target),
		Channels: alerts.Channels{Email: owner + "@example.com"}}
}

func (w *world) head(tb testing.TB) uint64 {
	tb.Helper()
	h, err := w.store.Head(context.Background())
	must(tb, err)
	return h
}

// running is an engine followed by a projections.Runner in the background.
type running struct {
	*alerting.Engine
	runner  *projections.Runner
	handled *atomic.Int64 // events handed to the engine
	logs    *syncBuffer
	stop    func() error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// openDB opens a SQLite read-model database at path (a fresh one in a
// temporary directory for ""), closed when tb ends.
func openDB(tb testing.TB, path string) *projsqlite.DB {
	tb.Helper()
	if path == "" {
		path = filepath.Join(tb.TempDir(), "read.db")
	}
	db, err := projsqlite.Open(context.Background(), path)
	must(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

// start runs a new engine over store under a runner with a fresh read-model
// database until the test ends or stop is called.
func start(tb testing.TB, store eventstore.Store) *running {
	tb.Helper()
	return startOn(tb, store, openDB(tb, ""), projections.Options{})
}

// startOn runs a new engine over store under a runner on db with opts
// (retries a few milliseconds apart unless set) until the test ends or
// stop is called; stop returns the runner's error.
func startOn(tb testing.TB, store eventstore.Store, db projections.DB, opts projections.Options) *running {
	tb.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	e := alerting.NewEngine(store, logger)
	if opts.RetryMin == 0 {
		opts.RetryMin, opts.RetryMax = time.Millisecond, 5*time.Millisecond
	}
	opts.Logger = logger
	c := &counted{Engine: e}
	r := projections.NewRunner(db, store, opts, projections.Follow(c))
	stop := background.Run(tb, true, r.Run)
	return &running{Engine: e, runner: r, handled: &c.n, logs: logs, stop: stop}
}

// counted is an engine that counts the events handed to it.
type counted struct {
	*alerting.Engine
	n atomic.Int64
}

func (c *counted) Handle(ctx context.Context, e eventstore.Event) error {
	c.n.Add(1)
	return c.Engine.Handle(ctx, e)
}

// sync waits until the engine has handled the store's head.
func (r *running) sync(tb testing.TB, w *world) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(tb, r.runner.WaitFor(ctx, alerting.EngineName, w.head(tb)))
}

// status returns the engine's status in its runner.
func (r *running) status(tb testing.TB) projections.Status {
	tb.Helper()
	st, err := r.runner.Status(context.Background())
	must(tb, err)
	for _, s := range st {
		if s.Name == alerting.EngineName {
			return s
		}
	}
	tb.Fatalf("no %s in %+v", alerting.EngineName, st)
	return projections.Status{}
}

// fired returns the AlertTriggered and AlertRearmed events of alert id,
// with their stream events.
func fired(tb testing.TB, store eventstore.Store, id alerts.ID) (triggered []alerts.AlertTriggered, rearmed []alerts.AlertRearmed) {
	tb.Helper()
	events, err := store.ReadStream(context.Background(), id.Stream(), 0, 10000)
	must(tb, err)
	codec := eventstore.NewCodecOf(alerts.Events()...)
	for _, e := range events {
		d, err := codec.Decode(e)
		must(tb, err)
		switch d := d.(type) {
		case alerts.AlertTriggered:
			triggered = append(triggered, d)
		case alerts.AlertRearmed:
			rearmed = append(rearmed, d)
		}
	}
	return triggered, rearmed
}
