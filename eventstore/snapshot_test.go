package eventstore_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

const counterSchema = "counter/v1"

// logBuffer is a concurrency-safe buffer for a test logger.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func counterSnapshotter(store eventstore.SnapshotStore, every uint64, log *logBuffer) eventstore.Snapshotter[*counter] {
	sn := eventstore.Snapshotter[*counter]{
		Store:  store,
		Schema: counterSchema,
		Encode: func(c *counter) ([]byte, error) { return json.Marshal(c) },
		Decode: func(data []byte) (*counter, error) {
			c := &counter{}
			return c, json.Unmarshal(data, c)
		},
		Every: every,
	}
	if log != nil {
		sn.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	return sn
}

// addMany decides n events adding 1 each.
func addMany(n int) eventstore.Decision[*counter, counterEvent] {
	return func(*counter) ([]counterEvent, error) {
		events := make([]counterEvent, n)
		for i := range events {
			events[i] = added{1}
		}
		return events, nil
	}
}

// TestRepositoryLoadsSnapshotPlusTail: 25 updates with a snapshot every
// 10 events; a cold load reads the event the snapshot was taken at and the
// 5 after it, and ends where a full fold does.
func TestRepositoryLoadsSnapshotPlusTail(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	snaps := eventstore.NewMemorySnapshots()
	repo := eventstore.NewRepository(store, counterCodec(), counterAgg)
	repo.SetSnapshotter(counterSnapshotter(snaps, 10, nil))
	for i := 1; i <= 25; i++ {
		if _, _, err := repo.Update(ctx, "counter-r", eventstore.Metadata{}, add(i)); err != nil {
			t.Fatal(err)
		}
	}
	repo.WaitSnapshots()
	if got := snaps.Saves(); got != 2 {
		t.Fatalf("%d snapshots saved, want 2 (at 10 and 20 events)", got)
	}
	counting := &storetest.ReadCounter{Store: store}
	cold := eventstore.NewRepository(counting, counterCodec(), counterAgg)
	cold.SetSnapshotter(counterSnapshotter(snaps, 10, nil))
	l, err := cold.Load(ctx, "counter-r")
	if err != nil {
		t.Fatal(err)
	}
	full, err := eventstore.NewRepository(store, counterCodec(), counterAgg).Load(ctx, "counter-r")
	if err != nil {
		t.Fatal(err)
	}
	if l.State.Total != 25*26/2 || *l.State != *full.State || l.Next != full.Next || l.Position != full.Position {
		t.Fatalf("from snapshot: %+v %+v; full fold: %+v %+v", *l.State, l, *full.State, full)
	}
	if got := counting.Read(); got != 1+5 {
		t.Fatalf("cold load read %d events, want 6 (the snapshot's own event and the 5 after it)", got)
	}
}

