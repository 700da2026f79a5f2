package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// lineUp runs gate as the only command of a batch and, while it is being
// decided, queues the commands made by each of cmds behind it, so that all
// of them are decided and appended as one batch. It returns their errors in
// order.
func lineUp(t *testing.T, b *eventstore.Batcher[*counter, counterEvent], stream string,
	cmds ...func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent])) []error {
	t.Helper()
	ctx := context.Background()
	deciding, release := make(chan struct{}), make(chan struct{})
	gateDone := make(chan error, 1)
	var decided atomic.Bool
	go func() {
		_, err := b.Do(ctx, stream, eventstore.Metadata{}, func(s *counter) ([]counterEvent, error) {
			// Only the first decision waits (a later one is a re-decision
			// after a conflict). A non-blocking send here would skip the
			// wait whenever the test had not reached its receive yet, and
			// the test would then wait for a signal that never comes.
			if decided.CompareAndSwap(false, true) {
				deciding <- struct{}{}
				<-release
			}
			return []counterEvent{added{1}}, nil
		})
		gateDone <- err
	}()
	<-deciding
	errs := make([]error, len(cmds))
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			meta, decide := cmd()
			_, errs[i] = b.Do(ctx, stream, meta, decide)
		}()
	}
	for b.Queued(stream) < len(cmds) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if err := <-gateDone; err != nil {
		t.Fatalf("gate command: %v", err)
	}
	return errs
}

// TestBatcherBadEventFailsOnlyItsCommand: in one batch of concurrent
// commands, one whose event is too large for the store (a 1 MiB
// correlation id) fails alone; every other command is appended.
func TestBatcherBadEventFailsOnlyItsCommand(t *testing.T) {
	store := sqlitetest.Open(t)
	b := eventstore.NewBatcher(store, counterCodec(), counterAgg)
	defer b.Close()
	const good = 20
	cmds := make([]func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent]), 0, good+1)
	for i := 0; i < good; i++ {
		cmds = append(cmds, func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent]) {
			return eventstore.Metadata{Actor: "test", CorrelationID: "ok"}, add(1)
		})
		if i == good/2 {
			cmds = append(cmds, func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent]) {
				return eventstore.Metadata{CorrelationID: strings.Repeat("x", eventstore.DefaultMaxEventSize)}, add(1000)
			})
		}
	}
	errs := lineUp(t, b, "counter-bad", cmds...)
	failed := 0
	for i, err := range errs {
		switch {
		case i == good/2+1:
			if !errors.Is(err, eventstore.ErrInvalidEvent) {
				t.Errorf("oversized command: err %v, want ErrInvalidEvent", err)
			}
		case err != nil:
			failed++
			t.Errorf("command %d: %v", i, err)
		}
	}
	l, err := eventstore.NewRepository(store, counterCodec(), counterAgg).Load(context.Background(), "counter-bad")
	if err != nil || l.State.Total != 1+good || l.Next != 1+good {
		t.Fatalf("stream total %d in %d events (err %v), want %d in %d: %d good commands failed",
			l.State.Total, l.Next, err, 1+good, 1+good, failed)
	}
}

// appendLimit is a store that refuses, with ErrInvalidEvent, an append of
// more than max events, as a store with a limit on one append's total size.
type appendLimit struct {
	eventstore.Store
	max     int
	refused atomic.Int64
}

func (s *appendLimit) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	if len(events) > s.max {
		s.refused.Add(1)
		return eventstore.AppendResult{}, fmt.Errorf("%w: %d events in one append, limit %d", eventstore.ErrInvalidEvent, len(events), s.max)
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

// TestBatcherRunsARefusedBatchCommandByCommand: the store refuses a batch
// as a whole although each command's events are fine on their own (here:
// a limit of two events per append, and three one-event commands in one
// batch); the batcher runs the commands one by one, and each is appended.
func TestBatcherRunsARefusedBatchCommandByCommand(t *testing.T) {
	store := &appendLimit{Store: sqlitetest.Open(t), max: 2}
	b := eventstore.NewBatcher(store, counterCodec(), counterAgg)
	defer b.Close()
	cmd := func(n int) func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent]) {
		return func() (eventstore.Metadata, eventstore.Decision[*counter, counterEvent]) {
			return eventstore.Metadata{}, add(n)
		}
	}
	errs := lineUp(t, b, "counter-limit", cmd(5), cmd(7), cmd(11))
	for i, err := range errs {
		if err != nil {
			t.Errorf("command %d failed with the batch: %v", i, err)
		}
	}
	if store.refused.Load() == 0 {
		t.Fatal("the store never refused a batch: the commands were not appended as one")
	}
	l, err := eventstore.NewRepository(store, counterCodec(), counterAgg).Load(context.Background(), "counter-limit")
	if err != nil || l.State.Total != 1+5+7+11 || l.Next != 4 {
		t.Fatalf("total %d in %d events (err %v), want %d in 4", l.State.Total, l.Next, err, 1+5+7+11)
	}
}

// TestBatcherAnswersEachCommandItsOwnPosition: commands batched into one
// append are each answered with the position of their own last event (as
// a replay of the command reads it back), not the batch's last; the
// batch's stats count one append per batch.
func TestBatcherAnswersEachCommandItsOwnPosition(t *testing.T) {
	store := sqlitetest.Open(t)
	b := eventstore.NewBatcher(store, counterCodec(), counterAgg)
	defer b.Close()
	ctx := context.Background()
	twice := func(s *counter) ([]counterEvent, error) { return []counterEvent{added{1}, added{2}}, nil }
	var wg sync.WaitGroup
	outs := make([]eventstore.Outcome[*counter, counterEvent], 40)
	for i := range outs {
		wg.Go(func() {
			decide := add(1)
			if i%3 == 0 {
				decide = twice
			}
			var err error
			if outs[i], err = b.Do(ctx, "counter-2", eventstore.Metadata{Actor: fmt.Sprint("cmd-", i)}, decide); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	events, err := store.ReadStream(ctx, "counter-2", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	lastOf := map[string]uint64{} // actor → position of its last event
	for _, e := range events {
		lastOf[e.Metadata.Actor] = e.Position
	}
	for i, out := range outs {
		if want := lastOf[fmt.Sprint("cmd-", i)]; out.Result.Position != want {
			t.Errorf("command %d answered position %d, its last event is at %d", i, out.Result.Position, want)
		}
	}
	st := b.Stats()
	if st.Commands != 40 || st.Events != uint64(len(events)) || st.Appends == 0 || st.Appends > st.Commands {
		t.Errorf("stats %+v after 40 commands, %d events", st, len(events))
	}
	t.Logf("%d commands in %d appends", st.Commands, st.Appends)
}
