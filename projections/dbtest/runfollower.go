package dbtest

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/test/background"
)

// RunFollower runs a projection runner for the follower f over the SQLite
// read-model database at path (kept across runs over the same path, so a
// second run restores f's snapshot), fed from store, until stop or the
// end of the test. It returns the wiring's port for f (the runner's
// CaughtUp) and stop, which stops the runner, fails the test if it
// failed, and closes the database. opts.Logger defaults to discarding.
func RunFollower(tb testing.TB, store eventstore.Store, path string, f projections.Follower, opts projections.Options) (
	caughtUp func(context.Context) error, stop func()) {
	tb.Helper()
	r, stop := runFollower(tb, store, path, f, opts)
	name := f.Name()
	return func(ctx context.Context) error { return r.CaughtUp(ctx, name) }, stop
}

// RunFollowerAt is RunFollower with the other port for f: a function that
// waits until f has handled the log up to a position (the runner's
// WaitFor).
func RunFollowerAt(tb testing.TB, store eventstore.Store, path string, f projections.Follower, opts projections.Options) (
	at func(context.Context, uint64) error, stop func()) {
	tb.Helper()
	r, stop := runFollower(tb, store, path, f, opts)
	name := f.Name()
	return func(ctx context.Context, pos uint64) error { return r.WaitFor(ctx, name, pos) }, stop
}

func runFollower(tb testing.TB, store eventstore.Store, path string, f projections.Follower, opts projections.Options) (
	*projections.Runner, func()) {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := projections.NewRunner(db, store, opts, projections.Follow(f))
	stopRunner := background.Run(tb, false, r.Run)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := stopRunner(); err != nil {
				tb.Errorf("runner of %s: %v", f.Name(), err)
			}
			db.Close()
		})
	}
	tb.Cleanup(stop)
	return r, stop
}
