package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
	pgsqlite "github.com/coinledger/coinledger/projections/sqlite"
)

// benchResult is the last line of every bench scenario.
type benchResult struct {
	Scenario          string  `json:"scenario"`
	OpsPerSec         float64 `json:"ops_per_sec"`
	P99ms             float64 `json:"p99_ms"`
	BaselineOpsPerSec float64 `json:"baseline_ops_per_sec"`
	Ratio             float64 `json:"ratio"`
	// ServerCPUusPerOp is the server process's CPU time (user + system)
	// per operation, in µs, where the server runs as its own process.
	ServerCPUusPerOp float64            `json:"server_cpu_us_per_op,omitempty"`
	Extra            map[string]float64 `json:"extra,omitempty"`
}

func printResult(r benchResult) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}

// benchStore measures the embedded event store on this machine, all in one
// run so the figures compare: durable appends by concurrent appenders with
// group commit against one commit per append, reading the whole log, and a
// projection runner catching up into SQLite.
func benchStore(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench store", flag.ContinueOnError)
	appenders := fs.Int("appenders", 64, "concurrent appenders")
	perAppend := fs.Int("events", 16, "events per append in the group-commit run")
	total := fs.Int("total", 200_000, "events to append in the group-commit run")
	baseTotal := fs.Int("baseline-total", 20_000, "events to append in each one-event-per-append run")
	credits := fs.Int("catchup", 300_000, "extra events for the read and catch-up runs")
	dir := fs.String("dir", "", "directory for the databases (default: a temporary one, removed afterwards)")
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "coinledger-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	run := func(name string, opts sqlite.Options, perAppend, total int) (loadgen.LoadResult, error) {
		path := filepath.Join(*dir, name+".db")
		s, err := sqlite.Open(ctx, path, opts)
		if err != nil {
			return loadgen.LoadResult{}, err
		}
		defer s.Close()
		fmt.Printf("%-34s %d appenders x %d event(s), %d events ... ", name, *appenders, perAppend, total)
		r, err := loadgen.AppendLoad(ctx, s, *appenders, perAppend, total)
		if err != nil {
			return r, err
		}
		fmt.Printf("%9.0f events/s  p50 %6.2f ms  p99 %6.2f ms\n", r.EventsPerSec(), ms(r.P50), ms(r.P99))
		return r, nil
	}
	fmt.Println("durable appends (fsync on every commit):")
	base, err := run("baseline-commit-per-append", sqlite.Options{NoGroupCommit: true}, 1, *baseTotal)
	if err != nil {
		return err
	}
	single, err := run("group-commit-1-event", sqlite.Options{}, 1, *baseTotal*2)
	if err != nil {
		return err
	}
	group, err := run("group-commit", sqlite.Options{}, *perAppend, *total)
	if err != nil {
		return err
	}

	readRate, catchUp, err := benchReadAndCatchUp(ctx, filepath.Join(*dir, "group-commit.db"), filepath.Join(*dir, "readmodels.db"), *credits)
	if err != nil {
		return err
	}
	fmt.Printf("group commit vs one commit per append: %.1fx (%d-event appends), %.1fx (1-event appends)\n",
		group.EventsPerSec()/base.EventsPerSec(), *perAppend, single.EventsPerSec()/base.EventsPerSec())
	return printResult(benchResult{
		Scenario: "store", OpsPerSec: round(group.EventsPerSec()), P99ms: round(ms(group.P99)),
		BaselineOpsPerSec: round(base.EventsPerSec()), Ratio: round(group.EventsPerSec() / base.EventsPerSec()),
		Extra: map[string]float64{
			"one_event_appends_ops_per_sec": round(single.EventsPerSec()),
			"one_event_appends_ratio":       round(single.EventsPerSec() / base.EventsPerSec()),
			"read_all_events_per_sec":       round(readRate),
			"catchup_events_per_sec":        round(catchUp),
		},
	})
}

// benchReadAndCatchUp adds credit events to the store at path, reads the
// whole log, then catches a balance projection up from 0 into a fresh
// SQLite read-model database.
func benchReadAndCatchUp(ctx context.Context, storePath, dbPath string, credits int) (readRate, catchUp float64, err error) {
	s, err := sqlite.Open(ctx, storePath, sqlite.Options{})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	batch := make([]eventstore.EventData, 0, 2000)
	for i := 0; i < credits; i++ {
		batch = append(batch, balance.Credit(fmt.Sprintf("acct-%d", i%10_000), 1))
		if len(batch) == cap(batch) || i == credits-1 {
			if _, err := s.Append(ctx, "bench-credits", eventstore.Any, batch...); err != nil {
				return 0, 0, err
			}
			batch = batch[:0]
		}
	}
	head, err := s.Head(ctx)
	if err != nil {
		return 0, 0, err
	}
	n, elapsed, err := loadgen.ReadAllRate(ctx, s, 4096)
	if err != nil {
		return 0, 0, err
	}
	pageRate := float64(n) / elapsed.Seconds()
	fmt.Printf("read all %d events from the start, page by page:    %9.0f events/s\n", n, pageRate)
	n, elapsed, err = loadgen.SubscribeRate(ctx, s)
	if err != nil {
		return 0, 0, err
	}
	readRate = float64(n) / elapsed.Seconds()
	fmt.Printf("read all %d events from the start, by subscription: %9.0f events/s\n", n, readRate)

	db, err := pgsqlite.Open(ctx, dbPath)
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	runner := projections.NewRunner(db, s, projections.Options{}, balance.Balances{})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- runner.Run(rctx) }()
	if err := runner.WaitFor(ctx, balance.Balances{}.Name(), head); err != nil {
		return 0, 0, err
	}
	catchUp = float64(head) / time.Since(start).Seconds()
	cancel()
	<-errc
	fmt.Printf("projection catch-up of %d events into SQLite (balances): %9.0f events/s\n", head, catchUp)
	return readRate, catchUp, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
