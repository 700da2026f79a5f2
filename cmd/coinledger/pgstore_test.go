package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore/dump"
	pgstore "github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestServeOnPostgresEventStore: with COINLEDGER_EVENT_STORE=postgres://...
// (a fresh schema) the service serves from the Postgres event store: a
// transfer is made, retried with its idempotency key, and shows in the
// balances; `events export` reads the log back with source "postgres",
// `events import` loads it into another fresh schema (and refuses a second
// time) and `audit verify` passes there, with every event identical,
// position included (both logs count from 1). Wallet snapshots are kept in
// Postgres, not in the data directory.
func TestServeOnPostgresEventStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := dbtest.PostgresURL(t)
	if storeKind(url) != "postgres" || storeKind(strings.Replace(url, "postgres://", "postgresql://", 1)) != "postgres" {
		t.Fatalf("storeKind(%q) = %q", url, storeKind(url))
	}
	cfg := &Config{DataDir: t.TempDir(), AdminPassword: benchAdminPassword, BcryptCost: 4, EventStore: URL(url), SnapshotEvery: 2,
		SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config with a postgres event store: %v", err)
	}
	svc, err := newService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), wiring{})
	if err != nil {
		t.Fatal(err)
	}
	closeSvc := sync.OnceFunc(svc.close)
	defer closeSvc()
	if _, ok := svc.store.(*pgstore.Store); !ok {
		t.Fatalf("the service opened a %T", svc.store)
	}
	c, stopService, err := startBenchService(ctx, svc, 1)
	if err != nil {
		t.Fatal(err)
	}
	stop := sync.OnceFunc(stopService)
	defer stop()
	if err := c.setUp(1); err != nil {
		t.Fatal(err)
	}
	transfer := map[string]string{"from": "src0", "to": "sink", "amount": "0.00000042"}
	status, first, err := c.post("/wallets/bench/transfers", transfer, "pg-transfer-1")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("transfer: %d %s %v", status, first, err)
	}
	status, again, err := c.post("/wallets/bench/transfers", transfer, "pg-transfer-1")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("retried transfer: %d %s %v", status, again, err)
	}
	head, err := svc.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.runner.WaitFor(ctx, "wallet", head); err != nil {
		t.Fatal(err)
	}
	status, body, err := c.get("/wallets/bench/accounts/sink")
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), "0.00000042") {
		t.Fatalf("sink after one transfer of 0.00000042 (retried): %d %s %v", status, body, err)
	}
	stop()
	closeSvc()

	out := filepath.Join(t.TempDir(), "events.ndjson")
	if err := cli(t, url, "events", "export", "-o", out); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], `"source":"postgres"`) {
		t.Fatalf("export header: %.200s (%v)", b, err)
	}
	other := dbtest.PostgresURL(t)
	if err := cli(t, other, "events", "import", out); err != nil {
		t.Fatal(err)
	}
	if err := cli(t, other, "events", "import", out); !errors.Is(err, dump.ErrNotEmpty) {
		t.Fatalf("second import: %v, want ErrNotEmpty", err)
	}
	if err := cli(t, other, "audit", "verify"); err != nil {
		t.Fatalf("audit verify after the import: %v", err)
	}
	src, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := pgstore.Open(ctx, other, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// Wallet snapshots went to the event store's database, not to a file.
	if _, ok, err := src.Snapshots().Load(ctx, "wallet-bench"); err != nil || !ok {
		t.Fatalf("no snapshot of wallet-bench in Postgres (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "snapshots.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshots.db in the data directory: %v", err)
	}
	want, got := readAll(t, src), readAll(t, dst)
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("imported %d events of %d", len(got), len(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) { // positions are gap-free from 1 in both
			t.Fatalf("event %d differs:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
}
