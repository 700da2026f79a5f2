package dbtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
)

// NewDB returns a fresh, empty read-model database for one test, closed when
// the test ends.
type NewDB func(tb testing.TB) projections.DB

// Run runs the conformance suite; every subtest is parallel and gets its own
// database from newDB and its own event store.
func Run(t *testing.T, newDB NewDB) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewDB)
	}{
		{"MigrateIdempotent", testMigrate},
		{"MigrateConcurrent", testMigrateConcurrent},
		{"UpdateRollsBack", testRollback},
		{"UncommittedInvisible", testIsolation},
		{"BulkInsertAndUpsert", testInsert},
		{"NoRows", testNoRows},
		{"CatchUpThenLive", testCatchUpThenLive},
		{"RestartResumesExactly", testRestart},
		{"PoisonParksOnlyItsProjection", testPoison},
		{"TransientFailuresRetried", testTransient},
		{"CommitOutcomeLost", testLostCommit},
		{"CatchUpBatches", testBatching},
		{"WaitFor", testWaitFor},
		{"Status", testStatus},
		{"ReadersDuringWrites", testReaders},
		{"TwoRunnersOneProjection", testTwoRunners},
		{"SelectiveSkipsUnwanted", testSelective},
		{"HostileTextRoundTrips", testHostileText},
		{"HostileEventTextsCatchUp", testHostileEvents},
		{"FollowerResumesFromSnapshot", testFollowerResumes},
		{"FollowerPoisonSkipped", testFollowerSkip},
		{"FollowerTransientParkNamesTheEvent", testFollowerTransientParkNamesTheEvent},
		{"FollowerSnapshotRolledBack", testFollowerSnapshotRolledBack},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newDB)
		})
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func count(tb testing.TB, db projections.DB, table string) int64 {
	tb.Helper()
	var n int64
	must(tb, db.QueryRow(context.Background(), `SELECT COUNT(*) FROM `+table).Scan(&n))
	return n
}

func wait(tb testing.TB, r *projections.Runner, name string, pos uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	must(tb, r.WaitFor(ctx, name, pos))
}

func testMigrate(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	v1 := []string{`CREATE TABLE m1 (id BIGINT PRIMARY KEY)`}
	v2 := append(v1[:1:1], `CREATE TABLE m2 (id BIGINT PRIMARY KEY, b `+db.Dialect().Bytes()+`)`)
	must(t, db.Migrate(ctx, "a", v1))
	must(t, db.Migrate(ctx, "a", v1)) // a rerun would fail: CREATE TABLE without IF NOT EXISTS
	must(t, db.Migrate(ctx, "a", v2))
	must(t, db.Migrate(ctx, "a", v2))
	count(t, db, "m2")
	// Owners are independent: "b" starts at version 0.
	must(t, db.Migrate(ctx, "b", []string{`CREATE TABLE m3 (id BIGINT)`}))
	count(t, db, "m3")

	// A failing step undoes the whole migration, earlier steps included.
	bad := append(v2[:2:2], `CREATE TABLE m4 (id BIGINT)`, `CREATE TABLE broken (`)
	if err := db.Migrate(ctx, "a", bad); err == nil {
		t.Fatal("migration with a broken step succeeded")
	} else if !strings.Contains(err.Error(), "version 4") {
		t.Errorf("error does not name the failing version: %v", err)
	}
	if _, err := db.Query(ctx, `SELECT id FROM m4`); err == nil {
		t.Error("table m4 of a failed migration exists")
	}
	must(t, db.Migrate(ctx, "a", v2))
	fixed := append(v2[:2:2], `CREATE TABLE m4 (id BIGINT)`)
	must(t, db.Migrate(ctx, "a", fixed))
	count(t, db, "m4")

	if err := db.Migrate(ctx, "a", v1); !errors.Is(err, projections.ErrSchemaTooNew) {
		t.Errorf("migrating back to fewer steps: got %v, want ErrSchemaTooNew", err)
	}
}

