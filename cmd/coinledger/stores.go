package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	pgstore "github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/internal/backoff"
	"github.com/coinledger/coinledger/internal/pg"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/postgres"
	pgsqlite "github.com/coinledger/coinledger/projections/sqlite"
)

// errStoreLocked: the embedded event store is locked by another process,
// a running server or another command. Commands that can go through a
// running server's admin API instead (remote.go) branch on it.
var errStoreLocked = errors.New("the event store is in use, by a running server or another command")

// openEventStore opens the store the URL names: sqlite:PATH, esdb://... or
// postgres://... An embedded store locked by another process is an error
// wrapping errStoreLocked.
func openEventStore(ctx context.Context, url string) (eventstore.Store, func() error, error) {
	if isPostgresURL(url) {
		s, err := pgstore.Open(ctx, url, pgstore.Options{})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		s, err := sqlite.Open(ctx, path, sqlite.Options{})
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("%w: stop it first: %w", errStoreLocked, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
	s, err := esdb.Open(ctx, url, esdb.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("open EventStoreDB: %w", err)
	}
	return s, s.Close, nil
}

// storeKind names the kind of the event store the URL names: sqlite,
// postgres or esdb.
func storeKind(url string) string {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return "sqlite"
	case isPostgresURL(url):
		return "postgres"
	}
	return "esdb"
}

// isPostgresURL reports whether url names a PostgreSQL database.
func isPostgresURL(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// openReadModels opens the read-model database the URL names: sqlite:PATH or postgres://...
func openReadModels(ctx context.Context, url string) (projections.DB, func() error, error) {
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		db, err := pgsqlite.Open(ctx, path)
		if err != nil {
			return nil, nil, err
		}
		return db, db.Close, nil
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return db, func() error { db.Close(); return nil }, nil
}

// openStores opens the event store and the read models cfg names; close
// releases both.
func openStores(ctx context.Context, cfg *Config) (eventstore.Store, projections.DB, func(), error) {
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	if err != nil {
		return nil, nil, nil, err
	}
	db, closeDB, err := openReadModels(ctx, cfg.ReadModels.Reveal())
	if err != nil {
		closeStore()
		return nil, nil, nil, err
	}
	return store, db, func() { closeDB(); closeStore() }, nil
}

// Waits between attempts to reach a store at start: the first after 1 s,
// doubling up to 30 s.
const (
	startRetryMin = time.Second
	startRetryMax = 30 * time.Second
)

// openRetrying calls open until it succeeds, fails for a reason waiting
// cannot mend (a bad URL, wrong credentials, a locked embedded store), or
// ctx ends. A server that cannot be reached yet, as under Compose while
// the databases start, is retried with backoff, each attempt logged with
// what was tried (never the URL: it may hold a password).
func openRetrying(ctx context.Context, logger *slog.Logger, what string, open func(context.Context) error) error {
	for failures := 0; ; failures++ {
		err := open(ctx)
		if err == nil {
			if failures > 0 {
				logger.Info("store reached", "store", what, "attempts", failures+1)
			}
			return nil
		}
		if !unreachable(err) || ctx.Err() != nil {
			return err
		}
		wait := backoff.Jitter(backoff.Exp(startRetryMin, startRetryMax, failures))
		logger.Warn("store not reachable yet; retrying", "store", what, "attempt", failures+1,
			"retry_in", wait.Round(time.Millisecond).String(), "err", err)
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("%s: gave up: %w", what, err)
		}
	}
}

// unreachable reports whether err says a store's server could not be
// reached (or is starting), which a later attempt may mend.
func unreachable(err error) bool {
	return errors.Is(err, eventstore.ErrUnavailable) || pg.Unreachable(err)
}
