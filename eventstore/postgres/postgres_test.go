package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// open opens a store on url, closed when the test ends (before its
// schema is dropped).
func open(tb testing.TB, url string, opts postgres.Options) *postgres.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, url, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store { return open(t, dbtest.PostgresURL(t), postgres.Options{}) })
}

func TestConformanceWithoutGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) eventstore.Store {
		return open(t, dbtest.PostgresURL(t), postgres.Options{NoGroupCommit: true})
	})
}

func TestSnapshotsConform(t *testing.T) {
	storetest.RunSnapshots(t, open(t, dbtest.PostgresURL(t), postgres.Options{}).Snapshots())
}

// TestSeveralProcessesOneGapFreeOrder: four stores on one schema, each with
// its own connection pool as separate processes would have, append
// concurrently while a fifth subscribes. The subscriber sees every event
// exactly once, at positions 1, 2, 3, ... without a gap, so it skipped
// none; ReadAll afterwards reads the same sequence.
func TestSeveralProcessesOneGapFreeOrder(t *testing.T) {
	t.Parallel()
	u := dbtest.PostgresURL(t)
	const procs, writers, appends = 4, 8, 25
	stores := make([]*postgres.Store, procs)
	for i := range stores {
		stores[i] = open(t, u, postgres.Options{})
	}
	reader := open(t, u, postgres.Options{})
	want := 0
	for w := 0; w < writers; w++ {
		want += appends * (1 + w%3)
	}
	want *= procs

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var seen []eventstore.Event
	errc := make(chan error, 1)
	go func() {
		errc <- reader.Subscribe(ctx, 0, func(_ context.Context, batch []eventstore.Event) error {
			seen = append(seen, batch...)
			if len(seen) >= want {
				return errDone
			}
			return nil
		})
	}()
	var wg sync.WaitGroup
	for p, s := range stores {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stream := fmt.Sprintf("proc%d-writer%d", p, w%3) // writers share streams, with Any
				for i := 0; i < appends; i++ {
					if _, err := s.Append(ctx, stream, eventstore.Any, storetest.Events("t.p", i, 1+w%3)...); err != nil {
						t.Errorf("append %s: %v", stream, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if err := <-errc; !errors.Is(err, errDone) {
		t.Fatalf("subscribe: %v (saw %d of %d)", err, len(seen), want)
	}
	ids := make(map[uuid.UUID]bool, want)
	for i, e := range seen {
		if e.Position != uint64(i+1) {
			t.Fatalf("event %d of the subscription has position %d: a gap or a skip", i, e.Position)
		}
		if ids[e.ID] {
			t.Fatalf("event %s delivered twice", e.ID)
		}
		ids[e.ID] = true
	}
	if len(seen) != want {
		t.Fatalf("subscription saw %d events, want %d", len(seen), want)
	}
	var all []eventstore.Event
	for {
		page, err := reader.ReadAll(ctx, uint64(len(all)), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
	}
	if len(all) != want {
		t.Fatalf("read all found %d events, want %d", len(all), want)
	}
	v := eventstore.NewVerifier()
	for i, e := range all {
		if e.ID != seen[i].ID {
			t.Fatalf("read all and the subscription differ at position %d", i+1)
		}
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
	if head, err := reader.Head(ctx); err != nil || head != uint64(want) {
		t.Fatalf("head %d (err %v), want %d", head, err, want)
	}
}

var errDone = errors.New("done")

func TestClosed(t *testing.T) {
	t.Parallel()
	s := open(t, dbtest.PostgresURL(t), postgres.Options{})
	ctx := context.Background()
	storetest.MustAppend(t, s, storetest.Stream("closed"), eventstore.Any, storetest.Events("t.c", 0, 1)...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "x", eventstore.Any, storetest.Events("t.c", 0, 1)...); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("append: %v", err)
	}
	if _, err := s.ReadAll(ctx, 0, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("read all: %v", err)
	}
	if _, err := s.ReadStream(ctx, "x", 0, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("read stream: %v", err)
	}
	if _, err := s.Head(ctx); !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("head: %v", err)
	}
	err := s.Subscribe(ctx, 0, func(context.Context, []eventstore.Event) error { return nil })
	if !errors.Is(err, eventstore.ErrClosed) {
		t.Errorf("subscribe: %v", err)
	}
}

// TestLogHeadLockSerializesAppends: while another process holds the log
// head's row lock, as an appending transaction does until it commits, no
// append of this store commits and readers see the head unchanged; one
// that waits longer than CommitTimeout fails with ErrUnavailable and
// writes nothing. Once the lock is released appends go on.
func TestLogHeadLockSerializesAppends(t *testing.T) {
	t.Parallel()
	u := dbtest.PostgresURL(t)
	s := open(t, u, postgres.Options{CommitTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := storetest.Stream("locked")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.l", 0, 1)...)
	other, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT position FROM log_head FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, eventstore.Exact(0), storetest.Events("t.l", 1, 1)...); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append while the log head is locked: %v, want ErrUnavailable", err)
	}
	if head, err := s.Head(ctx); err != nil || head != 1 {
		t.Fatalf("head %d (%v) while locked, want 1", head, err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res := storetest.MustAppend(t, s, stream, eventstore.Exact(0), storetest.Events("t.l", 1, 1)...)
	if res.Position != 2 || res.NextRevision != 2 {
		t.Fatalf("append after the lock was released: %+v, want position 2, next revision 2", res)
	}
}

// TestUnreachableServerIsUnavailable: no server at the address is an error
// wrapping eventstore.ErrUnavailable.
func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", postgres.Options{})
	if !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("open: %v, want ErrUnavailable", err)
	}
}

// TestLostConnections: the server ends every connection of a store (its
// pool's and its listener's). Calls that meet a dead connection fail with
// eventstore.ErrUnavailable and later ones succeed, and a subscription
// started before still gets an event another store appends afterwards
// (by polling, then by the listener reconnected).
func TestLostConnections(t *testing.T) {
	t.Parallel()
	base := dbtest.PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	app := "lost-" + uuid.NewString()[:8]
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	s := open(t, u.String(), postgres.Options{PollInterval: 50 * time.Millisecond})
	other := open(t, base, postgres.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream := storetest.Stream("lost")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.l", 0, 1)...)
	got := make(chan eventstore.Event, 16)
	go func() {
		_ = s.Subscribe(ctx, 0, func(_ context.Context, batch []eventstore.Event) error {
			for _, e := range batch {
				got <- e
			}
			return nil
		})
	}()
	<-got

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var killed int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).
		Scan(&killed); err != nil || killed < 2 {
		t.Fatalf("terminated %d connections (err %v), want the pool's and the listener's", killed, err)
	}
	storetest.MustAppend(t, other, stream, eventstore.Exact(0), storetest.Events("t.l", 1, 1)...)
	select {
	case e := <-got:
		if e.Revision != 1 {
			t.Fatalf("subscription got %s, want revision 1", e)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the subscription did not get the event appended after its connections were lost")
	}
	// Every failure is ErrUnavailable; the pool reconnects.
	ok := false
	for i := 0; i < 20 && !ok; i++ {
		_, err := s.Append(ctx, stream, eventstore.Any, storetest.Events("t.l", 2+i, 1)...)
		if err != nil && !errors.Is(err, eventstore.ErrUnavailable) {
			t.Fatalf("append after lost connections: %v, want nil or ErrUnavailable", err)
		}
		_, herr := s.Head(ctx)
		if herr != nil && !errors.Is(herr, eventstore.ErrUnavailable) {
			t.Fatalf("head after lost connections: %v, want nil or ErrUnavailable", herr)
		}
		ok = err == nil && herr == nil
	}
	if !ok {
		t.Fatal("the store did not recover from lost connections")
	}
}
