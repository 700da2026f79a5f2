package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Snapshot is an aggregate's state as of one revision of its stream,
// encoded by the aggregate (see Snapshotter).
type Snapshot struct {
	Stream string
	// Version is the revision of the last event folded into Data; a load
	// reads the stream's tail from Version+1.
	Version uint64
	// Position is the global position of that event.
	Position uint64
	// Hash is that event's chain hash: a load checks that the stream still
	// holds this very event at Version, so a snapshot of another history
	// (a store restored from an older backup, then written again) is
	// ignored.
	Hash Hash
	// Schema names the shape of Data (the aggregate's snapshot schema). A
	// snapshot of another schema is ignored: a code change never loads a
	// stale shape.
	Schema string
	Data   []byte
}

// SnapshotStore keeps the latest snapshot of each stream. Snapshots are a
// cache: losing them costs only the time of a full fold, so a store need
// not be durable and may drop snapshots at will.
//
// Concurrency: all methods are safe for concurrent use.
//
// Idempotence: Save replaces the stream's snapshot, whatever its version;
// saving the same snapshot twice is harmless.
//
// A missing snapshot is (Snapshot{}, false, nil). A snapshot that cannot
// be used (another schema, data that does not decode, a version beyond the
// stream or a hash that does not match the stream) is ignored by the
// loader, which folds the whole stream; so is a Load that fails. Neither
// is an error of the load; both are logged.
type SnapshotStore interface {
	// Load returns the latest snapshot saved for stream.
	Load(ctx context.Context, stream string) (Snapshot, bool, error)
	// Save stores s as stream's latest snapshot.
	Save(ctx context.Context, s Snapshot) error
}

// DefaultSnapshotEvery is how many events a Snapshotter lets pass between
// two snapshots of a stream by default.
const DefaultSnapshotEvery = 1000

// Snapshotter is the optional snapshot support of a Repository or Batcher:
// the aggregate's encoding of its state and where snapshots go. Encode and
// Decode must be pure; Decode must return a state that Evolve may mutate
// and that equals the encoded one for every purpose of the aggregate.
type Snapshotter[S any] struct {
	Store  SnapshotStore
	Schema string
	Encode func(S) ([]byte, error)
	Decode func([]byte) (S, error)
	// Clone, if set, copies a state deeply. The owner of the state (a
	// batcher's stream writer) then only clones it and Encode runs in the
	// background; without Clone, Encode runs in the owner's goroutine.
	Clone func(S) S
	// Every: a snapshot is saved after an append that crosses a multiple
	// of the stream's snapshot interval: Every events (default
	// DefaultSnapshotEvery) while the stream is short, then Every doubled
	// as often as it fits in a quarter of the stream (see interval).
	Every uint64
	// Logger reports snapshots ignored or not saved (default slog.Default()).
	Logger *slog.Logger
}

// snapshots runs a Snapshotter: loads, and saves in the background. Per
// stream, one save runs at a time and at most one more waits (a newer one
// replaces it), so a slow snapshot store never blocks a writer and never
// loses the latest snapshot; across streams, maxSnapshotSaves run at once.
type snapshots[S any] struct {
	cfg   Snapshotter[S]
	slots chan struct{} // one token per save running

	mu      sync.Mutex
	waiting map[string]*snapshotJob[S] // streams with a save under way → the next one (nil: none)
	wg      sync.WaitGroup
}

// snapshotJob is a snapshot to save: with Clone, its state cloned (to be
// encoded by the save); without, already encoded in snap.Data.
type snapshotJob[S any] struct {
	snap  Snapshot
	state S
}

const (
	// maxSnapshotSaves bounds the saves running at once, across streams.
	maxSnapshotSaves = 4
	// snapshotSaveTimeout bounds one save: reading the hash, writing.
	snapshotSaveTimeout = 30 * time.Second
)