// TestUnusableSnapshotIsIgnored: a snapshot of another schema, one that
// does not decode, one ahead of the stream and one of another history are
// each ignored (and logged): the load folds the whole stream.
func TestUnusableSnapshotIsIgnored(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	repo := eventstore.NewRepository(store, counterCodec(), counterAgg)
	if _, _, err := repo.Update(ctx, "counter-u", eventstore.Metadata{}, addMany(30)); err != nil {
		t.Fatal(err)
	}
	full, err := repo.Load(ctx, "counter-u")
	if err != nil {
		t.Fatal(err)
	}
	// A genuine snapshot at revision 19, to be spoiled by each case.
	var good eventstore.Snapshot
	{
		snaps := eventstore.NewMemorySnapshots()
		r := eventstore.NewRepository(store, counterCodec(), counterAgg)
		r.SetSnapshotter(counterSnapshotter(snaps, 20, nil))
		// One more stream to take a real snapshot from: 20 events.
		if _, _, err := r.Update(ctx, "counter-src", eventstore.Metadata{}, addMany(20)); err != nil {
			t.Fatal(err)
		}
		r.WaitSnapshots()
		var ok bool
		if good, ok, _ = snaps.Load(ctx, "counter-src"); !ok {
			t.Fatal("no snapshot taken")
		}
		at, _ := store.ReadStream(ctx, "counter-u", 19, 1)
		good.Stream, good.Hash, good.Position = "counter-u", at[0].Hash, at[0].Position
	}
	for _, tc := range []struct {
		name   string
		spoil  func(*eventstore.Snapshot)
		reason string
	}{
		{"valid", func(*eventstore.Snapshot) {}, ""},
		{"other schema", func(s *eventstore.Snapshot) { s.Schema = "counter/v0" }, "schema"},
		{"corrupt", func(s *eventstore.Snapshot) { s.Data = []byte(`{"Total":`) }, "corrupt"},
		{"ahead of the stream", func(s *eventstore.Snapshot) { s.Version = 100 }, "not in stream"},
		{"other history", func(s *eventstore.Snapshot) { s.Hash[0] ^= 1 }, "not in stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			snaps := eventstore.NewMemorySnapshots()
			snap := good
			tc.spoil(&snap)
			if err := snaps.Save(ctx, snap); err != nil {
				t.Fatal(err)
			}
			var log logBuffer
			counting := &storetest.ReadCounter{Store: store}
			r := eventstore.NewRepository(counting, counterCodec(), counterAgg)
			r.SetSnapshotter(counterSnapshotter(snaps, 20, &log))
			l, err := r.Load(ctx, "counter-u")
			if err != nil {
				t.Fatal(err)
			}
			if *l.State != *full.State || l.Next != full.Next || l.Position != full.Position {
				t.Fatalf("loaded %+v %+v; full fold: %+v %+v", *l.State, l, *full.State, full)
			}
			reads := counting.Read()
			if tc.reason == "" {
				if reads != 11 || log.String() != "" {
					t.Fatalf("valid snapshot: read %d events (want 11), log %q", reads, log.String())
				}
				return
			}
			if reads < 30 {
				t.Fatalf("read %d events: the snapshot was used", reads)
			}
			if !strings.Contains(log.String(), "snapshot ignored") || !strings.Contains(log.String(), "reason=\""+tc.reason+"\"") &&
				!strings.Contains(log.String(), "reason="+tc.reason) {
				t.Fatalf("log %q: want snapshot ignored with reason %s", log.String(), tc.reason)
			}
		})
	}
}

// TestBatcherColdLoadReadsSnapshotPlusTail: 5,050 events through a batcher
// snapshotting every 1,000; a new batcher's cold load reads at most the
// snapshot's event and the 50-event tail.
func TestBatcherColdLoadReadsSnapshotPlusTail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "snapshots.db")
	snaps, err := sqlite.OpenSnapshots(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer snaps.Close()
	store := sqlitetest.Open(t)
	b := eventstore.NewBatcher(store, counterCodec(), counterAgg)
	sn := counterSnapshotter(snaps, 1000, nil)
	// With Clone the writer only clones; the save encodes in the background.
	sn.Clone = func(c *counter) *counter { cp := *c; return &cp }
	b.SetSnapshotter(sn)
	for i := range 51 {
		n := 100 // 50 appends of 100 events, then a tail of 50
		if i == 50 {
			n = 50
		}
		if _, err := b.Do(ctx, "counter-b", eventstore.Metadata{}, addMany(n)); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	snap, ok, err := snaps.Load(ctx, "counter-b")
	if err != nil || !ok || snap.Version != 4999 {
		t.Fatalf("snapshot %+v, %v, %v; want one at revision 4999", snap, ok, err)
	}
	counting := &storetest.ReadCounter{Store: store}
	cold := eventstore.NewBatcher(counting, counterCodec(), counterAgg)
	cold.SetSnapshotter(counterSnapshotter(snaps, 1000, nil))
	defer cold.Close()
	var total int
	if _, err := cold.Do(ctx, "counter-b", eventstore.Metadata{}, func(c *counter) ([]counterEvent, error) {
		total = c.Total
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if total != 5050 {
		t.Fatalf("total %d, want 5050", total)
	}
	if got := counting.Read(); got != 1+50 {
		t.Fatalf("cold load read %d events, want 51 (snapshot's event + 50-event tail)", got)
	}
}

func TestMemorySnapshotsConform(t *testing.T) {
	storetest.RunSnapshots(t, eventstore.NewMemorySnapshots())
}
