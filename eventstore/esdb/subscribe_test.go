package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

var errDone = errors.New("done")

// follower runs Subscribe in the background and records the events of one
// stream prefix, failing on any repeated or out-of-order position.
type follower struct {
	mu     sync.Mutex
	events []eventstore.Event
	notify chan struct{}
	errc   chan error
	cancel context.CancelFunc
}

func follow(t *testing.T, s eventstore.Store, after uint64, prefix string, want int) *follower {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f := &follower{notify: make(chan struct{}, 1), errc: make(chan error, 1), cancel: cancel}
	t.Cleanup(cancel)
	last := after
	go func() {
		f.errc <- s.Subscribe(ctx, after, func(_ context.Context, batch []eventstore.Event) error {
			if len(batch) == 0 {
				return errors.New("empty batch")
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for _, e := range batch {
				if e.Position <= last {
					return fmt.Errorf("position %d delivered after %d", e.Position, last)
				}
				last = e.Position
				if strings.HasPrefix(e.Stream, prefix) {
					f.events = append(f.events, e)
				}
			}
			select {
			case f.notify <- struct{}{}:
			default:
			}
			if len(f.events) >= want {
				return errDone
			}
			return nil
		})
	}()
	return f
}

func (f *follower) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

// waitFor waits until n events arrived.
func (f *follower) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for f.count() < n {
		select {
		case <-f.notify:
		case err := <-f.errc:
			t.Fatalf("subscription ended with %v after %d of %d events", err, f.count(), n)
		case <-deadline:
			t.Fatalf("got %d of %d events", f.count(), n)
		}
	}
}

// done waits for the subscription to end after its last wanted event and
// checks that the events are numbered 0, 1, 2, ... exactly once each.
func (f *follower) done(t *testing.T) []eventstore.Event {
	t.Helper()
	if err := <-f.errc; !errors.Is(err, errDone) {
		t.Fatalf("subscribe: %v after %d events", err, f.count())
	}
	for i, e := range f.events {
		if n := number(t, e); n != i {
			t.Fatalf("event %d has n=%d: gap or duplicate", i, n)
		}
	}
	return f.events
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestSubscribeResubscribesAfterDrop(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{Links: true})
	s := MustOpen(t, srv.URL(), esdb.Options{RetryMin: 2 * time.Millisecond, RetryMax: 10 * time.Millisecond, BatchSize: 7})
	stream := storetest.Stream("drop")
	const total = 200
	for i := 0; i < 50; i += 5 {
		storetest.MustAppend(t, s, stream, eventstore.Any, storetest.Events("t.d", i, 5)...)
	}
	f := follow(t, s, 0, stream, total)
	drops := 0
	for i := 50; i < total; i += 5 {
		waitUntil(t, "a live subscription", func() bool { return srv.Subscriptions() > 0 })
		storetest.MustAppend(t, s, stream, eventstore.Any, storetest.Events("t.d", i, 5)...)
		if i%20 == 10 {
			f.waitFor(t, i+1) // some of the batch delivered, maybe not all of it
			drops += srv.DropSubscriptions()
		}
	}
	f.done(t)
	if drops < 5 {
		t.Fatalf("only %d subscriptions dropped", drops)
	}
}

func TestSubscribeSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, query string
	}{
		{"Rediscovering", ""},
		// A client that gives up quickly: the adapter must replace it.
		{"ClientGivesUp", "&maxDiscoverAttempts=2&discoveryInterval=20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := esdbtest.Start(t, esdbtest.Options{})
			s := MustOpen(t, srv.URL()+tc.query, esdb.Options{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: testLogger(t)})
			stream := storetest.Stream("restart")
			storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.r", 0, 3)...)
			f := follow(t, s, 0, stream, 6)
			f.waitFor(t, 3)

			srv.Stop()
			if tc.query == "" {
				// Calls during the outage return when their context ends, and
				// none stays blocked in the client afterwards (Close checks).
				var wg sync.WaitGroup
				for i := 0; i < 4; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
						defer cancel()
						if _, err := s.Append(ctx, storetest.Stream("outage"), eventstore.Any, storetest.Events("t.o", 0, 1)...); err == nil {
							t.Error("append during the outage succeeded")
						}
					}()
				}
				wg.Wait()
			}
			time.Sleep(300 * time.Millisecond) // long enough for a client to give up
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			// Only the subscription uses the client while it reconnects: a
			// v4 client that gives up strands calls made during its last
			// discovery.
			waitUntil(t, "the subscription to come back", func() bool { return srv.Subscriptions() > 0 })
			// The client's unary calls may still be in its reconnect backoff:
			// wait until a read works before the append (a read is safe to
			// repeat; an append is not retried by the adapter).
			waitUntil(t, "reads to work again", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := s.Head(ctx)
				return err == nil
			})
			storetest.MustAppend(t, s, stream, eventstore.Exact(2), storetest.Events("t.r", 3, 3)...)
			f.done(t)
		})
	}
}

func TestSubscribeEndsWithErrClosed(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s, err := esdb.Open(context.Background(), srv.URL(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- s.Subscribe(context.Background(), 0, func(context.Context, []eventstore.Event) error { return nil })
	}()
	waitUntil(t, "a live subscription", func() bool { return srv.Subscriptions() > 0 })
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := <-errc; !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("subscribe after close: %v, want ErrClosed", err)
	}
	if _, err := s.Append(context.Background(), storetest.Stream("closed"), eventstore.Any, storetest.Events("t.c", 0, 1)...); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	if err := s.Subscribe(context.Background(), 0, nil); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("subscribe on a closed store: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestSubscribeReturnsContextError(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- s.Subscribe(ctx, 0, func(context.Context, []eventstore.Event) error { return nil })
	}()
	waitUntil(t, "a live subscription", func() bool { return srv.Subscriptions() > 0 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe: %v, want context.Canceled", err)
	}
	waitUntil(t, "the subscription to close", func() bool { return srv.Subscriptions() == 0 })
}

func TestSubscribeSkipsSystemEvents(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{Links: true})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	stream := storetest.Stream("sys")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.s", 0, 1)...)
	var all []eventstore.Event
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- s.Subscribe(ctx, 0, func(_ context.Context, batch []eventstore.Event) error {
			mu.Lock()
			defer mu.Unlock()
			all = append(all, batch...)
			if batch[len(batch)-1].Stream == stream && number(t, batch[len(batch)-1]) == 2 {
				return errDone
			}
			return nil
		})
	}()
	waitUntil(t, "a live subscription", func() bool { return srv.Subscriptions() > 0 })
	// Live system events of both kinds, then the user events.
	srv.AppendRaw("$settings", "$settings", []byte(`{}`), nil)
	srv.AppendRaw("$projections-x-result", "Result", []byte(`{}`), nil)
	srv.AppendRaw(stream+"-other", "$metadata", []byte(`{}`), nil)
	storetest.MustAppend(t, s, stream, eventstore.Exact(0), storetest.Events("t.s", 1, 2)...)
	if err := <-errc; !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	for _, e := range all {
		if strings.HasPrefix(e.Stream, "$") || strings.HasPrefix(e.Type, "$") {
			t.Fatalf("system event delivered: %s", e)
		}
	}
	if len(all) != 3 {
		t.Fatalf("delivered %d events, want 3", len(all))
	}
}
