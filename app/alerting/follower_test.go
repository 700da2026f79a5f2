package alerting_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
)

// step is one input of a scenario: a command or a tick written to the log.
type step func(tb testing.TB, w *world)

// createAt creates c under id at t0, so that two runs of a scenario write
// the same events.
func createAt(id alerts.ID, c alerts.Create) step {
	return func(tb testing.TB, w *world) {
		c.ID, c.At = id, t0
		w.create(tb, c)
	}
}

func tickOf(pair prices.Pair, price string) step {
	return func(tb testing.TB, w *world) { w.tick(tb, pair, price) }
}

func pause(d time.Duration) step {
	return func(_ testing.TB, w *world) { w.at = w.at.Add(d) }
}

func deleteBy(id alerts.ID, owner string) step {
	return func(tb testing.TB, w *world) {
		_, err := w.alerts.Delete(context.Background(), eventstore.Metadata{Actor: owner}, id, owner)
		must(tb, err)
	}
}

// scenarioIDs are the alerts the scenario creates.
var scenarioIDs = []alerts.ID{"oneshot", "rearming", "below", "eth", "deleted", "late", "armed"}

// scenario walks alerts through every state: a one-shot alert fires and
// is dropped, a re-arming one fires, waits out its cooldown, re-arms and
// fires again, a deleted one never fires, others fire on their own pair or
// direction, one stays armed.
func scenario() []step {
	rearming := above("bob", "64000")
	rearming.Rearm = &alerts.Rearm{Hysteresis: prices.MustParse("100"), Cooldown: 5 * time.Minute}
	below := above("carol", "60000")
	below.Direction = alerts.Below
	return []step{
		createAt("oneshot", above("alice", "64000")),
		createAt("rearming", rearming),
		createAt("below", below),
		createAt("eth", alerts.Create{Owner: "dave", Pair: ethusd, Direction: alerts.Above,
			Target: prices.MustParse("4000"), Channels: alerts.Channels{Websocket: true}}),
		createAt("deleted", above("erin", "63000")),
		deleteBy("deleted", "erin"),
		tickOf(btcusd, "63950"),
		tickOf(btcusd, "64001"), // oneshot and rearming fire
		tickOf(btcusd, "63850"), // within the cooldown: rearming waits
		pause(10 * time.Minute),
		tickOf(btcusd, "63800"), // rearming re-arms
		createAt("late", above("frank", "64500")),
		tickOf(btcusd, "64000"), // rearming fires again
		tickOf(btcusd, "64600"), // late fires
		tickOf(btcusd, "59999"), // below fires
		tickOf(ethusd, "4001"),  // eth fires
		createAt("armed", above("grace", "70000")),
		tickOf(btcusd, "65000"),
	}
}

// feeder hands an engine the events of a store after its position, one at
// a time in global order, as a Runner does.
type feeder struct {
	store eventstore.Store
	pos   uint64
}

// feed hands e every event after f.pos, including those e appends.
func (f *feeder) feed(tb testing.TB, e *alerting.Engine) {
	tb.Helper()
	ctx := context.Background()
	for {
		events, err := f.store.ReadAll(ctx, f.pos, 100)
		must(tb, err)
		if len(events) == 0 {
			return
		}
		for _, ev := range events {
			must(tb, e.Handle(ctx, ev))
			f.pos = ev.Position
		}
	}
}

// folded is the state the engine must hold for the store: each scenario
// alert's stream folded from its first event, for those with a watch.
func folded(tb testing.TB, store eventstore.Store) map[alerts.ID]alerting.Watch {
	tb.Helper()
	codec := eventstore.NewCodecOf(alerts.Events()...)
	out := map[alerts.ID]alerting.Watch{}
	for _, id := range scenarioIDs {
		events, err := store.ReadStream(context.Background(), id.Stream(), 0, 1000)
		must(tb, err)
		a := alerts.New()
		for _, e := range events {
			d, err := codec.Decode(e)
			must(tb, err)
			alerts.Evolve(a, d)
		}
		if w, ok := a.Watch(); ok {
			out[id] = alerting.Watch{Alert: *a, Next: uint64(len(events)), Entry: w, Indexed: true}
		}
	}
	return out
}

