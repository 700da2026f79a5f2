package dbtest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/sqlite"
)

// OpenSQLite opens a fresh SQLite read-model database in a temporary
// directory.
func OpenSQLite(tb testing.TB) projections.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "read.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// Each runs fn as a parallel subtest per read-model database: SQLite and
// Postgres (OpenPostgres: it fails under CI without a server).
func Each(t *testing.T, fn func(t *testing.T, open NewDB)) {
	for _, d := range []struct {
		name string
		open NewDB
	}{{"sqlite", OpenSQLite}, {"postgres", OpenPostgres}} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d.open)
		})
	}
}
