package outbox_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	rmsqlite "github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/test/background"
)

var (
	btcusd = prices.MustPair("BTC-USD")
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// mailer records mail; it fails the next failNext calls with err.
type mailer struct {
	mu       sync.Mutex
	sent     []outbox.Mail
	calls    int
	failNext int // -1: fail every call
	err      error
}

var errSMTP = errors.New("421 service not available")

func (m *mailer) SendMail(_ context.Context, mail outbox.Mail) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.failNext != 0 {
		if m.failNext > 0 {
			m.failNext--
		}
		return m.err
	}
	m.sent = append(m.sent, mail)
	return nil
}

func (m *mailer) fail(n int, err error) {
	m.mu.Lock()
	m.failNext, m.err = n, err
	m.mu.Unlock()
}

func (m *mailer) mails() ([]outbox.Mail, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]outbox.Mail(nil), m.sent...), m.calls
}

// poster records webhooks and answers with the statuses queued in
// answers, then 200.
type poster struct {
	mu      sync.Mutex
	posted  []outbox.Webhook
	answers []int
}

func (p *poster) PostWebhook(_ context.Context, w outbox.Webhook) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posted = append(p.posted, w)
	if len(p.answers) > 0 {
		s := p.answers[0]
		p.answers = p.answers[1:]
		return s, nil
	}
	return 200, nil
}

func (p *poster) webhooks() []outbox.Webhook {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Webhook(nil), p.posted...)
}

// clock runs from t0 at the pace of the real one.
func clock() func() time.Time {
	start := time.Now()
	return func() time.Time { return t0.Add(time.Since(start)) }
}

// fast retries after a millisecond, max attempts in all.
func fast(max int) func(int) (time.Duration, bool) {
	return func(failed int) (time.Duration, bool) { return time.Millisecond, failed < max }
}

// alertStreams writes alert streams with the real decider.
type alertStreams struct {
	store  eventstore.Store
	codec  *eventstore.Codec[alerts.Event]
	states map[alerts.ID]*alerts.Alert
	next   map[alerts.ID]uint64
	tick   uint64
}

func newAlertStreams(store eventstore.Store) *alertStreams {
	return &alertStreams{store: store, codec: eventstore.NewCodecOf(alerts.Events()...),
		states: map[alerts.ID]*alerts.Alert{}, next: map[alerts.ID]uint64{}}
}

func (s *alertStreams) do(tb testing.TB, id alerts.ID, c alerts.Command) []alerts.Event {
	tb.Helper()
	a := s.states[id]
	if a == nil {
		a = alerts.New()
		s.states[id] = a
	}
	events, err := alerts.Execute(a, c)
	must(tb, err)
	if len(events) == 0 {
		return nil
	}
	data, err := s.codec.Encode(eventstore.Metadata{Actor: "test"}, events)
	must(tb, err)
	res, err := s.store.Append(context.Background(), id.Stream(), eventstore.ExpectRevision(s.next[id]), data...)
	must(tb, err)
	s.next[id] = res.NextRevision
	return events
}

// create makes a rearming alert (so that it can fire again) above target.
func (s *alertStreams) create(tb testing.TB, id alerts.ID, owner string, ch alerts.Channels) {
	tb.Helper()
	s.do(tb, id, alerts.Create{ID: id, Owner: owner, Pair: btcusd, Direction: alerts.Above, Target: prices.MustParse("64000"),
		Channels: ch, Rearm: &alerts.Rearm{Hysteresis: prices.MustParse("1")}, At: t0})
}

// fire triggers alert id at price (re-arming it first if it has fired)
// and returns the AlertTriggered.
func (s *alertStreams) fire(tb testing.TB, id alerts.ID, price string) alerts.AlertTriggered {
	tb.Helper()
	if s.states[id].Status == alerts.StatusTriggered {
		s.tick++
		s.do(tb, id, alerts.Trigger{Price: prices.MustParse("1"), TickPosition: s.tick, At: t0.Add(time.Duration(s.tick) * time.Minute)})
	}
	s.tick++
	events := s.do(tb, id, alerts.Trigger{Price: prices.MustParse(price), TickPosition: s.tick, At: t0.Add(time.Duration(s.tick) * time.Minute)})
	if len(events) != 1 {
		tb.Fatalf("fire %s: %v", id, events)
	}
	return events[0].(alerts.AlertTriggered)
}

// running is a notifier running in the background: its Follower under a
// projection runner, and its sender.
type running struct {
	*outbox.Notifier
	runner *projections.Runner
	stop   func() error
}

// start runs a notifier on cfg with a fresh read-model database: its
// Follower reads the log from the start.
func start(tb testing.TB, cfg outbox.Config) *running {
	tb.Helper()
	n := newNotifier(cfg)
	return run(tb, cfg.Store, n, openDB(tb, filepath.Join(tb.TempDir(), "read.db")), n.Follower())
}

func newNotifier(cfg outbox.Config) *outbox.Notifier {
	if cfg.Clock == nil {
		cfg.Clock = clock()
	}
	return outbox.New(cfg)
}

// run runs n's sender and a runner over db and store (n's) with f, n's
// Follower or a wrapper of it.
func run(tb testing.TB, store eventstore.Store, n *outbox.Notifier, db projections.DB, f projections.Follower) *running {
	tb.Helper()
	r := projections.NewRunner(db, store, projections.Options{RetryMin: time.Millisecond, RetryMax: 50 * time.Millisecond},
		projections.Follow(f))
	stopRunner := background.Run(tb, true, r.Run)
	stopSender := background.Run(tb, true, n.Run)
	return &running{Notifier: n, runner: r, stop: func() error {
		return errors.Join(stopSender(), stopRunner())
	}}
}

// openDB opens a read-model database at path, closed when tb ends.
func openDB(tb testing.TB, path string) *rmsqlite.DB {
	tb.Helper()
	db, err := rmsqlite.Open(context.Background(), path)
	must(tb, err)
	tb.Cleanup(func() { db.Close() })
	return db
}

// idle waits until the Follower has read the log up to its head and the
// notifier has nothing left to do.
func (r *running) idle(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(tb, r.runner.CaughtUp(ctx, outbox.FollowerName))
	must(tb, r.WaitIdle(ctx))
}

func deliveries(tb testing.TB, n *outbox.Notifier, id alerts.ID) []outbox.Delivery {
	tb.Helper()
	ds, err := n.Deliveries(context.Background(), string(id))
	must(tb, err)
	return ds
}