func testMigrateConcurrent(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	steps := []string{`CREATE TABLE c1 (id BIGINT)`, `CREATE TABLE c2 (id BIGINT)`}
	var g errgroup.Group
	for i := 0; i < 4; i++ {
		g.Go(func() error { return db.Migrate(ctx, "c", steps) })
	}
	must(t, g.Wait())
	var versions int64
	must(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE owner = ?`, "c").Scan(&versions))
	if versions != 2 {
		t.Errorf("recorded %d versions, want 2", versions)
	}
}

func testRollback(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	must(t, db.Migrate(ctx, "t", []string{`CREATE TABLE r (id BIGINT PRIMARY KEY)`}))
	sentinel := errors.New("changed my mind")
	err := db.Update(ctx, func(tx projections.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO r (id) VALUES (?)`, 1); err != nil {
			return err
		}
		must(t, tx.Insert(ctx, projections.Bulk{Table: "r", Columns: []string{"id"}}, [][]any{{2}, {3}}))
		return sentinel
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if n := count(t, db, "r"); n != 0 {
		t.Fatalf("rolled-back transaction left %d rows", n)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic in fn did not propagate")
			}
		}()
		_ = db.Update(ctx, func(tx projections.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO r (id) VALUES (?)`, 4); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if n := count(t, db, "r"); n != 0 {
		t.Fatalf("panicking transaction left %d rows", n)
	}

	// A failed statement fails the transaction: nothing of it commits.
	err = db.Update(ctx, func(tx projections.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO r (id) VALUES (?)`, 5); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO r (id) VALUES (?)`, 5)
		return err
	})
	if err == nil {
		t.Fatal("duplicate key did not fail")
	}
	if n := count(t, db, "r"); n != 0 {
		t.Fatalf("failed transaction left %d rows", n)
	}

	// The database still works after all that (no leaked writer).
	ctx5, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	must(t, db.Update(ctx5, func(tx projections.Tx) error {
		n, err := tx.Exec(ctx5, `INSERT INTO r (id) VALUES (?)`, 6)
		if err == nil && n != 1 {
			err = fmt.Errorf("insert affected %d rows", n)
		}
		return err
	}))
	if n := count(t, db, "r"); n != 1 {
		t.Fatalf("committed transaction left %d rows, want 1", n)
	}
}

func testIsolation(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	must(t, db.Migrate(ctx, "t", []string{`CREATE TABLE iso (id BIGINT PRIMARY KEY)`}))
	must(t, db.Update(ctx, func(tx projections.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO iso (id) VALUES (?)`, 1); err != nil {
			return err
		}
		var inside int64
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM iso`).Scan(&inside); err != nil {
			return err
		}
		if inside != 1 {
			t.Errorf("transaction sees %d of its rows, want 1", inside)
		}
		rows, err := tx.Query(ctx, `SELECT id FROM iso`)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if n != 1 {
			t.Errorf("Tx.Query returned %d rows, want 1", n)
		}
		if outside := count(t, db, "iso"); outside != 0 {
			t.Errorf("a reader sees %d uncommitted rows", outside)
		}
		return nil
	}))
	if n := count(t, db, "iso"); n != 1 {
		t.Errorf("after commit a reader sees %d rows, want 1", n)
	}
}

func testInsert(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	must(t, db.Migrate(ctx, "t", []string{`CREATE TABLE bulk (
		id   BIGINT PRIMARY KEY,
		name TEXT NOT NULL,
		data ` + db.Dialect().Bytes() + `
	)`}))
	bulk := projections.Bulk{Table: "bulk", Columns: []string{"id", "name", "data"}}
	const n = 2500 // several statements' worth
	rows := make([][]any, n)
	for i := range rows {
		var data any
		if i%3 != 0 {
			data = blob(i)
		}
		rows[i] = []any{int64(i), fmt.Sprintf("name-%d", i), data}
	}
	must(t, db.Update(ctx, func(tx projections.Tx) error { return tx.Insert(ctx, bulk, rows) }))
	if got := count(t, db, "bulk"); got != n {
		t.Fatalf("inserted %d rows, want %d", got, n)
	}
	var name string
	var data []byte
	must(t, db.QueryRow(ctx, `SELECT name, data FROM bulk WHERE id = ?`, 1234).Scan(&name, &data))
	if name != "name-1234" || !bytes.Equal(data, blob(1234)) {
		t.Errorf("row 1234 = %q %x", name, data)
	}
	must(t, db.QueryRow(ctx, `SELECT data FROM bulk WHERE id = ?`, 1233).Scan(&data))
	if data != nil {
		t.Errorf("NULL came back as %x", data)
	}

	// Upsert: conflicting rows update, new rows insert, in one call.
	upsert := bulk
	upsert.OnConflict = "ON CONFLICT (id) DO UPDATE SET name = excluded.name"
	up := make([][]any, 0, 1500)
	for i := 1000; i < 2500+1000; i += 2 {
		up = append(up, []any{int64(i), fmt.Sprintf("new-%d", i), nil})
	}
	must(t, db.Update(ctx, func(tx projections.Tx) error { return tx.Insert(ctx, upsert, up) }))
	if got := count(t, db, "bulk"); got != 2500+500 {
		t.Errorf("after upsert %d rows, want %d", got, 3000)
	}
	must(t, db.QueryRow(ctx, `SELECT name, data FROM bulk WHERE id = ?`, 2000).Scan(&name, &data))
	if name != "new-2000" || data == nil {
		t.Errorf("upserted row 2000 = %q %x, want new name and old data", name, data)
	}

	// Small and large upserts, twice in one transaction (the second must not
	// see the first one's staged rows).
	twice := func(name string, n int) [][]any {
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{int64(i), name, nil}
		}
		return rows
	}
	must(t, db.Update(ctx, func(tx projections.Tx) error {
		for _, rows := range [][][]any{twice("small-1", 10), twice("small-2", 10), twice("large-1", 600), twice("large-2", 600)} {
			if err := tx.Insert(ctx, upsert, rows); err != nil {
				return err
			}
		}
		return nil
	}))
	for id, want := range map[int]string{5: "large-2", 599: "large-2", 600: "name-600"} {
		must(t, db.QueryRow(ctx, `SELECT name FROM bulk WHERE id = ?`, id).Scan(&name))
		if name != want {
			t.Errorf("after repeated upserts row %d is %q, want %q", id, name, want)
		}
	}

	// A plain insert of an existing key fails and writes nothing.
	err := db.Update(ctx, func(tx projections.Tx) error {
		return tx.Insert(ctx, bulk, [][]any{{int64(100000), "x", nil}, {int64(5), "dup", nil}})
	})
	if err == nil {
		t.Error("insert of a duplicate key succeeded")
	}
	// A row of the wrong width is rejected.
	err = db.Update(ctx, func(tx projections.Tx) error {
		return tx.Insert(ctx, bulk, [][]any{{int64(100001), "x"}})
	})
	if err == nil {
		t.Error("insert of a short row succeeded")
	}
	if got := count(t, db, "bulk"); got != 3000 {
		t.Errorf("failed inserts left %d rows, want 3000", got)
	}
}

func blob(i int) []byte { return []byte{byte(i), 0, byte(i >> 8)} }

func testNoRows(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	must(t, db.Migrate(ctx, "t", []string{`CREATE TABLE empty (id BIGINT)`}))
	var id int64
	if err := db.QueryRow(ctx, `SELECT id FROM empty WHERE id = ?`, 1).Scan(&id); !errors.Is(err, projections.ErrNoRows) {
		t.Errorf("DB.QueryRow on no rows: %v, want ErrNoRows", err)
	}
	must(t, db.Update(ctx, func(tx projections.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM empty`).Scan(&id); !errors.Is(err, projections.ErrNoRows) {
			t.Errorf("Tx.QueryRow on no rows: %v, want ErrNoRows", err)
		}
		return nil
	}))
	if db.Dialect() != projections.SQLite && db.Dialect() != projections.Postgres {
		t.Errorf("unknown dialect %q", db.Dialect())
	}
}

