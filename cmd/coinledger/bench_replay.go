package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/postgres"
	pgsqlite "github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/projections/wallet"
)

// benchReplay measures what an operator replaying the log waits for, over
// one log of wallet traffic (loadgen.WalletTraffic) in the embedded store:
// a rebuild of the wallet read models (balances, entries, transfers, holds)
// from position 0 by a projections.Runner into a fresh SQLite database and,
// given a server, a fresh Postgres schema; an export of the log to an
// NDJSON file (as `events export > FILE` writes it; the fsync of
// `events export -o FILE` is timed apart: it is the disk's); and
// an import of that file into an empty embedded store (as `events import`).
// Every figure is events/s of the same log, measured in the same run.
func benchReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench replay", flag.ContinueOnError)
	events := fs.Int("events", 1_000_000, "events in the log")
	logPath := fs.String("log", "", "embedded event store to replay: generated there if it does not exist, reused if it does (default: a temporary one)")
	pgURL := fs.String("postgres", os.Getenv("COINLEDGER_TEST_POSTGRES_URL"), "Postgres URL to rebuild into too, in a fresh schema dropped afterwards (default COINLEDGER_TEST_POSTGRES_URL)")
	dir := fs.String("dir", "", "directory for the read models, export and import (default: a temporary one, removed afterwards)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured phases (not the generation) to FILE")
	maxBatch := fs.Int("batch", 0, "the runner's MaxBatch: most events per read-model transaction (default: the runner's)")
	coldStart := fs.Bool("cold-start", false, "also time `serve` over a copy of the log: a first start (read models and snapshots built from 0) and, after a clean stop, a second start, until /readyz answers 200")
	only := fs.String("only", "", "run only these phases, comma-separated: sqlite, postgres, export, import (default: all)")
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "coinledger-replay-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	} else if err := os.MkdirAll(*dir, 0o750); err != nil {
		return err
	}
	if *logPath == "" {
		*logPath = filepath.Join(*dir, "events.db")
	}
	store, stats, err := openReplayLog(ctx, *logPath, *events)
	if err != nil {
		return err
	}
	defer store.Close()
	head, _ := store.Head(ctx)
	fmt.Printf("log: %d events in %d wallets (%d accounts, %d transfers, %d holds)\n",
		head, stats.Wallets, stats.Accounts, stats.Transfers, stats.Holds)
	if head != uint64(stats.Events) {
		return fmt.Errorf("bench replay: the log holds %d events, its stats say %d", head, stats.Events)
	}

	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	extra := map[string]float64{"events": float64(head)}
	rate := func(d time.Duration) float64 { return float64(head) / d.Seconds() }
	// Each phase's line gives its wall time and rate and the process's CPU
	// time per event (user + system, every goroutine): on a shared machine
	// the CPU time is the steadier figure.
	cpu0, _ := procCPUTime(os.Getpid())
	line := func(what, key string, d time.Duration) {
		cpu, _ := procCPUTime(os.Getpid())
		us := float64((cpu - cpu0).Microseconds()) / float64(head)
		cpu0 = cpu
		fmt.Printf("%-44s %8.2f s %10.0f events/s %6.2f µs CPU/event\n", what, d.Seconds(), rate(d), us)
		extra[key+"_events_per_sec"] = round(rate(d))
		extra[key+"_cpu_us_per_event"] = round(us)
	}
	phase := func(name string) bool {
		return *only == "" || slices.Contains(strings.Split(*only, ","), name)
	}

	if phase("sqlite") {
		db, err := pgsqlite.Open(ctx, freshPath(filepath.Join(*dir, "readmodels.db")))
		if err != nil {
			return err
		}
		d, err := rebuildWallet(ctx, db, store, head, stats, *maxBatch)
		db.Close()
		if err != nil {
			return fmt.Errorf("bench replay: rebuild into SQLite: %w", err)
		}
		line("rebuild wallet read models into SQLite", "rebuild_sqlite", d)
	}
	if phase("postgres") && *pgURL != "" {
		d, err := rebuildPostgres(ctx, *pgURL, store, head, stats, *maxBatch)
		if err != nil {
			return fmt.Errorf("bench replay: rebuild into Postgres: %w", err)
		}
		line("rebuild wallet read models into Postgres", "rebuild_postgres", d)
	}
	exportPath := filepath.Join(*dir, "export.ndjson")
	if phase("export") || phase("import") {
		end, size, d, sync, err := exportFile(ctx, store, exportPath)
		if err != nil {
			return err
		}
		if end.Events != head {
			return fmt.Errorf("bench replay: exported %d events of %d", end.Events, head)
		}
		line(fmt.Sprintf("export to NDJSON (%d MB; then fsync %.2f s)", size>>20, sync.Seconds()), "export", d)
		extra["export_bytes_per_event"] = round(float64(size) / float64(head))
		extra["export_fsync_s"] = round(sync.Seconds())
	}
	if phase("import") {
		start := time.Now()
		n, err := importFile(ctx, exportPath, freshPath(filepath.Join(*dir, "imported.db")))
		if err != nil {
			return err
		}
		d := time.Since(start)
		if n != head {
			return fmt.Errorf("bench replay: imported %d events of %d", n, head)
		}
		line("import into an empty embedded store", "import_sqlite", d)
	}
	if *coldStart {
		// serve locks the store it opens and appends to it: it gets a copy.
		if err := store.Close(); err != nil {
			return err
		}
		first, second, err := coldStarts(ctx, *logPath, filepath.Join(*dir, "serve"))
		if err != nil {
			return fmt.Errorf("bench replay: cold start: %w", err)
		}
		fmt.Printf("%-44s %8.2f s\n", "serve: first start to /readyz 200", first.Seconds())
		fmt.Printf("%-44s %8.2f s\n", "serve: restart to /readyz 200", second.Seconds())
		extra["first_start_s"] = round(first.Seconds())
		extra["cold_start_s"] = round(second.Seconds())
	}
	return printResult(benchResult{Scenario: "replay", OpsPerSec: extra["rebuild_sqlite_events_per_sec"], Extra: extra})
}

