package eventstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
)

// A tiny counter aggregate: deposits add, withdrawals may not overdraw.
type counterEvent interface{ EventType() string }

type added struct{ N int }

func (added) EventType() string { return "counter.added" }

type counter struct{ Total int }

var errOverdrawn = errors.New("overdrawn")

func counterCodec() *eventstore.Codec[counterEvent] {
	c := eventstore.NewCodec[counterEvent]()
	eventstore.Register[added](c)
	return c
}

var counterAgg = eventstore.Aggregate[*counter, counterEvent]{
	Initial: func() *counter { return &counter{} },
	Evolve: func(s *counter, e counterEvent) *counter {
		s.Total += e.(added).N
		return s
	},
}

func add(n int) eventstore.Decision[*counter, counterEvent] {
	return func(s *counter) ([]counterEvent, error) {
		if s.Total+n < 0 {
			return nil, errOverdrawn
		}
		return []counterEvent{added{n}}, nil
	}
}

// TestBatcherSerializesConcurrentCommands: 100 units, 200 concurrent
// withdrawals of 1: exactly 100 succeed, in fewer appends than commands.
func TestBatcherSerializesConcurrentCommands(t *testing.T) {
	store := sqlitetest.Open(t)
	b := eventstore.NewBatcher(store, counterCodec(), counterAgg)
	defer b.Close()
	ctx := context.Background()
	if _, err := b.Do(ctx, "counter-1", eventstore.Metadata{}, add(100)); err != nil {
		t.Fatal(err)
	}
	var ok, overdrawn atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := b.Do(ctx, "counter-1", eventstore.Metadata{Actor: "test"}, add(-1))
			switch {
			case err == nil && len(out.Events) == 1 && out.Result.Position > 0:
				ok.Add(1)
			case errors.Is(err, errOverdrawn):
				overdrawn.Add(1)
			default:
				t.Errorf("withdraw: %+v, %v", out, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || overdrawn.Load() != 100 {
		t.Fatalf("%d succeeded, %d overdrawn; want 100 and 100", ok.Load(), overdrawn.Load())
	}
	events, err := store.ReadStream(ctx, "counter-1", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 101 {
		t.Fatalf("stream has %d events, want 101", len(events))
	}
	l, err := eventstore.NewRepository(store, counterCodec(), counterAgg).Load(ctx, "counter-1")
	if err != nil || l.State.Total != 0 {
		t.Fatalf("reloaded total %d (err %v), want 0", l.State.Total, err)
	}
}

// TestBatcherRecoversFromForeignAppend: another writer appends to the
// stream behind the batcher's back; the next command conflicts, reloads and
// decides on the true state.
func TestBatcherRecoversFromForeignAppend(t *testing.T) {
	store := sqlitetest.Open(t)
	codec := counterCodec()
	b := eventstore.NewBatcher(store, codec, counterAgg)
	defer b.Close()
	ctx := context.Background()
	if _, err := b.Do(ctx, "counter-2", eventstore.Metadata{}, add(5)); err != nil {
		t.Fatal(err)
	}
	// Another process withdraws everything.
	foreign := eventstore.NewRepository(store, codec, counterAgg)
	if _, _, err := foreign.Update(ctx, "counter-2", eventstore.Metadata{}, add(-5)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Do(ctx, "counter-2", eventstore.Metadata{}, add(-1)); !errors.Is(err, errOverdrawn) {
		t.Fatalf("withdraw after foreign append: err %v, want errOverdrawn", err)
	}
	out, err := b.Do(ctx, "counter-2", eventstore.Metadata{}, add(3))
	if err != nil || out.Result.NextRevision != 3 {
		t.Fatalf("deposit: %+v, %v; want next revision 3", out, err)
	}
}

func TestBatcherClosed(t *testing.T) {
	b := eventstore.NewBatcher(sqlitetest.Open(t), counterCodec(), counterAgg)
	b.Close()
	if _, err := b.Do(context.Background(), "counter-3", eventstore.Metadata{}, add(1)); !errors.Is(err, eventstore.ErrBatcherClosed) {
		t.Fatalf("err %v, want ErrBatcherClosed", err)
	}
}
