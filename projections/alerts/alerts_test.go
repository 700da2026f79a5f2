package alerts_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	alertsrm "github.com/coinledger/coinledger/projections/alerts"
	"github.com/coinledger/coinledger/projections/dbtest"
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

// env drives alert streams with the real decider and keeps the read model
// current.
type env struct {
	store  eventstore.Store
	db     projections.DB
	runner *projections.Runner
	codec  *eventstore.Codec[alerts.Event]
	states map[alerts.ID]*alerts.Alert
	last   uint64
}

func newEnv(t *testing.T, open dbtest.NewDB) *env {
	t.Helper()
	store := sqlitetest.Open(t)
	db := open(t)
	r := projections.NewRunner(db, store, projections.Options{}, alertsrm.New())
	background.Run(t, true, r.Run)
	return &env{store: store, db: db, runner: r, codec: eventstore.NewCodecOf(alerts.Events()...), states: map[alerts.ID]*alerts.Alert{}}
}

func (e *env) do(tb testing.TB, id alerts.ID, c alerts.Command) {
	tb.Helper()
	a := e.states[id]
	if a == nil {
		a = alerts.New()
		e.states[id] = a
	}
	next := uint64(0)
	if a.Exists() {
		events, err := e.store.ReadStream(context.Background(), id.Stream(), 0, 1000)
		must(tb, err)
		next = uint64(len(events))
	}
	events, err := alerts.Execute(a, c)
	must(tb, err)
	if len(events) == 0 {
		tb.Fatalf("%s: %T decided nothing", id, c)
	}
	data, err := e.codec.Encode(eventstore.Metadata{Actor: "test"}, events)
	must(tb, err)
	res, err := e.store.Append(context.Background(), id.Stream(), eventstore.ExpectRevision(next), data...)
	must(tb, err)
	e.last = res.Position
}

func (e *env) sync(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(tb, e.runner.WaitFor(ctx, "alerts", e.last))
}

func create(id alerts.ID, owner, target string, rearm *alerts.Rearm) alerts.Create {
	return alerts.Create{ID: id, Owner: owner, Pair: btcusd, Direction: alerts.Above, Target: prices.MustParse(target),
		Channels: alerts.Channels{Email: owner + "@example.com"}, Rearm: rearm, At: t0}
}

func TestLifecycle(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		rearm := &alerts.Rearm{Hysteresis: prices.MustParse("100"), Cooldown: time.Minute}
		e.do(t, "a1", create("a1", "alice", "64000", rearm))
		e.sync(t)
		a, err := alertsrm.Get(ctx, e.db, "alice", "a1")
		must(t, err)
		if a.Status != alerts.StatusCreated || a.Owner != "alice" || a.Pair != btcusd || a.Direction != alerts.Above ||
			a.Target != prices.MustParse("64000") || a.Channels.Email != "alice@example.com" || a.Rearm == nil ||
			*a.Rearm != *rearm || !a.CreatedAt.Equal(t0) || a.Fired != 0 || !a.TriggeredAt.IsZero() || !a.TriggerPrice.IsZero() ||
			a.Position != e.last || a.CreatedPosition != e.last {
			t.Fatalf("created: %+v", a)
		}

		at := t0.Add(time.Minute)
		e.do(t, "a1", alerts.Trigger{Price: prices.MustParse("64123.45"), TickPosition: 100, At: at})
		e.sync(t)
		a, err = alertsrm.Get(ctx, e.db, "alice", "a1")
		must(t, err)
		if a.Status != alerts.StatusTriggered || a.TriggerPrice.String() != "64123.45" || !a.TriggeredAt.Equal(at) ||
			a.TickPosition != 100 || a.Fired != 1 || a.Position != e.last {
			t.Fatalf("triggered: %+v", a)
		}

		e.do(t, "a1", alerts.Trigger{Price: prices.MustParse("63000"), TickPosition: 200, At: at.Add(time.Hour)})
		e.sync(t)
		a, err = alertsrm.Get(ctx, e.db, "alice", "a1")
		must(t, err)
		if a.Status != alerts.StatusRearmed || a.TriggerPrice.String() != "64123.45" || a.Fired != 1 {
			t.Fatalf("rearmed: %+v (the trigger price is the last firing's)", a)
		}

		e.do(t, "a1", alerts.Delete{By: "alice", At: at.Add(2 * time.Hour)})
		e.sync(t)
		a, err = alertsrm.Get(ctx, e.db, "alice", "a1")
		must(t, err)
		if a.Status != alerts.StatusDeleted || !a.DeletedAt.Equal(at.Add(2*time.Hour)) {
			t.Fatalf("deleted: %+v", a)
		}
	})
}

func TestOwnerScoped(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		e := newEnv(t, open)
		e.do(t, "a1", create("a1", "alice", "1", nil))
		e.do(t, "a2", create("a2", "alice", "2", nil))
		e.do(t, "b1", create("b1", "bob", "3", nil))
		e.do(t, "a1", alerts.Trigger{Price: prices.MustParse("5"), TickPosition: 50, At: t0})
		e.sync(t)

		list, err := alertsrm.List(ctx, e.db, "alice", "")
		must(t, err)
		if len(list) != 2 || list[0].ID != "a2" || list[1].ID != "a1" {
			t.Fatalf("alice's alerts: %+v", list)
		}
		if list[1].Rearm != nil {
			t.Fatalf("one-shot alert with rearm %+v", list[1].Rearm)
		}
		list, err = alertsrm.List(ctx, e.db, "alice", "triggered")
		must(t, err)
		if len(list) != 1 || list[0].ID != "a1" {
			t.Fatalf("alice's triggered alerts: %+v", list)
		}
		list, err = alertsrm.List(ctx, e.db, "bob", "")
		must(t, err)
		if len(list) != 1 || list[0].ID != "b1" {
			t.Fatalf("bob's alerts: %+v", list)
		}
		for _, owner := range []string{"mallory", "", "ALICE", "alice "} {
			list, err = alertsrm.List(ctx, e.db, owner, "")
			must(t, err)
			if len(list) != 0 {
				t.Fatalf("%q lists %+v", owner, list)
			}
		}
		if _, err := alertsrm.List(ctx, e.db, "alice", "bogus"); !errors.Is(err, alerts.ErrValidation) {
			t.Fatalf("unknown status: %v", err)
		}

		// Someone else's alert reads exactly like a missing one.
		_, errOther := alertsrm.Get(ctx, e.db, "bob", "a1")
		_, errMissing := alertsrm.Get(ctx, e.db, "bob", "zz")
		if !errors.Is(errOther, alertsrm.ErrNotFound) || !errors.Is(errMissing, alerts.ErrNotFound) {
			t.Fatalf("other's alert: %v; missing alert: %v; want ErrNotFound", errOther, errMissing)
		}
		if errOther.Error() != errMissing.Error() {
			t.Fatalf("other's alert %q and missing alert %q answer differently", errOther, errMissing)
		}
		if _, err := alertsrm.Get(ctx, e.db, "", "a1"); !errors.Is(err, alertsrm.ErrNotFound) {
			t.Fatalf("empty owner: %v", err)
		}
	})
}
