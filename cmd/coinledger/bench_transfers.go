package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
)

// benchTransfers measures internal transfers over HTTP against the service
// run as its own process (`serve`, embedded durable stores, fsync on) on
// loopback: the default configuration (group commit, batched wallet writer)
// against a baseline of the same service committing once per request, in
// the same run, or against another build's `serve` (--against). With
// -store postgres, the event store and read models are on Postgres, and
// -instances servers share them, against one server there in the same run.
// Every line shows the server processes' CPU time per transfer.
func benchTransfers(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench transfers", flag.ContinueOnError)
	o := httpBenchFlags(fs, 30_000)
	baseTotal := fs.Int("baseline-total", 4_000, "transfers in the baseline run (0: none; none in open-loop mode)")
	store := fs.String("store", "sqlite", "sqlite: embedded stores; postgres: event store and read models on -postgres, against one instance there")
	pg := fs.String("postgres", os.Getenv("COINLEDGER_TEST_POSTGRES_URL"), "with -store postgres: the Postgres server (default COINLEDGER_TEST_POSTGRES_URL); each run uses fresh schemas, dropped afterwards")
	instances := fs.Int("instances", 1, "with -store postgres: servers sharing the stores, the load spread over them round robin")
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	switch {
	case *instances < 1:
		return usageError("-instances: want at least 1")
	case *store == "postgres" && *pg == "":
		return usageError("-store postgres: give the server with -postgres URL")
	case *store == "postgres" && o.against != "":
		return usageError("-against: not with -store postgres")
	case *store == "postgres":
		return o.runInstances(ctx, transferLoad, *instances, *pg)
	case *store != "sqlite":
		return usageError("-store: want sqlite or postgres")
	case *instances != 1:
		return usageError("-instances: more than one needs -store postgres (the embedded store is one process's)")
	}
	return o.run(ctx, transferLoad, *baseTotal)
}

// transferLoad: each operation moves one satoshi from the worker's funded
// source account to the sink, with an idempotency key of its own. An
// answer 409 wrong_expected_version (another server wrote the wallet
// first; nothing was applied) is counted and the transfer sent again with
// the same key, up to maxConflicts times.
var transferLoad = httpLoad{
	scenario: "transfers",
	unit:     "transfers",
	title:    "internal transfers over HTTP, durable (fsync per commit)",
	label:    "coinledger: group commit, batched wallet",
	setUp:    (*benchClient).setUp,
	op: func(c *benchClient, w, i int) error {
		for range maxConflicts {
			status, body, err := c.post("/wallets/bench/transfers",
				map[string]string{"from": fmt.Sprintf("src%d", w), "to": "sink", "amount": "0.00000001"},
				fmt.Sprintf("bench-%d", i))
			if err == nil && status == http.StatusConflict && bytes.Contains(body, []byte(`"code":"wrong_expected_version"`)) {
				c.conflicts.Add(1)
				continue
			}
			if err != nil || status != http.StatusCreated {
				return fmt.Errorf("transfer: %d %s %v", status, body, err)
			}
			return nil
		}
		return fmt.Errorf("transfer: %d conflicts in a row", maxConflicts)
	},
}

// maxConflicts bounds how often one operation is sent again after a
// conflict.
const maxConflicts = 20