func testCatchUpThenLive(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	head := AppendCredits(t, store, "wallet-a", 1000, 20, 100)
	counter := &Counter{}
	r := projections.NewRunner(db, store, projections.Options{}, balance.Balances{}, counter)
	stop := start(t, r)
	wait(t, r, "balances", head)
	wait(t, r, "counter", head)
	for i := 0; i < 20; i++ {
		if got, err := balance.Balance(ctx, db, fmt.Sprintf("acct-%d", i)); err != nil || got != 50 {
			t.Fatalf("balance of acct-%d = %d, %v; want 50", i, got, err)
		}
	}
	// Live: each append is visible once WaitFor returns (read-your-writes).
	for i := 0; i < 30; i++ {
		res, err := store.Append(ctx, "wallet-b", eventstore.Any, balance.Credit("live", 5))
		must(t, err)
		wait(t, r, "balances", res.Position)
		if got, err := balance.Balance(ctx, db, "live"); err != nil || got != int64(5*(i+1)) {
			t.Fatalf("after live credit %d balance = %d, %v; want %d", i, got, err, 5*(i+1))
		}
	}
	wait(t, r, "counter", head+30)
	must(t, stop())
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if n != 1030 || lo != 1 || hi != 1030 {
		t.Errorf("counter has %d rows %d..%d, want 1030 rows 1..1030", n, lo, hi)
	}
}

