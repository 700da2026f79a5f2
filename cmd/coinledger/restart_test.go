package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// TestRestartReadsOnlyTheTail: a service restarted over a log it has
// followed to the end reads none of it again: every read model resumes from
// its checkpoint and every follower (indexes, schedulers, side-effect
// workers) from its snapshot, and the restarted service is ready and
// answers from them (a known API key authenticates, balances are there).
func TestRestartReadsOnlyTheTail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	inner, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	store := &storetest.LogCounter{Store: inner}
	cfg := &Config{DataDir: dir, AdminPassword: benchAdminPassword, BcryptCost: 4,
		SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
	cfg.setDefaults()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	// First life: some traffic, an API key.
	svc, err := newService(ctx, cfg, logger, wiring{store: store})
	if err != nil {
		t.Fatal(err)
	}
	c, stop, err := startBenchService(ctx, svc, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.setUp(4); err != nil {
		t.Fatal(err)
	}
	const transfers = 200
	for i := range transfers {
		body := map[string]string{"from": fmt.Sprintf("src%d", i%4), "to": "sink", "amount": "0.00000100"}
		if status, b, err := c.post("/wallets/bench/transfers", body, fmt.Sprintf("t-%d", i)); err != nil || status != http.StatusCreated {
			t.Fatalf("transfer %d: %d %s %v", i, status, b, err)
		}
	}
	var key struct {
		Key string `json:"key"`
	}
	if err := c.postJSON("/api-keys", map[string]any{"name": "restart", "roles": []string{"admin"}}, http.StatusCreated, &key); err != nil {
		t.Fatal(err)
	}
	// Every read model and follower has handled the whole log.
	st, err := svc.runner.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st {
		if err := svc.runner.CaughtUp(ctx, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	svc.close()
	if store.Events() == 0 {
		t.Fatal("the first life read no events: the count does not work")
	}

	// Second life over the same log and read models.
	store.Reset()
	svc, err = newService(ctx, cfg, logger, wiring{store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.close()
	c, stop, err = startBenchService(ctx, svc, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitReady(t, ctx, c)
	if n := store.Events(); n != 0 {
		t.Errorf("the restarted service read %d events of the log, want none", n)
	}
	c.token = key.Key // the user directory was restored, not re-read
	status, b, err := c.get("/wallets/bench/accounts/sink/balance")
	if err != nil || status != http.StatusOK {
		t.Fatalf("balance with the API key after restart: %d %s %v", status, b, err)
	}
	if n := store.Events(); n != 0 {
		t.Errorf("answering after the restart read %d events of the log, want none", n)
	}
}

// waitReady waits until /readyz answers 200.
func waitReady(t *testing.T, ctx context.Context, c *benchClient) {
	t.Helper()
	url := c.base[:len(c.base)-len("/api/v1")] + "/readyz"
	for {
		resp, err := c.http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not ready: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