// openReplayLog opens the embedded store at path holding wallet traffic
// and returns it with the traffic's stats, generating events of it first
// if the store does not exist. The stats are kept beside the store, so a
// later run can reuse the log. A generated log is closed and opened again,
// so what is measured on it starts as it would on a reused one.
func openReplayLog(ctx context.Context, path string, events int) (*sqlite.Store, loadgen.WalletStats, error) {
	stats, err := replayLog(ctx, path, events)
	if err != nil {
		return nil, stats, err
	}
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	return store, stats, err
}

// replayLog returns the stats of the wallet traffic in the store at path,
// generating events of it first if the store does not exist. The stats are
// kept beside the store, so a later run can reuse the log.
func replayLog(ctx context.Context, path string, events int) (loadgen.WalletStats, error) {
	var stats loadgen.WalletStats
	statsPath := path + ".stats.json"
	if _, err := os.Stat(path); err == nil {
		b, err := os.ReadFile(statsPath)
		if err != nil {
			return stats, fmt.Errorf("bench replay: reuse %s: %w", path, err)
		}
		return stats, json.Unmarshal(b, &stats)
	}
	store, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		return stats, err
	}
	defer store.Close()
	start := time.Now()
	if stats, err = loadgen.WalletTraffic(ctx, store, loadgen.WalletOptions{Events: events}); err != nil {
		return stats, err
	}
	fmt.Printf("generated %d events of wallet traffic in %s\n", stats.Events, time.Since(start).Round(time.Millisecond))
	b, _ := json.Marshal(stats)
	return stats, os.WriteFile(statsPath, b, 0o600)
}