// testRestart stops and restarts runners at random points while events keep
// arriving: in the end every event is applied exactly once (the counter's
// primary key fails any repeat, a gap shows as a missing row).
func testRestart(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	AppendCredits(t, store, "wallet-a", 1000, 7, 250)
	writerDone := make(chan error, 1)
	go func() {
		for i := 0; i < 60; i++ {
			events := make([]eventstore.EventData, 1+i%3)
			for j := range events {
				events[j] = balance.Credit("acct-live", 1)
			}
			if _, err := store.Append(ctx, "wallet-b", eventstore.Any, events...); err != nil {
				writerDone <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
		writerDone <- nil
	}()
	// Status creates the checkpoint table the loop reads before the first run.
	_, err := projections.NewRunner(db, store, projections.Options{}, &Counter{}).Status(ctx)
	must(t, err)
	written := false
	restarts := 0
	for ; ; restarts++ {
		// The projection further behind is the one a run must move.
		lagging := "counter"
		before, err := projections.StoredCheckpoint(ctx, db, lagging)
		must(t, err)
		if cp, err := projections.StoredCheckpoint(ctx, db, "balances"); err != nil {
			t.Fatal(err)
		} else if cp < before {
			lagging, before = "balances", cp
		}
		counter := &Counter{}
		r := projections.NewRunner(db, store, projections.Options{MaxBatch: 300}, counter, balance.Balances{})
		stop := start(t, r)
		head, err := store.Head(ctx)
		must(t, err)
		if restarts%2 == 0 && head > before {
			// Stop right after a commit, with the next batch likely in flight.
			wait(t, r, lagging, before+1)
		} else {
			time.Sleep(time.Duration(restarts%7) * time.Millisecond)
		}
		if err := stop(); err != nil {
			t.Fatalf("run %d: %v", restarts, err)
		}
		if !written {
			select {
			case err := <-writerDone:
				must(t, err)
				written = true
			default:
			}
		}
		if written && restarts >= 10 {
			head, err := store.Head(ctx)
			must(t, err)
			c1, err := projections.StoredCheckpoint(ctx, db, "counter")
			must(t, err)
			c2, err := projections.StoredCheckpoint(ctx, db, "balances")
			must(t, err)
			if c1 == head && c2 == head {
				break
			}
		}
		if restarts > 5000 {
			t.Fatalf("no progress after %d restarts", restarts)
		}
	}
	head, err := store.Head(ctx)
	must(t, err)
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if uint64(n) != head || lo != 1 || uint64(hi) != head {
		t.Errorf("after %d restarts counter has %d rows %d..%d, want %d rows 1..%d", restarts, n, lo, hi, head, head)
	}
	var sum int64
	must(t, db.QueryRow(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM balances`).Scan(&sum))
	cp, err := projections.StoredCheckpoint(ctx, db, "balances")
	must(t, err)
	if uint64(sum) != cp {
		t.Errorf("balances sum to %d at checkpoint %d: every event credits 1", sum, cp)
	}
	t.Logf("%d restarts, %d events", restarts, head)
}

// testPoison checks that an event that keeps failing parks only its
// projection: the events before it are applied (rows and checkpoint
// together, nothing of the failed batch), the other projection on the same
// runner goes past it, Run goes on, Status shows where and why, WaitFor
// answers at once; after the fault is fixed, Retry resumes from the
// checkpoint and every event is applied exactly once.
func testPoison(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	first := AppendCredits(t, store, "wallet-a", 100, 3, 50)
	counter := &Counter{}
	counter.Fail.Store(true)
	r := projections.NewRunner(db, store, fastRetry(), counter, balance.Balances{})
	runCtx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	wait(t, r, "counter", first)
	_, err := store.Append(ctx, "wallet-a", eventstore.Any,
		balance.Credit("acct-0", 1), eventstore.EventData{Type: PoisonType, Data: []byte(`{}`)}, balance.Credit("acct-1", 1))
	must(t, err)
	poison := first + 2
	head := AppendCredits(t, store, "wallet-b", 20, 2, 5)

	wait(t, r, "balances", head) // the other projection goes past the poison
	waitCtx, waitCancel := context.WithTimeout(ctx, 60*time.Second)
	defer waitCancel()
	if err := r.WaitFor(waitCtx, "counter", head); !errors.Is(err, projections.ErrParked) || !strings.Contains(err.Error(), ErrPoison.Error()) {
		t.Fatalf("WaitFor on a parked projection: %v, want ErrParked with the cause", err)
	}
	// A read-your-write wait on a parked projection answers at once.
	began := time.Now()
	if err := r.WaitFor(waitCtx, "counter", head+1000); !errors.Is(err, projections.ErrParked) || time.Since(began) > 5*time.Second {
		t.Errorf("WaitFor on a parked projection: %v after %v, want ErrParked at once", err, time.Since(began))
	}
	st := statusOf(t, r, "counter")
	if st.State != projections.StateParked || st.ParkedAt != poison || !strings.Contains(st.Error, ErrPoison.Error()) ||
		st.Position != poison-1 || st.Failures == 0 || !st.Running {
		t.Errorf("status of the parked projection: %+v, want parked at %d (position %d) with the error", st, poison, poison-1)
	}
	if st := statusOf(t, r, "balances"); st.State != projections.StateRunning || st.Error != "" || st.Position != head {
		t.Errorf("status of the other projection: %+v, want running at %d", st, head)
	}
	cp, err := projections.StoredCheckpoint(ctx, db, "counter")
	must(t, err)
	n, _, hi, err := CounterRows(ctx, db)
	must(t, err)
	if cp != poison-1 || n != int64(poison-1) || uint64(hi) != poison-1 {
		t.Fatalf("parked: checkpoint %d, %d rows up to %d; want all at %d", cp, n, hi, poison-1)
	}
	if err := r.Retry("balances"); !errors.Is(err, projections.ErrNotParked) {
		t.Errorf("Retry of a running projection: %v, want ErrNotParked", err)
	}
	if err := r.Retry("nope"); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("Retry of an unknown projection: %v, want ErrUnknownProjection", err)
	}

	// Retried while still broken: parks again at the same event.
	failures := st.Failures
	must(t, r.Retry("counter"))
	if !eventually(60*time.Second, func() bool {
		st = statusOf(t, r, "counter")
		return st.State == projections.StateParked && st.Failures > failures
	}) {
		t.Fatalf("retried while broken: %+v, want parked again", st)
	}
	if st.ParkedAt != poison {
		t.Errorf("parked again at %d, want %d", st.ParkedAt, poison)
	}

	// Fixed: Retry resumes from the checkpoint, exactly once.
	counter.Fail.Store(false)
	must(t, r.Retry("counter"))
	wait(t, r, "counter", head)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a projection was parked", err)
	default:
	}
	if st := statusOf(t, r, "counter"); st.State != projections.StateRunning || st.Error != "" || st.ParkedAt != 0 {
		t.Errorf("status after retry: %+v, want running without an error", st)
	}
	cancel()
	must(t, <-done)
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("after retry: %d rows %d..%d, want %d rows", n, lo, hi, head)
	}
	var sum int64
	must(t, db.QueryRow(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM balances`).Scan(&sum))
	if uint64(sum) != head-1 { // every credit adds 1; the poison event nothing
		t.Errorf("balances sum to %d, want %d", sum, head-1)
	}
}

// testTransient checks that transient failures are retried from the
// checkpoint until they pass, without parking: every event is applied
// exactly once.
func testTransient(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	const k = 4
	counter := &Counter{}
	counter.Transient.Store(k)
	head := AppendCredits(t, store, "wallet-a", 200, 3, 20)
	r := projections.NewRunner(db, SmallBatches{Store: store, Size: 30}, fastRetry(), counter, balance.Balances{})
	stop := start(t, r)
	wait(t, r, "counter", head)
	wait(t, r, "balances", head)
	// Live events after the retries go through the projection's own
	// subscription.
	counter.Transient.Store(1)
	head = AppendCredits(t, store, "wallet-b", 10, 2, 3)
	wait(t, r, "counter", head)
	st := statusOf(t, r, "counter")
	must(t, stop())
	if st.State != projections.StateRunning || st.Error != "" || st.Failures != k+1 {
		t.Errorf("status after transient failures: %+v, want running with %d failures", st, k+1)
	}
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("after transient failures: %d rows %d..%d, want %d rows", n, lo, hi, head)
	}
}

// lostCommits is a DB whose transactions commit but, while Lose is above
// 0, report a transient failure anyway (counting Lose down): the
// connection dropped after COMMIT was sent, as when the server stops
// between committing and answering.
type lostCommits struct {
	projections.DB
	Lose atomic.Int32
}

func (db *lostCommits) Update(ctx context.Context, fn func(projections.Tx) error) error {
	if err := db.DB.Update(ctx, fn); err != nil {
		return err
	}
	if takeOne(&db.Lose) {
		return fmt.Errorf("commit: %w: connection lost after COMMIT (test)", projections.ErrTransient)
	}
	return nil
}

// testLostCommit checks that a write whose COMMIT took effect but whose
// outcome was lost is not applied again: the runner reads the stored
// checkpoint back, finds the position the lost write stored, and goes on
// from there (the counter's primary key fails a second application, and
// the fence would stop the runner). Nothing parks and Run goes on.
func testLostCommit(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := &lostCommits{DB: newDB(t)}, NewStore(t)
	counter := &Counter{}
	r := projections.NewRunner(db, store, fastRetry(), counter, balance.Balances{})
	stop := start(t, r)
	head := AppendCredits(t, store, "wallet-a", 50, 3, 10)
	wait(t, r, "counter", head)
	wait(t, r, "balances", head)
	for round := range 3 {
		// The next writes (commits, or the checkpoint reads after them) lose
		// their outcomes.
		db.Lose.Store(int32(1 + round))
		head = AppendCredits(t, store, "wallet-b", 30, 3, 3)
		wait(t, r, "counter", head)
		wait(t, r, "balances", head)
		if n := db.Lose.Load(); n != 0 {
			t.Fatalf("round %d: %d lost outcomes left: the runner wrote nothing after the appends", round, n)
		}
	}
	for _, name := range []string{"counter", "balances"} {
		if st := statusOf(t, r, name); st.State != projections.StateRunning || st.Error != "" || st.Position != head {
			t.Errorf("status of %s after lost commits: %+v, want running at %d", name, st, head)
		}
	}
	if st := statusOf(t, r, "counter"); st.Failures == 0 && statusOf(t, r, "balances").Failures == 0 {
		t.Errorf("no failure counted: no outcome was lost")
	}
	must(t, stop())
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("after lost commits: %d rows %d..%d, want %d rows 1..%d", n, lo, hi, head, head)
	}
	var sum int64
	must(t, db.QueryRow(ctx, `SELECT CAST(SUM(amount) AS BIGINT) FROM balances`).Scan(&sum))
	if uint64(sum) != head {
		t.Errorf("balances sum to %d, want %d (one per event)", sum, head)
	}
	for _, name := range []string{"counter", "balances"} {
		cp, err := projections.StoredCheckpoint(ctx, db, name)
		must(t, err)
		if cp != head {
			t.Errorf("stored checkpoint of %s: %d, want %d", name, cp, head)
		}
	}
}

