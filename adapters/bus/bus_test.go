package bus_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinledger/coinledger/adapters/bus"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections/dbtest"
)

const topic = "jobs"

// world is one Postgres schema shared by several bus instances (as by
// several coinledger processes), with an effects table the handlers write
// idempotently, keyed by message UUID, as the ledger dedupes a deposit by
// txid:vout.
type world struct {
	url  string
	pool *pgxpool.Pool
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{url: dbtest.PostgresURL(t)}
	// The first Open creates the schema; the effects table lives beside
	// the bus tables.
	openBus(t, w.url, time.Minute)
	pool, err := pgxpool.New(ctx, w.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, `CREATE TABLE effects (uuid text PRIMARY KEY, by text NOT NULL);
		CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	w.pool = pool
	return w
}

// apply is a handler's effect: recorded once per message whatever the
// number of calls. It reports whether this call recorded it.
func (w *world) apply(t *testing.T, msg *message.Message, by string) bool {
	t.Helper()
	tag, err := w.pool.Exec(context.Background(), `INSERT INTO effects VALUES ($1, $2) ON CONFLICT DO NOTHING`, msg.UUID, by)
	if err != nil {
		t.Error(err)
		return false
	}
	return tag.RowsAffected() == 1
}

func (w *world) effects(t *testing.T) map[string]string {
	t.Helper()
	rows, err := w.pool.Query(context.Background(), `SELECT uuid, by FROM effects`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var u, by string
		if err := rows.Scan(&u, &by); err != nil {
			t.Fatal(err)
		}
		out[u] = by
	}
	return out
}

// openBus opens a Postgres bus on url, closed when t ends.
func openBus(t *testing.T, url string, ackDeadline time.Duration) *bus.Bus {
	t.Helper()
	b, err := bus.Open(context.Background(), url, bus.Options{Topics: []string{topic}, ConsumerGroup: "test",
		PollInterval: 20 * time.Millisecond, AckDeadline: ackDeadline})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func publish(t *testing.T, b *bus.Bus, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err := b.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.UUID)
	}
	return ids
}

func receive(t *testing.T, ch <-chan *message.Message, within time.Duration) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(within):
		t.Fatalf("no message within %s", within)
	}
	return nil
}

// TestPostgresOneConsumerGroupAcrossInstances: messages published on one
// instance are handled by two others competing in one consumer group, each
// message by exactly one handler call.
func TestPostgresOneConsumerGroupAcrossInstances(t *testing.T) {
	w := newWorld(t)
	a, b, c := openBus(t, w.url, time.Minute), openBus(t, w.url, time.Minute), openBus(t, w.url, time.Minute)
	const n = 40
	ids := publish(t, a, n)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	calls := map[string][]string{}
	done := make(chan struct{})
	var once sync.Once
	consume := func(name string, sub *bus.Bus) {
		ch, err := sub.Subscribe(ctx, topic)
		if err != nil {
			t.Error(err)
			return
		}
		go func() {
			for m := range ch {
				w.apply(t, m, name)
				mu.Lock()
				calls[m.UUID] = append(calls[m.UUID], name)
				if len(calls) == n {
					once.Do(func() { close(done) })
				}
				mu.Unlock()
				m.Ack()
			}
		}()
	}
	consume("b", b)
	consume("c", c)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("handled %d of %d messages", len(calls), n)
	}
	time.Sleep(300 * time.Millisecond) // room for a second delivery, if any
	mu.Lock()
	defer mu.Unlock()
	for _, id := range ids {
		if got := calls[id]; len(got) != 1 {
			t.Errorf("message %s handled by %v, want exactly one call", id, got)
		}
	}
	if e := w.effects(t); len(e) != n {
		t.Errorf("%d effects, want %d", len(e), n)
	}
}

// TestPostgresNackRetriesFromSavepoint: a handler that writes through the
// subscriber's transaction, then fails (with a statement that aborts the
// transaction) and nacks, is retried from the state before its first
// attempt: the retry succeeds, and the write happens once.
func TestPostgresNackRetriesFromSavepoint(t *testing.T) {
	w := newWorld(t)
	b := openBus(t, w.url, time.Minute)
	publish(t, b, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Subscribe(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		m := receive(t, ch, 10*time.Second)
		tx, ok := wsql.TxFromContext(m.Context())
		if !ok {
			t.Fatal("no subscriber transaction in the message context")
		}
		if _, err := tx.ExecContext(m.Context(), `UPDATE counter SET n = n + 1`); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		w.apply(t, m, "b")
		if attempt == 1 {
			if _, err := tx.ExecContext(m.Context(), `SELECT 1/0`); err == nil {
				t.Fatal("1/0 did not fail")
			}
			m.Nack()
			continue
		}
		m.Ack()
	}
	var n int
	waitFor(t, "the ack to commit", func() bool {
		var offset int64
		if err := w.pool.QueryRow(ctx, `SELECT offset_acked FROM "watermill_offsets_jobs" WHERE consumer_group = 'test'`).Scan(&offset); err != nil {
			t.Fatal(err)
		}
		return offset > 0
	})
	if err := w.pool.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("counter %d after a failed attempt and a successful one, want 1", n)
	}
	if e := w.effects(t); len(e) != 1 {
		t.Errorf("effects %v, want one", e)
	}
	select {
	case m := <-ch:
		t.Errorf("message %s delivered again after its ack", m.UUID)
	case <-time.After(300 * time.Millisecond):
	}
}

// TestPostgresRedeliveredAfterSubscriberDies: a subscriber that applied
// the effect and died before its ack (its subscription cancelled, or its
// connection closed) loses the message to another instance of the group;
// the redelivery changes nothing.
func TestPostgresRedeliveredAfterSubscriberDies(t *testing.T) {
	tests := []struct {
		name string
		kill func(t *testing.T, w *world, app string, cancel context.CancelFunc)
	}{
		{"context cancelled", func(t *testing.T, w *world, app string, cancel context.CancelFunc) { cancel() }},
		{"connection closed", func(t *testing.T, w *world, app string, cancel context.CancelFunc) {
			var n int
			if err := w.pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = $1 AND state = 'idle in transaction'`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Fatalf("terminated %d connections of the subscriber holding the message, want 1", n)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			app := "bus_test_" + strings.ReplaceAll(watermill.NewShortUUID(), "-", "")
			dying := openBus(t, w.url+"&application_name="+app, 2*time.Second)
			other := openBus(t, w.url, time.Minute)
			ids := publish(t, other, 1)

			dctx, dcancel := context.WithCancel(context.Background())
			defer dcancel()
			dch, err := dying.Subscribe(dctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			first := receive(t, dch, 10*time.Second)
			if !w.apply(t, first, "dying") {
				t.Fatal("the first delivery found the effect applied already")
			}
			tt.kill(t, w, app, dcancel) // before the ack

			octx, ocancel := context.WithCancel(context.Background())
			defer ocancel()
			och, err := other.Subscribe(octx, topic)
			if err != nil {
				t.Fatal(err)
			}
			again := receive(t, och, 20*time.Second)
			if again.UUID != ids[0] {
				t.Fatalf("redelivered %s, want %s", again.UUID, ids[0])
			}
			if w.apply(t, again, "other") {
				t.Error("the redelivery applied the effect a second time")
			}
			again.Ack()
			if e := w.effects(t); len(e) != 1 || e[ids[0]] != "dying" {
				t.Errorf("effects %v, want the dying subscriber's one", e)
			}
		})
	}
}

