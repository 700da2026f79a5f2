// Package sqlitetest opens throwaway embedded event stores for tests.
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// Open opens an empty store in a temporary directory with opts, closed
// when tb ends.
func Open(tb testing.TB, opts ...sqlite.Options) *sqlite.Store {
	tb.Helper()
	var o sqlite.Options
	if len(opts) > 0 {
		o = opts[0]
	}
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "events.db"), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}