// fastRetry is runner options with short retry waits, for tests.
func fastRetry() projections.Options {
	return projections.Options{RetryMin: time.Millisecond, RetryMax: 20 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// statusOf returns projection name's status.
func statusOf(tb testing.TB, r *projections.Runner, name string) projections.Status {
	tb.Helper()
	st, err := r.Status(context.Background())
	must(tb, err)
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no status for %s", name)
	return projections.Status{}
}

// testBatching checks that catch-up folds many store batches into one
// transaction, up to MaxBatch, and that live events do not wait for a batch
// to fill.
func testBatching(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	const total, maxBatch = 3000, 1000
	head := AppendCredits(t, store, "wallet-a", total, 50, 1000)
	counter := &Counter{}
	// Batches of 100 from the store; a long linger makes batching
	// deterministic however slow the store is under -race.
	r := projections.NewRunner(db, SmallBatches{Store: store, Size: 100}, projections.Options{MaxBatch: maxBatch, Linger: time.Minute}, counter)
	stop := start(t, r)
	wait(t, r, "counter", head)
	batches := counter.Batches()
	if len(batches) != total/maxBatch {
		t.Errorf("catch-up batches %v, want %d of %d", batches, total/maxBatch, maxBatch)
	}
	for i, b := range batches {
		if b != maxBatch {
			t.Errorf("catch-up batch %d has %d events, want %d", i, b, maxBatch)
		}
	}

	// Live: applied at once, not after the linger.
	res, err := store.Append(ctx, "wallet-b", eventstore.Any, balance.Credit("live", 1))
	must(t, err)
	short, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	must(t, r.WaitFor(short, "counter", res.Position))
	must(t, stop())
	if got := counter.Batches(); len(got) != len(batches)+1 || got[len(got)-1] != 1 {
		t.Errorf("live batches %v, want one of 1 after %v", got, batches)
	}
}

func testWaitFor(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	head := AppendCredits(t, store, "wallet-a", 10, 2, 10)
	r := projections.NewRunner(db, store, projections.Options{}, balance.Balances{})
	if err := r.WaitFor(ctx, "nope", 1); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("WaitFor unknown: %v", err)
	}
	must(t, r.WaitFor(ctx, "balances", 0)) // before Run: nothing to wait for

	early := make(chan error, 1)
	go func() { early <- r.WaitFor(ctx, "balances", head) }() // waits for Run
	stop := start(t, r)
	select {
	case err := <-early:
		must(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("WaitFor started before Run never returned")
	}

	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := r.WaitFor(short, "balances", head+5); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitFor beyond head: %v, want deadline exceeded", err)
	}

	later := make(chan error, 1)
	go func() { later <- r.WaitFor(ctx, "balances", head+5) }()
	select {
	case err := <-later:
		t.Fatalf("WaitFor returned %v before the events existed", err)
	case <-time.After(20 * time.Millisecond):
	}
	AppendCredits(t, store, "wallet-b", 5, 1, 1)
	select {
	case err := <-later:
		must(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("WaitFor never woke up")
	}
	if got, err := balance.Balance(ctx, db, "acct-0"); err != nil || got != 10 {
		t.Errorf("balance after WaitFor = %d, %v; want 10", got, err)
	}

	must(t, stop())
	if err := r.WaitFor(ctx, "balances", head+100); !errors.Is(err, projections.ErrStopped) {
		t.Errorf("WaitFor after Run returned: %v, want ErrStopped", err)
	}
	must(t, r.WaitFor(ctx, "balances", head+5)) // reached positions still answer
}

func testStatus(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	head := AppendCredits(t, store, "wallet-a", 500, 5, 100)
	counter := &Counter{}
	r := projections.NewRunner(db, store, projections.Options{}, balance.Balances{}, counter)
	st, err := r.Status(ctx)
	must(t, err)
	if len(st) != 2 || st[0].Name != "balances" || st[1].Name != "counter" {
		t.Fatalf("status = %+v", st)
	}
	for _, s := range st {
		if s.Position != 0 || s.Head != head || s.Lag != head || s.Running {
			t.Errorf("before running: %+v, want position 0, lag %d", s, head)
		}
	}
	stop := start(t, r)
	wait(t, r, "balances", head)
	wait(t, r, "counter", head)
	st, err = r.Status(ctx)
	must(t, err)
	for _, s := range st {
		if s.Position != head || s.Lag != 0 || !s.Running {
			t.Errorf("caught up: %+v, want position %d, lag 0, running", s, head)
		}
	}
	must(t, stop())
	more := AppendCredits(t, store, "wallet-a", 7, 5, 7)
	// A fresh runner reads the stored checkpoints.
	st, err = projections.NewRunner(db, store, projections.Options{}, balance.Balances{}, counter).Status(ctx)
	must(t, err)
	for _, s := range st {
		if s.Position != head || s.Head != more || s.Lag != 7 || s.Running {
			t.Errorf("stopped: %+v, want position %d, head %d, lag 7", s, head, more)
		}
	}
}

// testReaders reads while the runner writes: every read must see a
// committed state, where the balances (each event credits 1) sum to the
// checkpoint read in the same statement.
func testReaders(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	AppendCredits(t, store, "wallet-a", 1000, 30, 200)
	r := projections.NewRunner(db, store, projections.Options{MaxBatch: 150}, balance.Balances{})
	stop := start(t, r)
	var final uint64
	var g errgroup.Group
	g.Go(func() error {
		for i := 0; i < 40; i++ {
			res, err := store.Append(ctx, "wallet-b", eventstore.Any, balance.Credit(fmt.Sprintf("acct-%d", i%30), 1), balance.Credit("acct-x", 1))
			if err != nil {
				return err
			}
			final = res.Position
			time.Sleep(time.Millisecond)
		}
		return nil
	})
	var reads sync.WaitGroup
	var mu sync.Mutex
	seen := map[int64]bool{}
	stopReads := make(chan struct{})
	for w := 0; w < 4; w++ {
		reads.Add(1)
		go func() {
			defer reads.Done()
			for {
				select {
				case <-stopReads:
					return
				default:
				}
				var sum, cp int64
				err := db.QueryRow(ctx, `SELECT
					(SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM balances),
					(SELECT COALESCE(MAX(position), 0) FROM projection_checkpoints WHERE name = ?)`, "balances").Scan(&sum, &cp)
				if err != nil {
					if !strings.Contains(err.Error(), "balances") && !strings.Contains(err.Error(), "projection_checkpoints") {
						t.Error(err) // tables not created yet is fine
					}
					continue
				}
				if sum != cp {
					t.Errorf("reader saw balances summing to %d at checkpoint %d", sum, cp)
					return
				}
				mu.Lock()
				seen[cp] = true
				mu.Unlock()
			}
		}()
	}
	must(t, g.Wait())
	wait(t, r, "balances", final)
	close(stopReads)
	reads.Wait()
	must(t, stop())
	if len(seen) < 2 {
		t.Errorf("readers saw only %d distinct states", len(seen))
	}
}

// testTwoRunners runs two runners of the same projection on the same
// database at once (two instances by mistake): the checkpoint fence lets
// only one apply each batch, so nothing is applied twice.
func testTwoRunners(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	head := AppendCredits(t, store, "wallet-a", 1000, 10, 100)
	// Migrate first so neither runner fails on creating tables.
	must(t, db.Migrate(ctx, "counter", (&Counter{}).Migrations(db.Dialect())))
	runCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	// Small batches make many commits, so the two runners overlap.
	small := SmallBatches{Store: store, Size: 50}
	runners := make([]*projections.Runner, 2)
	errs := make([]error, 2)
	var running sync.WaitGroup
	for i := range runners {
		runners[i] = projections.NewRunner(db, small, projections.Options{MaxBatch: 50}, &Counter{})
		running.Add(1)
		go func() {
			defer running.Done()
			errs[i] = runners[i].Run(runCtx)
		}()
	}
	// Each runner either reaches the head or stops (fenced off).
	for _, r := range runners {
		_ = r.WaitFor(runCtx, "counter", head)
	}
	cancel()
	running.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, projections.ErrCheckpointMoved) {
			t.Errorf("runner %d: %v, want nil or ErrCheckpointMoved", i, err)
		}
	}
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if uint64(n) != head || lo != 1 || uint64(hi) != head {
		t.Errorf("counter has %d rows %d..%d, want %d rows", n, lo, hi, head)
	}
}