func sameWatches(tb testing.TB, what string, got, want map[alerts.ID]alerting.Watch) {
	tb.Helper()
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func TestEngineHandleFoldsAlertStreams(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	live, f := alerting.NewEngine(store, nil), &feeder{store: store}
	for _, s := range scenario() {
		s(t, w)
		f.feed(t, live)
	}
	want := folded(t, store)
	// What the scenario must have left: fired one-shots and the deleted
	// alert dropped; the re-arming one watched for its next re-arm.
	if len(want) != 2 || want["armed"].Alert.Status != alerts.StatusCreated ||
		want["rearming"].Alert.Status != alerts.StatusTriggered || want["rearming"].Alert.Fired != 2 ||
		want["rearming"].Entry.Direction != alerts.Below {
		t.Fatalf("scenario left %+v", want)
	}
	sameWatches(t, "live engine", alerting.Watches(live), want)

	// The whole log handed to a new engine folds to the same state and
	// appends nothing: every tick it meets again decides nothing.
	head := w.head(t)
	replay := alerting.NewEngine(store, nil)
	(&feeder{store: store}).feed(t, replay)
	sameWatches(t, "engine replaying the log", alerting.Watches(replay), want)
	if h := w.head(t); h != head {
		t.Fatalf("replay appended %d events", h-head)
	}
	wantFired := map[alerts.ID]int{"oneshot": 1, "rearming": 2, "below": 1, "eth": 1, "late": 1}
	for _, id := range scenarioIDs {
		if got, _ := fired(t, store, id); len(got) != wantFired[id] {
			t.Fatalf("%s fired %d times, want %d: %+v", id, len(got), wantFired[id], got)
		}
	}
}

func TestEngineRestoreEmpty(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	e, f := alerting.NewEngine(store, nil), &feeder{store: store}
	for _, s := range scenario() {
		s(t, w)
	}
	f.feed(t, e)
	before, err := e.Snapshot()
	must(t, err)
	for _, bad := range []string{"{", `{"alerts":[{"id":"x","status":"deleted"}]}`, `{"alerts":[{"id":"x","status":"created"}]}`} {
		if err := e.Restore([]byte(bad)); err == nil {
			t.Errorf("restore of %s: no error", bad)
		}
	}
	after, err := e.Snapshot()
	must(t, err)
	if string(after) != string(before) {
		t.Fatalf("a failed restore changed the state:\n%s\n%s", before, after)
	}
	must(t, e.Restore(nil))
	if got := alerting.Watches(e); len(got) != 0 {
		t.Fatalf("state after Restore(nil): %+v", got)
	}
	empty, err := alerting.NewEngine(store, nil).Snapshot()
	must(t, err)
	if after, _ := e.Snapshot(); string(after) != string(empty) {
		t.Fatalf("snapshot after Restore(nil) %s, want %s", after, empty)
	}
}

// logOf returns the store's events without their ids, positions and
// metadata (an AlertDeleted's time is the wall clock's: only its type).
func logOf(tb testing.TB, store eventstore.Store) []string {
	tb.Helper()
	events, err := store.ReadAll(context.Background(), 0, 100000)
	must(tb, err)
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s@%d %s", e.Stream, e.Revision, e.Type)
		if e.Type != alerts.TypeAlertDeleted {
			out[i] += " " + string(e.Data)
		}
	}
	return out
}

func TestEngineSnapshotRoundTrip(t *testing.T) {
	// One engine runs through the scenario uninterrupted; on a second
	// store with the same inputs, the engine is replaced after every step
	// by a new one restored from its snapshot.
	whole := sqlitetest.Open(t)
	wholeW := newWorld(t, whole)
	parts := sqlitetest.Open(t)
	partsW := newWorld(t, parts)
	uninterrupted, wf := alerting.NewEngine(whole, nil), &feeder{store: whole}
	restored, pf := alerting.NewEngine(parts, nil), &feeder{store: parts}
	for _, s := range scenario() {
		s(t, wholeW)
		wf.feed(t, uninterrupted)
		s(t, partsW)
		pf.feed(t, restored)
		snap, err := restored.Snapshot()
		must(t, err)
		restored = alerting.NewEngine(parts, nil)
		must(t, restored.Restore(snap))
	}
	if got, want := logOf(t, parts), logOf(t, whole); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored after every step, the log is\n%q\nuninterrupted\n%q", got, want)
	}
	a, err := restored.Snapshot()
	must(t, err)
	b, err := uninterrupted.Snapshot()
	must(t, err)
	if string(a) != string(b) {
		t.Fatalf("final snapshots differ:\n%s\n%s", a, b)
	}
	sameWatches(t, "restored engine", alerting.Watches(restored), alerting.Watches(uninterrupted))
}

