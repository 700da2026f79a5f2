package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	rmsqlite "github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/test/background"
)

// feed hands f the events after position after that it wants, in order,
// as the Runner would, and returns the last position read.
func feed(tb testing.TB, f *outbox.Follower, store eventstore.Store, after uint64) uint64 {
	tb.Helper()
	events, err := store.ReadAll(context.Background(), after, 10_000)
	must(tb, err)
	for _, e := range events {
		if f.Wants(e) {
			must(tb, f.Handle(context.Background(), e))
		}
		after = e.Position
	}
	return after
}

func snapshot(tb testing.TB, f *outbox.Follower) []byte {
	tb.Helper()
	b, err := f.Snapshot()
	must(tb, err)
	return b
}

// appendAttempt records a failed attempt of delivery id at revision rev,
// with the next one due at next.
func appendAttempt(tb testing.TB, store eventstore.Store, id string, rev uint64, next time.Time) {
	tb.Helper()
	codec := eventstore.NewCodecOf(outbox.Events()...)
	data, err := codec.Encode(eventstore.Metadata{Actor: "test"}, []outbox.Event{
		outbox.Attempted{DeliveryID: id, Attempt: 1, Error: "421", At: t0, NextAttempt: next}})
	must(tb, err)
	_, err = store.Append(context.Background(), outbox.StreamPrefix+id, eventstore.ExpectRevision(rev), data...)
	must(tb, err)
}

func TestFollowerWants(t *testing.T) {
	f := outbox.New(outbox.Config{Store: sqlitetest.Open(t)}).Follower()
	for _, tc := range []struct {
		stream, typ string
		want        bool
	}{
		{"alert-a1", alerts.TypeAlertTriggered, true},
		{"alert-a1", alerts.TypeAlertCreated, false},
		{"wallet-w1", alerts.TypeAlertTriggered, false},
		{"delivery-a1.1.email", outbox.TypeQueued, true},
		{"delivery-a1.1.email", outbox.TypeRedeliveryRequested, true},
		{"delivery-a1.1.email", "other.thing", false},
		{"wallet-w1", outbox.TypeDelivered, false},
	} {
		if got := f.Wants(eventstore.Event{Stream: tc.stream, Type: tc.typ}); got != tc.want {
			t.Errorf("Wants(%s %s) = %v, want %v", tc.stream, tc.typ, got, tc.want)
		}
	}
	if f.Name() != outbox.FollowerName || f.Name() != "outbox" {
		t.Errorf("name %q", f.Name())
	}
	var _ projections.SideEffecting = f
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com", Webhook: "https://hooks.example.com/x"})
	s.create(t, "a2", "bob", alerts.Channels{Email: "bob@example.com"})
	s.fire(t, "a1", "64001")
	f := outbox.New(outbox.Config{Store: store}).Follower()
	empty := snapshot(t, f)
	pos := feed(t, f, store, 0)  // the firing: both deliveries queued
	pos = feed(t, f, store, pos) // their queued events: pending
	appendAttempt(t, store, "a1.1.email", 1, t0.Add(time.Hour))
	s.fire(t, "a2", "64002")
	pos = feed(t, f, store, pos) // the attempt, and a2's firing: queued, not read yet
	snap := snapshot(t, f)
	t.Logf("snapshot of 2 pending deliveries (one due later) and 1 awaited: %d bytes", len(snap))
	if bytes.Equal(snap, empty) {
		t.Fatal("the snapshot is the empty state's")
	}

	g := outbox.New(outbox.Config{Store: store}).Follower()
	must(t, g.Restore(snap))
	if got := snapshot(t, g); !bytes.Equal(got, snap) {
		t.Fatalf("restored snapshot %x, want %x", got, snap)
	}
	// Both go on alike from there: the restored state is the state.
	head := feed(t, f, store, pos)
	if feed(t, g, store, pos) != head {
		t.Fatal("the log moved")
	}
	if a, b := snapshot(t, f), snapshot(t, g); !bytes.Equal(a, b) || bytes.Equal(a, snap) {
		t.Fatalf("after the tail: original %x, restored %x (snapshot was %x)", a, b, snap)
	}
	if h, err := store.Head(context.Background()); err != nil || h != head {
		t.Fatalf("feeding the tail twice appended: head %d, was %d (%v)", h, head, err)
	}

	// A malformed snapshot is refused and changes nothing; nil empties.
	before := snapshot(t, g)
	for _, bad := range [][]byte{{0xff}, append(slices.Clone(snap), 0), snap[:len(snap)-1]} {
		if err := g.Restore(bad); err == nil {
			t.Errorf("Restore(%x) succeeded", bad)
		}
	}
	if got := snapshot(t, g); !bytes.Equal(got, before) {
		t.Fatal("a refused snapshot changed the state")
	}
	must(t, g.Restore(nil))
	if got := snapshot(t, g); !bytes.Equal(got, empty) {
		t.Fatalf("Restore(nil): %x, want the empty state %x", got, empty)
	}
}

