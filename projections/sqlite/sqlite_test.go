package sqlite_test

import (
	"context"
	"testing"

	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/sqlite"
)

func TestConformance(t *testing.T) { dbtest.Run(t, dbtest.OpenSQLite) }

func BenchmarkCatchUp(b *testing.B) { dbtest.BenchCatchUp(b, dbtest.OpenSQLite) }

func TestOpenRejectsMemory(t *testing.T) {
	for _, path := range []string{"", ":memory:", "a.db?mode=ro", "file:a.db"} {
		if db, err := sqlite.Open(context.Background(), path); err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

func TestRebuild(t *testing.T) { dbtest.RunRebuild(t, dbtest.OpenSQLite) }