func TestEngineReplayFromOlderSnapshotSendsNothing(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	e, f := alerting.NewEngine(store, nil), &feeder{store: store}
	type saved struct {
		pos  uint64
		snap []byte
	}
	var snaps []saved
	for _, s := range scenario() {
		s(t, w)
		f.feed(t, e)
		snap, err := e.Snapshot()
		must(t, err)
		snaps = append(snaps, saved{f.pos, snap})
	}
	head := w.head(t)
	want := alerting.Watches(e)
	for _, s := range snaps {
		// A restart from a snapshot older than the last event handled
		// handles the events since again: nothing is appended.
		again := alerting.NewEngine(store, nil)
		must(t, again.Restore(s.snap))
		(&feeder{store: store, pos: s.pos}).feed(t, again)
		if h := w.head(t); h != head {
			t.Fatalf("replay from the snapshot at %d appended %d events", s.pos, h-head)
		}
		sameWatches(t, fmt.Sprintf("replayed from %d", s.pos), alerting.Watches(again), want)
	}
}

// reads records where a store's readers of the global log start.
type reads struct {
	eventstore.Store
	mu    sync.Mutex
	after []uint64 // of every Subscribe and ReadAll
}

func (r *reads) record(after uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.after = append(r.after, after)
}

func (r *reads) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	r.record(after)
	return r.Store.Subscribe(ctx, after, fn)
}

func (r *reads) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	r.record(after)
	return r.Store.ReadAll(ctx, after, limit)
}

func (r *reads) starts() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.after...)
}

func TestEngineResumesFromSnapshot(t *testing.T) {
	store := sqlitetest.Open(t)
	w := newWorld(t, store)
	path := filepath.Join(t.TempDir(), "read.db")
	opts := projections.Options{SnapshotEvery: 4}

	first := &reads{Store: store}
	eng := startOn(t, first, openDB(t, path), opts)
	steps := scenario()
	for _, s := range steps[:13] { // up to the rearming alert's second firing
		s(t, w)
	}
	eng.sync(t, w)
	if got, _ := fired(t, store, "rearming"); len(got) != 2 {
		t.Fatalf("before the restart: rearming fired %d times, want 2", len(got))
	}
	must(t, eng.stop())
	stopped := w.head(t)

	// A new process: new runner, new engine, the same databases.
	second := &reads{Store: store}
	eng = startOn(t, second, openDB(t, path), opts)
	eng.sync(t, w)
	if h := w.head(t); h != stopped {
		t.Fatalf("the restart appended %d events", h-stopped)
	}
	for _, s := range steps[13:] {
		s(t, w)
	}
	// And a tick that re-arms the re-arming alert after its cooldown, one
	// that fires it a third time: it was created before the restart, so
	// only the restored state knows it.
	pause(10*time.Minute)(t, w)
	w.tick(t, btcusd, "63000")
	third := w.tick(t, btcusd, "64100")
	eng.sync(t, w)

	t.Logf("second start: reads of the log after %v; %d events handled, %d appended since the first stopped at %d",
		second.starts(), eng.handled.Load(), w.head(t)-stopped, stopped)
	// It read the log from its snapshot (at or a little before where the
	// first stopped), never from 0, and handled only the events after it.
	starts := second.starts()
	if len(starts) == 0 || slices.Min(starts) == 0 {
		t.Fatalf("the second start read the log from 0 (reads after %v)", starts)
	}
	from := slices.Min(starts)
	if n, since := eng.handled.Load(), w.head(t)-from; n > int64(since) || from > stopped {
		t.Fatalf("the second start read after %d and handled %d events; %d are after %d (the first stopped at %d)",
			from, n, since, from, stopped)
	}
	wantFired := map[alerts.ID]int{"oneshot": 1, "rearming": 3, "below": 1, "eth": 1, "late": 1}
	for _, id := range scenarioIDs {
		got, _ := fired(t, store, id)
		if len(got) != wantFired[id] {
			t.Fatalf("%s fired %d times, want %d: %+v", id, len(got), wantFired[id], got)
		}
		for i, tr := range got {
			if tr.Seq != i+1 {
				t.Fatalf("%s: firing %d has seq %d", id, i+1, tr.Seq)
			}
		}
	}
	if got, _ := fired(t, store, "rearming"); got[2].TickPosition != third {
		t.Fatalf("rearming's third firing at %d, want %d", got[2].TickPosition, third)
	}
}