// refusing is a store whose appends fail with the error refuse returns
// for the stream (nil: the append goes through).
type refusing struct {
	eventstore.Store
	mu     sync.Mutex
	refuse func(stream string) error
}

func (r *refusing) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	r.mu.Lock()
	refuse := r.refuse
	r.mu.Unlock()
	if refuse != nil {
		if err := refuse(stream); err != nil {
			return eventstore.AppendResult{}, fmt.Errorf("append %s: %w", stream, err)
		}
	}
	return r.Store.Append(ctx, stream, expected, events...)
}

func (r *refusing) set(refuse func(stream string) error) {
	r.mu.Lock()
	r.refuse = refuse
	r.mu.Unlock()
}

func TestHandleRefusedAppend(t *testing.T) {
	ctx := context.Background()
	errBusy := errors.New("database is locked")
	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"busy", errBusy, true},
		{"closed", eventstore.ErrClosed, false},
		{"failed", eventstore.ErrStoreFailed, false},
		{"invalid", eventstore.ErrInvalidEvent, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := sqlitetest.Open(t)
			store := &refusing{Store: base}
			s := newAlertStreams(base)
			s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com", Webhook: "https://hooks.example.com/x"})
			s.fire(t, "a1", "64001")
			events, err := base.ReadAll(ctx, 0, 100)
			must(t, err)
			firing := events[len(events)-1]
			f := outbox.New(outbox.Config{Store: store}).Follower()
			before := snapshot(t, f)

			// The webhook's append is refused after the email's went
			// through: the state is unchanged all the same.
			store.set(func(stream string) error {
				if strings.HasSuffix(stream, ".webhook") {
					return tc.err
				}
				return nil
			})
			err = f.Handle(ctx, firing)
			if err == nil || !errors.Is(err, tc.err) || projections.Transient(err) != tc.transient ||
				errors.Is(err, projections.ErrTransient) != tc.transient {
				t.Fatalf("Handle: %v; want %v, transient %v", err, tc.err, tc.transient)
			}
			if got := snapshot(t, f); !bytes.Equal(got, before) {
				t.Fatal("a failed Handle changed the state")
			}

			// Called again (the Runner's retry), it queues each delivery once.
			store.set(nil)
			must(t, f.Handle(ctx, firing))
			for _, id := range []string{"a1.1.email", "a1.1.webhook"} {
				got, err := base.ReadStream(ctx, outbox.StreamPrefix+id, 0, 10)
				must(t, err)
				if len(got) != 1 || got[0].Type != outbox.TypeQueued {
					t.Fatalf("stream of %s: %d events", id, len(got))
				}
			}
			if bytes.Equal(snapshot(t, f), before) {
				t.Fatal("the queued deliveries are not in the state")
			}
		})
	}
}

// watching is a store that reports every read of a delivery stream.
type watching struct {
	eventstore.Store
	reads chan string
}

func (w *watching) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	if strings.HasPrefix(stream, outbox.StreamPrefix) {
		select {
		case w.reads <- stream:
		default:
		}
	}
	return w.Store.ReadStream(ctx, stream, from, limit)
}

func TestOlderSnapshotSendsNothingAgain(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	s := newAlertStreams(store)
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com"})
	s.fire(t, "a1", "64001")
	f := outbox.New(outbox.Config{Store: store}).Follower()
	pos := feed(t, f, store, 0)
	pos = feed(t, f, store, pos)
	old := snapshot(t, f) // a1.1.email pending

	first := &mailer{}
	n := start(t, outbox.Config{Store: store, Mail: first})
	n.idle(t)
	must(t, n.stop())
	if mails, _ := first.mails(); len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	head, err := store.Head(ctx)
	must(t, err)

	// A notifier resumes from the old snapshot: the delivery looks pending
	// until the follower reads the rest of its stream. The sender reads
	// the stream first and sends nothing.
	w := &watching{Store: store, reads: make(chan string, 1)}
	second := &mailer{}
	n2 := newNotifier(outbox.Config{Store: w, Mail: second})
	must(t, n2.Follower().Restore(old))
	background.Run(t, true, n2.Run)
	select {
	case got := <-w.reads:
		if got != "delivery-a1.1.email" {
			t.Fatalf("read %s", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the sender did not look at the pending delivery")
	}
	feed(t, n2.Follower(), store, pos)
	ctx2, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	must(t, n2.WaitIdle(ctx2))
	if _, calls := second.mails(); calls != 0 {
		t.Fatalf("resuming from an older snapshot sent %d mails", calls)
	}
	if h, _ := store.Head(ctx); h != head {
		t.Fatalf("resuming from an older snapshot appended %d events", h-head)
	}
}

// counting sends email and webhooks, counting each delivery's sends by
// its id; it refuses (for now) the deliveries to the addresses in refuse.
type counting struct {
	mu     sync.Mutex
	sent   map[string]int // by delivery id
	tries  map[string]int
	refuse map[string]bool
}

func newCounting() *counting {
	return &counting{sent: map[string]int{}, tries: map[string]int{}, refuse: map[string]bool{}}
}

func (c *counting) send(id, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries[id]++
	if c.refuse[to] {
		return errSMTP
	}
	c.sent[id]++
	return nil
}

func (c *counting) SendMail(_ context.Context, m outbox.Mail) error {
	id, _, _ := strings.Cut(strings.Trim(m.MessageID, "<>"), "@")
	return c.send(id, m.To)
}

func (c *counting) PostWebhook(_ context.Context, w outbox.Webhook) (int, error) {
	if err := c.send(w.DeliveryID, w.URL); err != nil {
		return 0, err
	}
	return 200, nil
}

func (c *counting) counts() (sent, tries map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.sent), maps.Clone(c.tries)
}

func (c *counting) allow(to string) {
	c.mu.Lock()
	delete(c.refuse, to)
	c.mu.Unlock()
}

// handleCounter is the notifier's Follower, recording the position of
// every event the Runner hands it.
type handleCounter struct {
	*outbox.Follower
	mu      sync.Mutex
	handled []uint64
}

func (h *handleCounter) Handle(ctx context.Context, e eventstore.Event) error {
	h.mu.Lock()
	h.handled = append(h.handled, e.Position)
	h.mu.Unlock()
	return h.Follower.Handle(ctx, e)
}

func (h *handleCounter) positions() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.handled)
}

