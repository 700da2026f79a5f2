package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/sqlite"
)

func open(tb testing.TB) projections.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "read.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) { dbtest.Run(t, open) }

func BenchmarkCatchUp(b *testing.B) { dbtest.BenchCatchUp(b, open) }

func TestOpenRejectsMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:", "a.db?mode=ro", "file:a.db"} {
		if db, err := sqlite.Open(context.Background(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}
