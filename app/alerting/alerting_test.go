package alerting_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
)

func TestCreate(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	svc := alerting.New(store, alerting.Config{Email: true})
	id, pos, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, above("alice", "64000"))
	must(t, err)
	if !id.Valid() || pos == 0 {
		t.Fatalf("created %q at %d", id, pos)
	}
	id2, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "alice"}, above("alice", "64000"))
	must(t, err)
	if id2 == id {
		t.Fatal("two creates got the same random id")
	}
	events, err := store.ReadStream(ctx, id.Stream(), 0, 10)
	must(t, err)
	if len(events) != 1 || events[0].Type != alerts.TypeAlertCreated || events[0].Position != pos {
		t.Fatalf("stream %v", events)
	}

	// The stream must not exist.
	c := above("bob", "1")
	c.ID = id
	if _, _, err := svc.Create(ctx, eventstore.Metadata{}, c); !errors.Is(err, alerts.ErrExists) {
		t.Fatalf("create over an existing alert: %v, want ErrExists", err)
	}
	bad := above("alice", "0")
	if _, _, err := svc.Create(ctx, eventstore.Metadata{}, bad); !errors.Is(err, alerts.ErrValidation) {
		t.Fatalf("zero target: %v, want ErrValidation", err)
	}
}

func TestCreateIdempotent(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	svc := alerting.New(store, alerting.Config{Email: true})
	meta := eventstore.Metadata{Actor: "alice", IdempotencyKey: "k1"}
	id, pos, err := svc.Create(ctx, meta, above("alice", "64000"))
	must(t, err)
	again, pos2, err := svc.Create(ctx, meta, above("alice", "64000"))
	must(t, err)
	if again != id || pos2 != pos {
		t.Fatalf("retry answered %s@%d, want the original %s@%d", again, pos2, id, pos)
	}
	if _, _, err := svc.Create(ctx, meta, above("alice", "65000")); !errors.Is(err, alerts.ErrExists) {
		t.Fatalf("key reused for another alert: %v, want ErrExists", err)
	}
	// The key is per owner.
	other, _, err := svc.Create(ctx, eventstore.Metadata{Actor: "bob", IdempotencyKey: "k1"}, above("bob", "64000"))
	must(t, err)
	if other == id {
		t.Fatal("two owners' keys collide")
	}
	if h, _ := store.Head(ctx); h != 2 {
		t.Fatalf("%d events, want 2", h)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	svc := alerting.New(store, alerting.Config{Email: true})
	id, _, err := svc.Create(ctx, eventstore.Metadata{}, above("alice", "64000"))
	must(t, err)

	_, errOther := svc.Delete(ctx, eventstore.Metadata{}, id, "mallory")
	_, errMissing := svc.Delete(ctx, eventstore.Metadata{}, "no-such-alert", "mallory")
	_, errInvalid := svc.Delete(ctx, eventstore.Metadata{}, "../x", "mallory")
	for _, err := range []error{errOther, errMissing, errInvalid} {
		if !errors.Is(err, alerts.ErrNotFound) {
			t.Fatalf("delete: %v, want ErrNotFound", err)
		}
		if err.Error() != errOther.Error() {
			t.Fatalf("someone else's alert (%q) and a missing one (%q) answer differently", errOther, err)
		}
	}
	pos, err := svc.Delete(ctx, eventstore.Metadata{}, id, "alice")
	must(t, err)
	events, err := store.ReadStream(ctx, id.Stream(), 0, 10)
	must(t, err)
	if len(events) != 2 || events[1].Type != alerts.TypeAlertDeleted || events[1].Position != pos {
		t.Fatalf("stream %v, delete at %d", events, pos)
	}
	again, err := svc.Delete(ctx, eventstore.Metadata{}, id, "alice")
	must(t, err)
	if again != pos {
		t.Fatalf("second delete at %d, want %d and no event", again, pos)
	}
}

func TestEngineTriggersOnce(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	eng := start(t, store)
	id := w.create(t, above("alice", "64000"))
	other := w.create(t, alerts.Create{Owner: "bob", Pair: ethusd, Direction: alerts.Above, Target: prices.MustParse("1"),
		Channels: alerts.Channels{Websocket: true}})
	w.tick(t, btcusd, "63999.99")
	crossing := w.tick(t, btcusd, "64100.5")
	crossingAt := w.at
	w.tick(t, btcusd, "64200")
	eng.sync(t, w)

	got, _ := fired(t, store, id)
	if len(got) != 1 {
		t.Fatalf("%d triggers, want 1: %+v", len(got), got)
	}
	tr := got[0]
	if tr.Price != prices.MustParse("64100.5") || tr.Target != prices.MustParse("64000") || tr.TickPosition != crossing ||
		!tr.At.Equal(crossingAt) || tr.Seq != 1 || tr.Owner != "alice" || tr.Channels.Email != "alice@example.com" {
		t.Fatalf("trigger %+v, want the crossing tick's price %s at position %d", tr, "64100.5", crossing)
	}
	if n, _ := fired(t, store, other); len(n) != 0 {
		t.Fatalf("ETH alert fired on BTC ticks: %+v", n)
	}
	if st := eng.status(t); st.State != projections.StateRunning || st.Position != w.head(t) {
		t.Fatalf("engine status %+v after catching up", st)
	}

	// A start over a fresh read-model database (no snapshot) replays the
	// whole log: nothing fires again.
	must(t, eng.stop())
	head := w.head(t)
	eng2 := start(t, store)
	eng2.sync(t, w)
	w.tick(t, btcusd, "65000")
	eng2.sync(t, w)
	if got, _ := fired(t, store, id); len(got) != 1 {
		t.Fatalf("%d triggers after restart, want 1", len(got))
	}
	if h := w.head(t); h != head+1 {
		t.Fatalf("restart appended %d events besides the tick", h-head-1)
	}
}

func TestEngineBelow(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	eng := start(t, store)
	c := above("alice", "60000")
	c.Direction = alerts.Below
	id := w.create(t, c)
	w.tick(t, btcusd, "60000.01")
	at := w.tick(t, btcusd, "60000")
	eng.sync(t, w)
	got, _ := fired(t, store, id)
	if len(got) != 1 || got[0].TickPosition != at || got[0].Price != prices.MustParse("60000") {
		t.Fatalf("triggers %+v", got)
	}
}

func TestEngineHysteresisAndCooldown(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	eng := start(t, store)
	c := above("alice", "64000")
	c.Rearm = &alerts.Rearm{Hysteresis: prices.MustParse("100"), Cooldown: 5 * time.Minute}
	rearming := w.create(t, c)
	oneShot := w.create(t, above("bob", "64000"))

	// Oscillating around the target, within the hysteresis: fires once.
	for _, p := range []string{"64001", "63950", "64002", "63901", "64003", "63999", "64010"} {
		w.tick(t, btcusd, p)
	}
	eng.sync(t, w)
	if got, re := fired(t, store, rearming); len(got) != 1 || len(re) != 0 || got[0].Price != prices.MustParse("64001") {
		t.Fatalf("oscillation: triggers %+v, rearms %+v; want one trigger at 64001", got, re)
	}
	// Beyond the hysteresis but within the cooldown: not re-armed yet.
	w.tick(t, btcusd, "63899")
	w.tick(t, btcusd, "64500")
	eng.sync(t, w)
	if got, re := fired(t, store, rearming); len(got) != 1 || len(re) != 0 {
		t.Fatalf("within cooldown: triggers %+v, rearms %+v", got, re)
	}
	// After the cooldown, beyond the hysteresis: re-armed, then fires again.
	w.at = w.at.Add(10 * time.Minute)
	rearmAt := w.tick(t, btcusd, "63800")
	w.tick(t, btcusd, "63990")
	second := w.tick(t, btcusd, "64000")
	eng.sync(t, w)
	got, re := fired(t, store, rearming)
	if len(re) != 1 || re[0].TickPosition != rearmAt {
		t.Fatalf("rearms %+v, want one at %d", re, rearmAt)
	}
	if len(got) != 2 || got[1].Seq != 2 || got[1].TickPosition != second || got[1].Price != prices.MustParse("64000") {
		t.Fatalf("triggers %+v, want a second one at %d", got, second)
	}
	// The one-shot alert fired once, whatever the price did afterwards.
	if got, re := fired(t, store, oneShot); len(got) != 1 || len(re) != 0 {
		t.Fatalf("one-shot: triggers %+v, rearms %+v", got, re)
	}
	// Replaying all of it changes nothing.
	head := w.head(t)
	must(t, eng.stop())
	start(t, store).sync(t, w)
	if h := w.head(t); h != head {
		t.Fatalf("replay appended %d events", h-head)
	}
}

func TestEngineDeletedNeverFires(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	eng := start(t, store)
	id := w.create(t, above("alice", "64000"))
	_, err := w.alerts.Delete(ctx, eventstore.Metadata{}, id, "alice")
	must(t, err)
	w.tick(t, btcusd, "70000")
	eng.sync(t, w)
	// Deleted while the engine was stopped, after a crossing tick it has
	// not seen yet: the decider still refuses.
	id2 := w.create(t, above("alice", "64000"))
	eng.sync(t, w)
	must(t, eng.stop())
	w.tick(t, btcusd, "71000")
	_, err = w.alerts.Delete(ctx, eventstore.Metadata{}, id2, "alice")
	must(t, err)
	start(t, store).sync(t, w)
	for _, id := range []alerts.ID{id, id2} {
		if got, _ := fired(t, store, id); len(got) != 0 {
			t.Fatalf("deleted alert %s fired: %+v", id, got)
		}
	}
}

func TestEngineOldTickDoesNotFireNewAlert(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	w.tick(t, btcusd, "65000") // crosses, but before the alert exists
	id := w.create(t, above("alice", "64000"))
	eng := start(t, store) // the replay meets the tick before the alert
	eng.sync(t, w)
	if got, _ := fired(t, store, id); len(got) != 0 {
		t.Fatalf("alert fired by a tick older than itself: %+v", got)
	}
	// The same with the engine live.
	id2 := w.create(t, above("bob", "64000"))
	eng.sync(t, w)
	if got, _ := fired(t, store, id2); len(got) != 0 {
		t.Fatalf("live: alert fired by a tick older than itself: %+v", got)
	}
	at := w.tick(t, btcusd, "65001")
	eng.sync(t, w)
	for _, id := range []alerts.ID{id, id2} {
		if got, _ := fired(t, store, id); len(got) != 1 || got[0].TickPosition != at {
			t.Fatalf("%s: triggers %+v, want one at %d", id, got, at)
		}
	}
}

func TestEngineTicksWhileStopped(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	id := w.create(t, above("alice", "64000"))
	w.tick(t, btcusd, "63000")
	crossing := w.tick(t, btcusd, "64321")
	w.tick(t, btcusd, "64500")
	eng := start(t, store)
	eng.sync(t, w)
	got, _ := fired(t, store, id)
	if len(got) != 1 || got[0].TickPosition != crossing || got[0].Price != prices.MustParse("64321") {
		t.Fatalf("triggers %+v, want one at the first crossing tick %d", got, crossing)
	}
}

// flaky fails appends to one stream a number of times.
type flaky struct {
	eventstore.Store
	stream string
	fails  chan struct{} // one token per failure to inject
}

var errFlaky = errors.New("injected append failure")

func (f *flaky) Append(ctx context.Context, stream string, v eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if stream == f.stream {
		select {
		case <-f.fails:
			return eventstore.AppendResult{}, errFlaky
		default:
		}
	}
	return f.Store.Append(ctx, stream, v, events...)
}

func TestEngineErrorsOnOneAlert(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	// Crossed in this order (same target: by creation): the failures come
	// after a trigger that succeeded, which the retries must not repeat.
	fine := w.create(t, above("carol", "64000"))
	retried := w.create(t, above("bob", "64000"))
	broken := w.create(t, above("alice", "64000"))
	f := &flaky{Store: store, stream: broken.Stream(), fails: make(chan struct{}, 100)}
	for range 3 {
		f.fails <- struct{}{}
	}
	f2 := &flaky{Store: f, stream: retried.Stream(), fails: make(chan struct{}, 1)}
	f2.fails <- struct{}{}
	eng := start(t, f2)
	first := w.tick(t, btcusd, "64001")
	eng.sync(t, w)
	// The runner retried the tick until every alert fired, once each.
	for _, id := range []alerts.ID{fine, retried, broken} {
		if got, _ := fired(t, store, id); len(got) != 1 || got[0].TickPosition != first {
			t.Fatalf("%s: triggers %+v, want one at %d", id, got, first)
		}
	}
	if logs := eng.logs.String(); !strings.Contains(logs, "projection retrying") || !strings.Contains(logs, errFlaky.Error()) {
		t.Fatalf("no retry logged:\n%s", logs)
	}
	if st := eng.status(t); st.Failures != 4 {
		t.Fatalf("status %+v, want 4 failures", st)
	}
	if h := w.head(t); h != first+3 {
		t.Fatalf("head %d, want the tick at %d and 3 triggers", h, first)
	}
}

// failed fails appends to one stream as a store that has failed for good.
type failed struct {
	eventstore.Store
	stream string
	broken atomic.Bool
}

func (f *failed) Append(ctx context.Context, stream string, v eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if stream == f.stream && f.broken.Load() {
		return eventstore.AppendResult{}, fmt.Errorf("append %s: %w: injected", stream, eventstore.ErrStoreFailed)
	}
	return f.Store.Append(ctx, stream, v, events...)
}

func TestEngineParksOnPermanentError(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	fine := w.create(t, above("alice", "64000"))
	broken := w.create(t, above("bob", "64000"))
	f := &failed{Store: store, stream: broken.Stream()}
	f.broken.Store(true)
	eng := start(t, f)
	at := w.tick(t, btcusd, "64001")
	// The engine parks at the tick: WaitFor says so at once.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := eng.runner.WaitFor(wctx, alerting.EngineName, at); !errors.Is(err, projections.ErrParked) {
		t.Fatalf("wait for the tick: %v, want ErrParked", err)
	}
	if st := eng.status(t); st.State != projections.StateParked || st.ParkedAt != at ||
		!strings.Contains(st.Error, eventstore.ErrStoreFailed.Error()) {
		t.Fatalf("status %+v, want parked at %d with the store's error", st, at)
	}
	// The store mended, an operator's retry fires each alert once.
	f.broken.Store(false)
	must(t, eng.runner.Retry(alerting.EngineName))
	eng.sync(t, w)
	for _, id := range []alerts.ID{fine, broken} {
		if got, _ := fired(t, store, id); len(got) != 1 || got[0].TickPosition != at {
			t.Fatalf("%s: triggers %+v, want one at %d", id, got, at)
		}
	}
}