// selectiveBalances is the balance projection of the streams with prefix
// only, counting the batches it is given.
type selectiveBalances struct {
	balance.Balances
	prefix  string
	applied *atomic.Int64
}

func (s selectiveBalances) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, s.prefix)
}

func (s selectiveBalances) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	s.applied.Add(1)
	var mine []eventstore.Event
	for _, e := range events {
		if s.Wants(e) {
			mine = append(mine, e)
		}
	}
	return s.Balances.Apply(ctx, tx, mine)
}

// testSelective: a Selective projection reaches positions of events it
// does not want without applying them (storing the position once the log
// is quiet), applies the ones it wants, and resumes after a restart
// without applying anything twice.
func testSelective(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	applied := &atomic.Int64{}
	proj := selectiveBalances{prefix: "wallet-a", applied: applied}
	r := projections.NewRunner(db, store, projections.Options{}, proj)
	stop := start(t, r)
	head := AppendCredits(t, store, "wallet-b", 50, 1, 5) // unwanted
	wait(t, r, "balances", head)
	if n := applied.Load(); n != 0 {
		t.Fatalf("%d batches applied for unwanted events", n)
	}
	// Once the log is quiet, the skipped position is stored too.
	var cp uint64
	if !eventually(30*time.Second, func() bool {
		var err error
		cp, err = projections.StoredCheckpoint(ctx, db, "balances")
		must(t, err)
		return cp == head
	}) {
		t.Fatalf("stored checkpoint %d, want %d after a quiet second", cp, head)
	}
	head = AppendCredits(t, store, "wallet-a", 10, 1, 10) // wanted
	wait(t, r, "balances", head)
	if cp, err := projections.StoredCheckpoint(ctx, db, "balances"); err != nil || cp != head {
		t.Fatalf("stored checkpoint %d (%v), want %d", cp, err, head)
	}
	must(t, stop())
	more := AppendCredits(t, store, "wallet-b", 5, 1, 5)
	r = projections.NewRunner(db, store, projections.Options{}, proj)
	stop = start(t, r)
	wait(t, r, "balances", more)
	must(t, stop())
	if got, err := balance.Balance(ctx, db, "acct-0"); err != nil || got != 10 {
		t.Fatalf("balance %d (%v), want the 10 wanted credits once", got, err)
	}
}