// TestCorrelationIDCopied: a published message carries the correlation id
// of its context (or a new one) to the consumer, on both kinds of bus.
func TestCorrelationIDCopied(t *testing.T) {
	urls := map[string]string{bus.KindGoChannel: "", bus.KindPostgres: dbtest.PostgresURL(t)}
	for kind, url := range urls {
		t.Run(kind, func(t *testing.T) {
			b, err := bus.Open(context.Background(), url, bus.Options{Topics: []string{topic}, PollInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.Kind() != kind {
				t.Fatalf("kind %s, want %s", b.Kind(), kind)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ch, err := b.Subscribe(ctx, topic) // before publishing: the gochannel keeps nothing
			if err != nil {
				t.Fatal(err)
			}
			withID := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			withID.SetContext(eventstore.WithCorrelationID(context.Background(), "req-42"))
			without := message.NewMessage(watermill.NewUUID(), []byte(`{}`))
			if err := b.Publish(topic, withID, without); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{withID.UUID: "req-42", without.UUID: ""}
			for range 2 {
				m := receive(t, ch, 10*time.Second) // in any order on the gochannel
				got := eventstore.CorrelationID(bus.Context(m))
				if w := want[m.UUID]; w != "" && got != w || w == "" && (got == "" || got == "req-42") {
					t.Errorf("message %s: correlation id %q, want %q (or a fresh one)", m.UUID, got, w)
				}
				if got != middleware.MessageCorrelationID(m) {
					t.Errorf("context %q, metadata %q", got, middleware.MessageCorrelationID(m))
				}
				m.Ack()
			}
			if err := b.Publish("elsewhere", message.NewMessage(watermill.NewUUID(), nil)); err == nil {
				t.Error("published on an undeclared topic")
			}
		})
	}
}

// TestPostgresMigrateConcurrently: instances opening one fresh schema at
// once all succeed (the tables are created once, under a lock).
func TestPostgresMigrateConcurrently(t *testing.T) {
	url := dbtest.PostgresURL(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			b, err := bus.Open(context.Background(), url, bus.Options{Topics: []string{topic, "other.0", "other.1"}})
			if err != nil {
				errs <- err
				return
			}
			errs <- b.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
