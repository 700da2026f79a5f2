package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	pgstore "github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestServeWaitsForItsStores: a service whose Postgres is not reachable yet
// (as under Compose while the database starts) does not exit: it logs that
// it retries, and once the server answers (here: a forwarder to the test
// Postgres starts listening on the configured port) it opens its stores and
// says so. A store that will never do (a malformed URL) still fails at once.
func TestServeWaitsForItsStores(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	real, err := url.Parse(dbtest.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	late := *real
	late.Host = port
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	cfg := &Config{DataDir: t.TempDir(), AdminPassword: benchAdminPassword, BcryptCost: 4, EventStore: URL(late.String()),
		ReadModels: URL(late.String()), SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
	cfg.setDefaults()
	type opened struct {
		svc *service
		err error
	}
	done := make(chan opened, 1)
	go func() {
		svc, err := newService(ctx, cfg, logger, wiring{})
		done <- opened{svc, err}
	}()
	logs.waitFor(t, func(s string) bool { return strings.Contains(s, "store not reachable yet; retrying") })
	select {
	case o := <-done:
		t.Fatalf("newService returned while its store was unreachable: %v", o.err)
	default:
	}
	forward(ctx, t, port, real.Host)
	var o opened
	select {
	case o = <-done:
	case <-ctx.Done():
		t.Fatalf("the service did not open its stores once Postgres answered; log:\n%s", logs.String())
	}
	if o.err != nil {
		t.Fatalf("newService: %v", o.err)
	}
	defer o.svc.close()
	if _, ok := o.svc.store.(*pgstore.Store); !ok {
		t.Fatalf("the service opened a %T", o.svc.store)
	}
	if s := logs.String(); !strings.Contains(s, "store reached") || strings.Contains(s, real.User.String()+"@") {
		t.Fatalf("log lacks \"store reached\" or shows the URL:\n%s", s)
	}

	cfg.EventStore = "postgres://%zz"
	if _, err := newService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), wiring{}); err == nil {
		t.Fatal("a malformed event store URL was accepted")
	}
}

// freePort returns a loopback address nothing listens on (now).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// forward listens on addr and copies every connection to and from target
// until ctx ends or the test is over.
func forward(ctx context.Context, t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				up, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
}
