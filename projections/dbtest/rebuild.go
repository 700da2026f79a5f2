package dbtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
)

// RunRebuild runs the blue/green rebuild suite (Runner.Rebuild over a
// projections.Shadowing database); every subtest is parallel and gets its
// own database and event store.
func RunRebuild(t *testing.T, newDB NewDB) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewDB)
	}{
		{"RebuildUnderLoadEqualsFreshBuild", testRebuildUnderLoad},
		{"VersionChangeRebuildsAtStartWhileOldServes", testRebuildVersion},
		{"RebuildRepairsParkedProjection", testRebuildParked},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newDB)
		})
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// WaitJob polls r until job id is no longer running and returns it; it
// fails tb when the job fails or does not end within a minute.
func WaitJob(tb testing.TB, r *projections.Runner, id string) projections.Job {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := r.Job(id)
		must(tb, err)
		switch {
		case j.State == projections.JobFailed:
			tb.Fatalf("rebuild job %s failed: %s", id, j.Error)
		case j.State == projections.JobDone:
			return j
		case time.Now().After(deadline):
			tb.Fatalf("rebuild job %s still running: %+v", id, j)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// balanceRows returns the balances table, ordered.
func balanceRows(tb testing.TB, db projections.DB) []string {
	tb.Helper()
	rows, err := db.Query(context.Background(), `SELECT account, amount, position FROM balances ORDER BY account`)
	must(tb, err)
	var out []string
	for rows.Next() {
		var a string
		var amount, pos int64
		must(tb, rows.Scan(&a, &amount, &pos))
		out = append(out, fmt.Sprintf("%s=%d@%d", a, amount, pos))
	}
	must(tb, rows.Close())
	return out
}

// testRebuildUnderLoad rebuilds balances while events are appended and
// readers sum the table: every read succeeds and never sees the sum go
// down (an empty or half-built model would), another projection is not
// disturbed, and the result equals a fresh build of the same log.
func testRebuildUnderLoad(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	store := NewStore(t)
	AppendCredits(t, store, "credits-0", 4000, 40, 200)
	db := newDB(t)
	counter := &Counter{}
	r := projections.NewRunner(db, store, projections.Options{MaxBatch: 500, Logger: quiet}, balance.Balances{}, counter,
		projections.Follow(&Sums{}))
	start(t, r)
	head, err := store.Head(ctx)
	must(t, err)
	wait(t, r, "balances", head)

	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var appended atomic.Int64
	var readErr error
	var reads atomic.Int64
	wg.Add(2)
	go func() { // writer
		defer wg.Done()
		for i := 1; loadCtx.Err() == nil; i++ {
			if _, err := store.Append(ctx, fmt.Sprintf("credits-%d", i%5), eventstore.Any,
				balance.Credit(fmt.Sprintf("acct-%d", i%40), 1), balance.Credit("late", 1)); err != nil {
				t.Errorf("append: %v", err)
				return
			}
			appended.Add(2)
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // reader: the sum of balances counts the credits applied
		defer wg.Done()
		var last int64
		for loadCtx.Err() == nil {
			var sum int64
			if err := db.QueryRow(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM balances`).Scan(&sum); err != nil {
				readErr = fmt.Errorf("read %d: %w", reads.Load(), err)
				return
			}
			if sum < last || sum < 4000 {
				readErr = fmt.Errorf("read %d: sum of balances %d after %d", reads.Load(), sum, last)
				return
			}
			last = sum
			reads.Add(1)
		}
	}()

	job, err := r.Rebuild("balances")
	must(t, err)
	if job.State != projections.JobRunning || job.Projection != "balances" || job.ID == "" || job.Reason != projections.ReasonRequested {
		t.Errorf("Rebuild returned %+v", job)
	}
	if _, err := r.Rebuild("balances"); !errors.Is(err, projections.ErrRebuilding) {
		t.Errorf("second Rebuild: %v, want ErrRebuilding", err)
	}
	if _, err := r.Rebuild("nope"); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("Rebuild of an unknown projection: %v, want ErrUnknownProjection", err)
	}
	if _, err := r.Rebuild("sums"); !errors.Is(err, projections.ErrUnknownProjection) {
		t.Errorf("Rebuild of a follower: %v, want ErrUnknownProjection", err)
	}
	models, err := r.ReadModels(ctx)
	must(t, err)
	if len(models) != 2 {
		t.Errorf("ReadModels lists %d, want balances and counter (not the follower): %+v", len(models), models)
	}
	if i := slices.IndexFunc(models, func(m projections.ReadModel) bool { return m.Name == "balances" }); i < 0 || models[i].Rebuild != job.ID {
		t.Errorf("ReadModels during the rebuild: %+v, want balances rebuilding by %s", models, job.ID)
	}
	done := WaitJob(t, r, job.ID)
	time.Sleep(50 * time.Millisecond) // reads and writes after the swap
	stopLoad()
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	if done.Position < head || done.Events < 4000 || done.FinishedAt.IsZero() {
		t.Errorf("finished job %+v, want position >= %d and >= 4000 events", done, head)
	}
	if _, err := r.Job("nope"); !errors.Is(err, projections.ErrJobNotFound) {
		t.Errorf("Job(nope): %v, want ErrJobNotFound", err)
	}

	head, err = store.Head(ctx)
	must(t, err)
	wait(t, r, "balances", head)
	wait(t, r, "counter", head)
	fresh := newDB(t)
	rf := projections.NewRunner(fresh, store, projections.Options{Logger: quiet}, balance.Balances{})
	start(t, rf)
	wait(t, rf, "balances", head)
	got, want := balanceRows(t, db), balanceRows(t, fresh)
	if !slices.Equal(got, want) {
		t.Errorf("rebuilt balances differ from a fresh build:\n got %v\nwant %v", got, want)
	}
	if total := 4000 + appended.Load(); len(got) != 41 {
		t.Errorf("%d accounts after %d credits, want 41", len(got), total)
	}
	n, lo, hi, err := CounterRows(ctx, db)
	must(t, err)
	if n != 4000+appended.Load() || lo != 1 || uint64(hi) != head {
		t.Errorf("counter rows %d (%d..%d), want %d up to %d: a rebuild disturbed another projection", n, lo, hi, 4000+appended.Load(), head)
	}
	var versions int64
	must(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE owner = ?`, "balances").Scan(&versions))
	if versions != 1 {
		t.Errorf("balances has %d schema versions recorded, want 1", versions)
	}
	if reads.Load() == 0 {
		t.Error("no read ran during the rebuild")
	}
}

// Scaled is a versioned test projection: it folds test.credited events
// into scaled(account, amount) with each amount multiplied by Factor
// (Factor 2 standing for version 2's changed code). While Gate is set,
// Apply waits for it to be closed.
type Scaled struct {
	V, Factor int64
	Gate      chan struct{}
}

// Name is "scaled".
func (*Scaled) Name() string { return "scaled" }

// Version is V.
func (s *Scaled) Version() int { return int(s.V) }

// Migrations creates the scaled table.
func (*Scaled) Migrations(projections.Dialect) []string {
	return []string{`CREATE TABLE scaled (account TEXT PRIMARY KEY, amount BIGINT NOT NULL)`}
}

// Apply adds each credit times Factor.
func (s *Scaled) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	if s.Gate != nil {
		select {
		case <-s.Gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sums := map[string]int64{}
	for _, e := range events {
		if e.Type != balance.CreditedType {
			continue
		}
		var c balance.Credited
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return err
		}
		sums[c.Account] += c.Amount * s.Factor
	}
	rows := make([][]any, 0, len(sums))
	for a, n := range sums {
		rows = append(rows, []any{a, n})
	}
	return tx.Insert(ctx, projections.Bulk{Table: "scaled", Columns: []string{"account", "amount"},
		OnConflict: "ON CONFLICT (account) DO UPDATE SET amount = scaled.amount + excluded.amount"}, rows)
}

func scaledSum(tb testing.TB, db projections.DB) int64 {
	tb.Helper()
	var sum int64
	must(tb, db.QueryRow(context.Background(), `SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM scaled`).Scan(&sum))
	return sum
}

// testRebuildVersion: a read model built by version 1 is rebuilt when a
// runner with version 2 starts; the version 1 rows serve until the swap,
// then version 2's; the version is stored and a restart rebuilds nothing.
func testRebuildVersion(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	store := NewStore(t)
	head := AppendCredits(t, store, "credits", 1000, 10, 100)
	db := newDB(t)
	r1 := projections.NewRunner(db, store, projections.Options{Logger: quiet}, &Scaled{V: 1, Factor: 1})
	stop := start(t, r1)
	wait(t, r1, "scaled", head)
	must(t, stop())
	if len(r1.Jobs()) != 0 {
		t.Errorf("a first build started jobs: %+v", r1.Jobs())
	}

	gate := make(chan struct{})
	v2 := &Scaled{V: 2, Factor: 2, Gate: gate}
	r2 := projections.NewRunner(db, store, projections.Options{Logger: quiet, MaxBatch: 300}, v2)
	start(t, r2)
	var job projections.Job
	if !eventually(30*time.Second, func() bool {
		jobs := r2.Jobs()
		if len(jobs) > 0 {
			job = jobs[0]
		}
		return len(jobs) > 0
	}) {
		t.Fatal("no rebuild job started for the changed version")
	}
	if job.Projection != "scaled" || job.Reason != projections.ReasonVersion {
		t.Errorf("job %+v, want a version rebuild of scaled", job)
	}
	if sum := scaledSum(t, db); sum != 1000 {
		t.Errorf("while rebuilding the read model holds %d, want version 1's 1000", sum)
	}
	models, err := r2.ReadModels(ctx)
	must(t, err)
	if len(models) != 1 || models[0].Version != 2 || models[0].Rebuild != job.ID {
		t.Errorf("ReadModels: %+v", models)
	}
	close(gate)
	WaitJob(t, r2, job.ID)
	if sum := scaledSum(t, db); sum != 2000 {
		t.Errorf("after the rebuild the read model holds %d, want version 2's 2000", sum)
	}
	head = AppendCredits(t, store, "credits", 10, 10, 10)
	wait(t, r2, "scaled", head)
	if sum := scaledSum(t, db); sum != 2020 {
		t.Errorf("after more credits the read model holds %d, want 2020", sum)
	}
	var stored int64
	must(t, db.QueryRow(ctx, `SELECT version FROM projection_versions WHERE name = ?`, "scaled").Scan(&stored))
	if stored != 2 {
		t.Errorf("stored version %d, want 2", stored)
	}
}

// testRebuildParked: a projection parked at a poison event is rebuilt
// once the code no longer fails on it; the swap un-parks it and it goes on
// from the rebuilt position.
func testRebuildParked(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	store := NewStore(t)
	AppendCredits(t, store, "credits", 100, 10, 10)
	res, err := store.Append(ctx, "poison", eventstore.Any, eventstore.EventData{Type: PoisonType, Data: []byte(`{}`)})
	must(t, err)
	head := AppendCredits(t, store, "credits", 100, 10, 10)
	db := newDB(t)
	counter := &Counter{}
	counter.Fail.Store(true)
	r := projections.NewRunner(db, store, projections.Options{Logger: quiet, RetryMin: time.Millisecond}, counter)
	start(t, r)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.WaitFor(wctx, "counter", res.Position); !errors.Is(err, projections.ErrParked) {
		t.Fatalf("WaitFor: %v, want ErrParked", err)
	}
	counter.Fail.Store(false) // the fixed code
	job, err := r.Rebuild("counter")
	must(t, err)
	WaitJob(t, r, job.ID)
	wait(t, r, "counter", head)
	if n, lo, hi, err := CounterRows(ctx, db); err != nil || n != 201 || lo != 1 || uint64(hi) != head {
		t.Errorf("counter rows %d (%d..%d) %v, want 201 up to %d", n, lo, hi, err, head)
	}
	st, err := r.Status(ctx)
	must(t, err)
	if st[0].State == projections.StateParked {
		t.Errorf("still parked after the rebuild: %+v", st[0])
	}
}

// Dump returns every row of each table as one line of text, sorted, for
// comparing two read models whatever their columns.
func Dump(tb testing.TB, db projections.DB, tables ...string) map[string][]string {
	tb.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, table := range tables {
		query := `SELECT CAST(` + table + ` AS TEXT) FROM ` + table + ` ORDER BY 1`
		if db.Dialect() == projections.SQLite {
			rows, err := db.Query(ctx, `SELECT name FROM pragma_table_info(?) ORDER BY cid`, table)
			must(tb, err)
			var cols []string
			for rows.Next() {
				var c string
				must(tb, rows.Scan(&c))
				cols = append(cols, `quote(`+c+`)`)
			}
			must(tb, rows.Close())
			if len(cols) == 0 {
				tb.Fatalf("dump: no table %s", table)
			}
			query = `SELECT ` + strings.Join(cols, ` || '|' || `) + ` FROM ` + table + ` ORDER BY 1`
		}
		rows, err := db.Query(ctx, query)
		must(tb, err)
		lines := []string{}
		for rows.Next() {
			var line string
			must(tb, rows.Scan(&line))
			lines = append(lines, line)
		}
		must(tb, rows.Close())
		out[table] = lines
	}
	return out
}
