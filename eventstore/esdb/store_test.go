package esdb_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// TestStore runs the conformance suite against the adapter talking to the
// in-process double, and against a real server when COINLEDGER_TEST_ESDB_URL
// is set (e.g. "esdb://localhost:2113?tls=false" for `docker compose up eventstore`).
func TestStore(t *testing.T) {
	t.Run("Double", func(t *testing.T) {
		t.Parallel()
		srv := esdbtest.Start(t, esdbtest.Options{})
		storetest.Run(t, func(t *testing.T) eventstore.Store { return MustOpen(t, srv.URL(), esdb.Options{}) })
	})
	t.Run("DoubleWithLinks", func(t *testing.T) {
		t.Parallel()
		// System events interleaved with every user event, as with the
		// server's system projections running.
		srv := esdbtest.Start(t, esdbtest.Options{Links: true})
		storetest.Run(t, func(t *testing.T) eventstore.Store { return MustOpen(t, srv.URL(), esdb.Options{}) })
	})
	t.Run("Server", func(t *testing.T) {
		url := os.Getenv("COINLEDGER_TEST_ESDB_URL")
		if url == "" {
			t.Skip("COINLEDGER_TEST_ESDB_URL is not set")
		}
		t.Parallel()
		storetest.Run(t, func(t *testing.T) eventstore.Store { return MustOpen(t, url, esdb.Options{}) })
	})
}

// MustOpen opens a store on url and closes it when the test ends.
func MustOpen(tb testing.TB, url string, opts esdb.Options) *esdb.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := esdb.Open(ctx, url, opts)
	if err != nil {
		tb.Fatalf("open %s: %v", url, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return s
}