func newSnapshots[S any](cfg Snapshotter[S]) *snapshots[S] {
	if cfg.Store == nil || cfg.Encode == nil || cfg.Decode == nil {
		return nil
	}
	if cfg.Every == 0 {
		cfg.Every = DefaultSnapshotEvery
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &snapshots[S]{cfg: cfg, slots: make(chan struct{}, maxSnapshotSaves),
		waiting: map[string]*snapshotJob[S]{}}
}

// load returns the snapshot of stream as a Loaded state (Next: the
// revision after the snapshot's), or ok false when there is none to use. A snapshot is
// usable when its schema matches, its data decodes and the stream still
// holds the event it was taken at (same revision and hash); otherwise it
// is ignored and logged. Only a failing read is an error.
func (sn *snapshots[S]) load(ctx context.Context, store Store, stream string) (l Loaded[S], ok bool, err error) {
	snap, found, err := sn.cfg.Store.Load(ctx, stream)
	if err != nil {
		sn.cfg.Logger.Warn("snapshot load failed", "stream", stream, "error", err)
		return l, false, nil
	}
	if !found {
		return l, false, nil
	}
	if snap.Schema != sn.cfg.Schema {
		sn.cfg.Logger.Info("snapshot ignored", "stream", stream, "reason", "schema", "schema", snap.Schema, "want_schema", sn.cfg.Schema)
		return l, false, nil
	}
	at, err := store.ReadStream(ctx, stream, snap.Version, 1)
	if err != nil {
		return l, false, fmt.Errorf("load %s@%d: %w", stream, snap.Version, err)
	}
	if len(at) == 0 || at[0].Revision != snap.Version || at[0].Hash != snap.Hash {
		sn.cfg.Logger.Warn("snapshot ignored", "stream", stream, "reason", "not in stream", "version", snap.Version)
		return l, false, nil
	}
	st, err := sn.cfg.Decode(snap.Data)
	if err != nil {
		sn.cfg.Logger.Warn("snapshot ignored", "stream", stream, "reason", "corrupt", "version", snap.Version, "error", err)
		return l, false, nil
	}
	return Loaded[S]{State: st, Next: snap.Version + 1, Position: snap.Position}, true, nil
}

// due reports whether an append that moved stream's next revision from
// before to after crossed a multiple of the interval at after.
func (sn *snapshots[S]) due(before, after uint64) bool {
	if sn == nil || after == 0 {
		return false
	}
	n := interval(sn.cfg.Every, after)
	return before/n != after/n
}

// interval is the snapshot spacing of a stream of length events: every
// events, doubled while the result stays within a quarter of the length.
// A state grows with its stream (remembered idempotency keys), so a fixed
// spacing would cost each event a share that grows with the stream; a
// spacing proportional to the length keeps that share constant, at the
// price of a cold load reading a tail of at most a quarter of the stream
// besides decoding the snapshot, which is of the stream's order anyway.
// Every interval is a multiple of the smaller ones, so the spacing only
// ever thins out.
func interval(every, length uint64) uint64 {
	n := every
	for n <= length/8 {
		n *= 2
	}
	return n
}

// save snapshots l's state (the caller owns it) in the background: it
// clones the state (without Clone: encodes it) before it returns. The
// background part reads the hash of l's last event from store, which ties
// the snapshot to this history, and saves.
func (sn *snapshots[S]) save(store Store, stream string, l Loaded[S]) {
	job := &snapshotJob[S]{snap: Snapshot{Stream: stream, Version: l.Next - 1, Position: l.Position, Schema: sn.cfg.Schema}}
	if sn.cfg.Clone != nil {
		job.state = sn.cfg.Clone(l.State)
	} else {
		data, err := sn.cfg.Encode(l.State)
		if err != nil {
			sn.cfg.Logger.Warn("snapshot not saved", "stream", stream, "version", job.snap.Version, "error", err)
			return
		}
		job.snap.Data = data
	}
	sn.mu.Lock()
	if _, busy := sn.waiting[stream]; busy {
		sn.waiting[stream] = job // replaces an older one still waiting
		sn.mu.Unlock()
		return
	}
	sn.waiting[stream] = nil
	sn.wg.Add(1)
	sn.mu.Unlock()
	go sn.run(store, job)
}

// run saves job, then the stream's next job while there is one.
func (sn *snapshots[S]) run(store Store, job *snapshotJob[S]) {
	defer sn.wg.Done()
	stream := job.snap.Stream
	for job != nil {
		sn.slots <- struct{}{}
		if err := sn.store(store, job); err != nil {
			sn.cfg.Logger.Warn("snapshot not saved", "stream", stream, "version", job.snap.Version, "error", err)
		}
		<-sn.slots
		sn.mu.Lock()
		job = sn.waiting[stream]
		if job == nil {
			delete(sn.waiting, stream)
		} else {
			sn.waiting[stream] = nil
		}
		sn.mu.Unlock()
	}
}

// store encodes job if need be and saves it with its last event's hash.
func (sn *snapshots[S]) store(store Store, job *snapshotJob[S]) error {
	ctx, cancel := context.WithTimeout(context.Background(), snapshotSaveTimeout)
	defer cancel()
	snap := job.snap
	if sn.cfg.Clone != nil {
		data, err := sn.cfg.Encode(job.state)
		if err != nil {
			return err
		}
		snap.Data = data
	}
	var err error
	if snap.Hash, err = lastHash(ctx, store, snap.Stream, snap.Version); err != nil {
		return err
	}
	return sn.cfg.Store.Save(ctx, snap)
}

// wait returns when no save is in flight.
func (sn *snapshots[S]) wait() {
	if sn != nil {
		sn.wg.Wait()
	}
}

// lastHash returns the hash of the event at revision rev of stream.
func lastHash(ctx context.Context, store Store, stream string, rev uint64) (Hash, error) {
	events, err := store.ReadStream(ctx, stream, rev, 1)
	if err != nil {
		return Hash{}, fmt.Errorf("read %s@%d: %w", stream, rev, err)
	}
	if len(events) == 0 || events[0].Revision != rev {
		return Hash{}, fmt.Errorf("read %s@%d: %w", stream, rev, errors.New("event missing"))
	}
	return events[0].Hash, nil
}

// MemorySnapshots is a SnapshotStore in memory, for tests and for
// processes whose snapshots need not outlive them.
type MemorySnapshots struct {
	mu    sync.Mutex
	m     map[string]Snapshot
	saves int // snapshots saved
}

// NewMemorySnapshots returns an empty MemorySnapshots.
func NewMemorySnapshots() *MemorySnapshots { return &MemorySnapshots{m: map[string]Snapshot{}} }

// Load implements SnapshotStore.
func (m *MemorySnapshots) Load(_ context.Context, stream string) (Snapshot, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.m[stream]
	s.Data = append([]byte(nil), s.Data...)
	return s, ok, nil
}

// Save implements SnapshotStore.
func (m *MemorySnapshots) Save(_ context.Context, s Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Data = append([]byte(nil), s.Data...)
	m.m[s.Stream] = s
	m.saves++
	return nil
}

// Saves returns how many snapshots were saved.
func (m *MemorySnapshots) Saves() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saves
}
