package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/postgres"
)

func TestConformance(t *testing.T) { dbtest.Run(t, dbtest.OpenPostgres) }

func TestRebuild(t *testing.T) { dbtest.RunRebuild(t, dbtest.OpenPostgres) }

func BenchmarkCatchUp(b *testing.B) { dbtest.BenchCatchUp(b, dbtest.OpenPostgres) }

func TestOpenBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://secret@%zz"); err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	} else if want := "secret"; strings.Contains(err.Error(), want) {
		t.Errorf("error %q leaks the URL", err)
	}
}

// TestRunnerSurvivesOutage: the read-model server goes away (every
// connection cut, new ones refused) while events are appended, then comes
// back. The runner keeps running, retries, and ends with every event
// applied exactly once (the counter table has one row per position, its
// primary key).
func TestRunnerSurvivesOutage(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(dbtest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := dbtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	db, err := postgres.Open(openCtx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	store := dbtest.NewStore(t)
	counter := &dbtest.Counter{}
	r := projections.NewRunner(db, dbtest.SmallBatches{Store: store, Size: 25}, projections.Options{
		RetryMin: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxBatch: 50,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, counter, balance.Balances{})
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()

	head := dbtest.AppendCredits(t, store, "wallet-a", 300, 5, 10)
	waitAll(t, r, head)
	for round := range 3 {
		// Appends go on during the outage, while the runner is mid-write.
		appended := make(chan uint64)
		go func() { appended <- dbtest.AppendCredits(t, store, "wallet-b", 500, 5, 5) }()
		time.Sleep(20 * time.Millisecond)
		proxy.Cut()
		time.Sleep(500 * time.Millisecond)
		st, err := r.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.State != projections.StateRetrying && s.Position < s.Head {
				t.Errorf("round %d: %s during the outage: %+v, want retrying", round, s.Name, s)
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v during the outage", err)
		default:
		}
		proxy.Restore()
		head = <-appended
		waitAll(t, r, head)
	}
	st, err := r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State != projections.StateRunning || s.Failures == 0 {
			t.Errorf("%s after the outages: %+v, want running, with failures counted", s.Name, s)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	n, lo, hi, err := dbtest.CounterRows(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("counter has %d rows %d..%d, want %d rows 1..%d", n, lo, hi, head, head)
	}
	var sum int64
	if err := db.QueryRow(ctx, `SELECT CAST(SUM(amount) AS BIGINT) FROM balances`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if uint64(sum) != head {
		t.Errorf("balances sum to %d, want %d (one per event)", sum, head)
	}
}

func waitAll(tb testing.TB, r *projections.Runner, pos uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, name := range []string{"counter", "balances"} {
		if err := r.WaitFor(ctx, name, pos); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestDeadlockIsTransient: of two transactions that lock two rows in
// opposite orders, Postgres aborts one (deadlock detected); Update reports
// it as projections.ErrTransient, so the runner retries it.
func TestDeadlockIsTransient(t *testing.T) {
	ctx := context.Background()
	db := dbtest.OpenPostgres(t)
	if err := db.Migrate(ctx, "deadlock", []string{`CREATE TABLE d (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)`,
		`INSERT INTO d (id, v) VALUES (1, 0), (2, 0)`}); err != nil {
		t.Fatal(err)
	}
	var barrier, done sync.WaitGroup
	barrier.Add(2)
	done.Add(2)
	errs := make([]error, 2)
	for i := range 2 {
		go func() {
			defer done.Done()
			first, second := 1, 2
			if i == 1 {
				first, second = 2, 1
			}
			errs[i] = db.Update(ctx, func(tx projections.Tx) error {
				if _, err := tx.Exec(ctx, `UPDATE d SET v = v + 1 WHERE id = ?`, first); err != nil {
					barrier.Done()
					return err
				}
				barrier.Done()
				barrier.Wait() // both hold their first row
				_, err := tx.Exec(ctx, `UPDATE d SET v = v + 1 WHERE id = ?`, second)
				return err
			})
		}()
	}
	done.Wait()
	failed := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		failed++
		if !errors.Is(err, projections.ErrTransient) || !projections.Transient(err) {
			t.Errorf("deadlock error %v is not ErrTransient", err)
		}
	}
	if failed != 1 {
		t.Errorf("errors %v, want one deadlock", errs)
	}
}

// TestReadsOutsideTransactionsTransient: a read outside any transaction
// (DB.Query, DB.QueryRow, as the runner reads a follower's snapshot at
// start) that fails because the server went away is
// projections.ErrTransient, as failures inside Update are, so the runner
// retries it instead of stopping: on a pooled connection the server
// terminated (as pg_ctl stop -m fast does), and when no connection can be
// made. A query error of the caller's own stays as it is.
func TestReadsOutsideTransactionsTransient(t *testing.T) {
	ctx := context.Background()
	u, err := url.Parse(dbtest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	proxy := dbtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)

	// terminate ends the session of db's only idle pooled connection.
	terminate := func(t *testing.T) {
		t.Helper()
		var pid int64
		if err := db.QueryRow(ctx, `SELECT CAST(pg_backend_pid() AS BIGINT)`).Scan(&pid); err != nil {
			t.Fatal(err)
		}
		var done bool
		if err := admin.QueryRow(ctx, `SELECT pg_terminate_backend(CAST(? AS INTEGER))`, pid).Scan(&done); err != nil || !done {
			t.Fatalf("terminate backend %d: %v %v", pid, done, err)
		}
	}
	reads := []struct {
		name string
		read func() error
	}{
		{"QueryRow", func() error {
			var n int64
			return db.QueryRow(ctx, `SELECT CAST(1 AS BIGINT)`).Scan(&n)
		}},
		{"Query", func() error {
			rows, err := db.Query(ctx, `SELECT CAST(1 AS BIGINT)`)
			if err != nil {
				return err
			}
			return rows.Close()
		}},
	}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			terminate(t)
			if err := r.read(); !errors.Is(err, projections.ErrTransient) {
				t.Errorf("on a terminated connection: %v, want ErrTransient", err)
			}
			proxy.Cut()
			err := r.read()
			proxy.Restore()
			if !errors.Is(err, projections.ErrTransient) {
				t.Errorf("with the server unreachable: %v, want ErrTransient", err)
			}
			if err := r.read(); err != nil {
				t.Errorf("after the server is back: %v", err)
			}
		})
	}
	var n int64
	if err := db.QueryRow(ctx, `SELECT CAST(1 AS BIGINT) FROM no_such_table`).Scan(&n); err == nil || projections.Transient(err) {
		t.Errorf("query of a missing table: %v, want a non-transient error", err)
	}
}
