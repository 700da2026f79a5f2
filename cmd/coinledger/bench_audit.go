package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	appaudit "github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/eventstore"
)

// benchAudit measures audit verify's checks over a generated log of
// wallet traffic: the log is read into memory first, then the verifier
// (every stream chain, the global chain, double entry after every event,
// the ledger rules at the end) runs over it, then the same end to end from
// the store.
func benchAudit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench audit", flag.ContinueOnError)
	events := fs.Int("events", 1_000_000, "events in the log")
	logPath := fs.String("log", "", "embedded event store to verify: generated there if it does not exist, reused if it does (default: a temporary one)")
	rounds := fs.Int("rounds", 3, "verifier passes over the log in memory (the best counts)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the measured passes to FILE")
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	if *logPath == "" {
		tmp, err := os.MkdirTemp("", "coinledger-audit-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*logPath = filepath.Join(tmp, "events.db")
	}
	store, stats, err := openReplayLog(ctx, *logPath, *events)
	if err != nil {
		return err
	}
	defer store.Close()
	var log []eventstore.Event
	for after := uint64(0); ; {
		page, err := store.ReadAll(ctx, after, 4096)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		log = append(log, page...)
		after = page[len(page)-1].Position
	}
	fmt.Printf("log: %d events in %d wallets (%d accounts, %d transfers, %d holds)\n",
		len(log), stats.Wallets, stats.Accounts, stats.Transfers, stats.Holds)
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	n := float64(len(log))
	measure := func(what string, pass func() (appaudit.Report, error)) (rate, us float64, err error) {
		cpu0, _ := procCPUTime(os.Getpid())
		start := time.Now()
		r, err := pass()
		d := time.Since(start)
		cpu, _ := procCPUTime(os.Getpid())
		if err != nil {
			return 0, 0, err
		}
		if !r.OK() || float64(r.Events) != n {
			return 0, 0, fmt.Errorf("bench audit: the generated log does not verify (%d events):\n%s", r.Events, r)
		}
		rate, us = n/d.Seconds(), float64((cpu-cpu0).Microseconds())/n
		fmt.Printf("%-40s %8.2f s %10.0f events/s %6.2f µs CPU/event\n", what, d.Seconds(), rate, us)
		return rate, us, nil
	}
	var best, bestUS float64
	for i := range *rounds {
		rate, us, err := measure(fmt.Sprintf("verify in memory, round %d", i+1), func() (appaudit.Report, error) {
			v := appaudit.NewVerifier(appaudit.Options{})
			for i := 0; i < len(log); i += 4096 {
				v.AddBatch(log[i:min(i+4096, len(log))])
			}
			return v.Finish(), nil
		})
		if err != nil {
			return err
		}
		if rate > best {
			best, bestUS = rate, us
		}
	}
	log = nil
	storeRate, storeUS, err := measure("verify from the store (audit verify)", func() (appaudit.Report, error) {
		return verifyLog(ctx, &storeSource{store: store}, appaudit.Options{}, nil)
	})
	if err != nil {
		return err
	}
	return printResult(benchResult{Scenario: "audit", OpsPerSec: round(best), BaselineOpsPerSec: 500_000, Ratio: round(best / 500_000),
		Extra: map[string]float64{"events": n, "cpu_us_per_event": round(bestUS),
			"store_events_per_sec": round(storeRate), "store_cpu_us_per_event": round(storeUS)}})
}