// eventually waits up to 30 s for cond.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestResumesFromSnapshotAndSendsNothingTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func() (*sqlite.Store, *rmsqlite.DB) {
		store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
		must(t, err)
		db, err := rmsqlite.Open(ctx, filepath.Join(dir, "read.db"))
		must(t, err)
		return store, db
	}
	c := newCounting()
	c.refuse["carol@example.com"] = true
	hourly := func(failed int) (time.Duration, bool) { return time.Hour, failed < 3 }
	cfg := func(store eventstore.Store, clock func() time.Time) outbox.Config {
		return outbox.Config{Store: store, Mail: c, Hooks: c, Backoff: hourly, Clock: clock}
	}

	// First run: three deliveries sent, one (carol's) failed and due again
	// in an hour when the notifier stops.
	store, db := open()
	s := newAlertStreams(store)
	n := newNotifier(cfg(store, clock()))
	fc := &handleCounter{Follower: n.Follower()}
	r := run(t, store, n, db, fc)
	s.create(t, "a1", "alice", alerts.Channels{Email: "alice@example.com", Webhook: "https://hooks.example.com/a"})
	s.create(t, "a2", "bob", alerts.Channels{Email: "bob@example.com"})
	s.create(t, "a3", "carol", alerts.Channels{Email: "carol@example.com"})
	s.fire(t, "a1", "64001")
	s.fire(t, "a2", "64001")
	s.fire(t, "a3", "64001")
	eventually(t, "three sends and carol's attempt recorded", func() bool {
		sent, _ := c.counts()
		ds, err := n.Deliveries(ctx, "a3")
		return err == nil && len(sent) == 3 && len(ds) == 1 && len(ds[0].Attempts) == 1
	})
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	must(t, r.runner.CaughtUp(waitCtx, outbox.FollowerName))
	must(t, r.stop())
	// What the first run handled, up to its stop: the sender may have
	// appended attempts after the catch-up, which the follower had not yet
	// handled and a restart rightly reads.
	if len(fc.positions()) == 0 {
		t.Fatal("the first run handled nothing")
	}
	stopped := slices.Max(fc.positions())
	must(t, db.Close())
	must(t, store.Close())

	// Second run, two hours later: carol's delivery is due; new firings.
	c.allow("carol@example.com")
	store, db = open()
	t.Cleanup(func() { db.Close(); store.Close() })
	s.store = store
	later := clock()
	n = newNotifier(cfg(store, func() time.Time { return later().Add(2 * time.Hour) }))
	fc = &handleCounter{Follower: n.Follower()}
	r = run(t, store, n, db, fc)
	s.fire(t, "a1", "64002")
	s.create(t, "a4", "dave", alerts.Channels{Webhook: "https://hooks.example.com/d"})
	s.fire(t, "a4", "64002")
	r.idle(t)

	sent, tries := c.counts()
	want := []string{"a1.1.email", "a1.1.webhook", "a1.2.email", "a1.2.webhook", "a2.1.email", "a3.1.email", "a4.1.webhook"}
	got := make([]string, 0, len(sent))
	for id, k := range sent {
		got = append(got, id)
		if k != 1 {
			t.Errorf("%s sent %d times", id, k)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
	if tries["a3.1.email"] != 2 {
		t.Errorf("carol's delivery tried %d times, want 2 (refused, then sent after the restart)", tries["a3.1.email"])
	}
	handled := fc.positions()
	if len(handled) == 0 {
		t.Fatal("the second run handled nothing")
	}
	if first := slices.Min(handled); first <= stopped {
		t.Errorf("after the restart the follower re-read position %d (the first run had handled up to %d)", first, stopped)
	}
	t.Logf("first run handled up to %d; the second handled %d events from %d", stopped, len(handled), slices.Min(handled))
}