// rebuildWallet runs the wallet projection from 0 into db until it has the
// whole log and checks the rows it wrote against stats. It returns the
// time to the last commit.
func rebuildWallet(ctx context.Context, db projections.DB, store eventstore.Store, head uint64, stats loadgen.WalletStats, maxBatch int) (time.Duration, error) {
	opts := projections.Options{MaxBatch: maxBatch, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	runner := projections.NewRunner(db, store, opts, wallet.New())
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- runner.Run(rctx) }()
	if err := runner.WaitFor(ctx, "wallet", head); err != nil {
		return 0, err
	}
	d := time.Since(start)
	cancel()
	if err := <-errc; err != nil {
		return d, err
	}
	for _, c := range []struct {
		table string
		want  int
	}{{"wallet_transfers", stats.Transfers}, {"wallet_entries", stats.Entries},
		{"wallet_accounts", stats.Accounts + 3*stats.Wallets}, {"wallets", stats.Wallets}} {
		var n int64
		if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM `+c.table).Scan(&n); err != nil {
			return d, err
		}
		if n != int64(c.want) {
			return d, fmt.Errorf("%s has %d rows, want %d", c.table, n, c.want)
		}
	}
	for i := range stats.Wallets {
		sum, err := wallet.SumBalances(ctx, db, fmt.Sprintf("w%d", i))
		if err != nil {
			return d, err
		}
		if sum.Total() != 0 {
			return d, fmt.Errorf("the balances of wallet w%d sum to %+v, not zero", i, sum)
		}
	}
	return d, nil
}

// rebuildPostgres runs rebuildWallet into a fresh schema of the server at
// base, dropped afterwards.
func rebuildPostgres(ctx context.Context, base string, store eventstore.Store, head uint64, stats loadgen.WalletStats, maxBatch int) (time.Duration, error) {
	u, drop, err := freshSchema(base, "bench_replay")
	if err != nil {
		return 0, err
	}
	defer func() { _ = drop(context.WithoutCancel(ctx)) }()
	db, err := postgres.Open(ctx, u)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	return rebuildWallet(ctx, db, store, head, stats, maxBatch)
}

// exportFile exports the whole log to a new file at path, as `events
// export > FILE` does, then fsyncs it as `events export -o FILE` does. It
// returns the end line, the file's size, the time to write it and the time
// of the fsync.
func exportFile(ctx context.Context, store eventstore.Store, path string) (end dump.End, size int64, write, sync time.Duration, err error) {
	f, err := os.Create(path)
	if err != nil {
		return end, 0, 0, 0, err
	}
	defer f.Close()
	start := time.Now()
	if end, err = dump.Export(ctx, store, f, dump.ExportOptions{Source: "sqlite"}); err != nil {
		return end, 0, 0, 0, err
	}
	write = time.Since(start)
	if err := f.Sync(); err != nil {
		return end, 0, 0, 0, fmt.Errorf("export: %w", err)
	}
	sync = time.Since(start) - write
	st, err := f.Stat()
	if err != nil {
		return end, 0, 0, 0, err
	}
	return end, st.Size(), write, sync, f.Close()
}

// importFile imports the export at path into a new embedded store at
// storePath, as `events import` does, and returns the new store's head.
func importFile(ctx context.Context, path, storePath string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	store, err := sqlite.Open(ctx, storePath, sqlite.Options{})
	if err != nil {
		return 0, err
	}
	defer store.Close()
	if _, _, err := dump.Import(ctx, store, f, dump.ImportOptions{}); err != nil {
		return 0, err
	}
	head, err := store.Head(ctx)
	if err != nil {
		return 0, err
	}
	return head, store.Close()
}

// freshPath removes the SQLite database at path, with its WAL, shared
// memory and lock files, left by an earlier run in the same -dir.
func freshPath(path string) string {
	for _, suffix := range []string{"", "-wal", "-shm", ".lock"} {
		_ = os.Remove(path + suffix)
	}
	return path
}

// coldStarts copies the log at logPath into a fresh data directory under
// dir and starts this binary's `serve` over it twice, as its own process:
// the first start builds every read model and follower from 0, the second,
// after a clean stop (SIGTERM), resumes from what the first left. Each time
// is from starting the process to /readyz answering 200.
func coldStarts(ctx context.Context, logPath, dir string) (first, second time.Duration, err error) {
	data := filepath.Join(dir, "data")
	if err := os.RemoveAll(dir); err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	for _, suffix := range []string{"", "-wal"} {
		if err := copyFile(logPath+suffix, filepath.Join(data, "events.db"+suffix)); err != nil && !(suffix != "" && errors.Is(err, os.ErrNotExist)) {
			return 0, 0, err
		}
	}
	spec, err := thisServer("serve", false, "")
	if err != nil {
		return 0, 0, err
	}
	if strings.HasSuffix(spec.binary, ".test") {
		// A test binary would run its tests, this one among them, again.
		return 0, 0, errors.New("cold start needs the coinledger binary, not a test binary")
	}
	spec.dataDir, spec.startWait = data, 10*time.Minute
	start := func() (time.Duration, error) {
		t0 := time.Now()
		p, err := startServer(ctx, spec)
		if err != nil {
			return 0, err
		}
		defer p.stop()
		ready := strings.TrimSuffix(p.base, "/api/v1") + "/readyz"
		if err := p.waitFor(ctx, ready, 30*time.Minute, func(status int) bool { return status == 200 }); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	if first, err = start(); err != nil {
		return 0, 0, err
	}
	second, err = start()
	return first, second, err
}

// copyFile copies the file at src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
