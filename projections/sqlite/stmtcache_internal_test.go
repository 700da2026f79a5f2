package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/projections"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "rm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestStatementsArePreparedOnce checks that every way of running SQL (reads
// on the pool, and Exec, Query, QueryRow, Insert in a transaction) goes
// through a statement cache, so the same SQL text is parsed once, not on
// every call.
func TestStatementsArePreparedOnce(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	if err := db.Migrate(ctx, "t", []string{`CREATE TABLE t (k BIGINT PRIMARY KEY, v BIGINT NOT NULL)`}); err != nil {
		t.Fatal(err)
	}
	const (
		upsert = `INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = t.v + excluded.v`
		sum    = `SELECT CAST(COALESCE(SUM(v), 0) AS BIGINT) FROM t WHERE k >= ?`
		list   = `SELECT k, v FROM t WHERE k >= ? ORDER BY k`
	)
	writes := db.stmts.n
	for i := range 5 {
		err := db.Update(ctx, func(tx projections.Tx) error {
			if _, err := tx.Exec(ctx, upsert, i, 1); err != nil {
				return err
			}
			if err := tx.Insert(ctx, projections.Bulk{Table: "t", Columns: []string{"k", "v"}}, [][]any{{100 + 2*i, 1}, {101 + 2*i, 1}}); err != nil {
				return err
			}
			var n int64
			if err := tx.QueryRow(ctx, sum, 0).Scan(&n); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, list, 0)
			if err != nil {
				return err
			}
			return rows.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		if err := db.QueryRow(ctx, sum, 0).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if want := int64(1 + 3*i + 2); n != want {
			t.Fatalf("round %d: sum %d, want %d", i, n, want)
		}
		rows, err := db.Query(ctx, list, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The writer's four texts (the 2-row insert is one) and the readers' two.
	if got := db.stmts.n - writes; got != 4 {
		t.Errorf("writer prepared %d statements, want 4", got)
	}
	if db.rstmt.n != 2 {
		t.Errorf("readers prepared %d statements, want 2", db.rstmt.n)
	}
}

// TestStatementCacheIsBounded checks that past maxCached distinct texts
// statements still run, unprepared, and that a closed cache prepares
// nothing.
func TestStatementCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for i := range maxCached + 10 {
		var n int64
		if err := db.QueryRow(ctx, fmt.Sprintf(`SELECT CAST(%d AS BIGINT)`, i)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != int64(i) {
			t.Fatalf("got %d, want %d", n, i)
		}
	}
	if db.rstmt.n != maxCached {
		t.Errorf("cache holds %d statements, want %d", db.rstmt.n, maxCached)
	}
	db.rstmt.close()
	if st := db.rstmt.get(ctx, `SELECT 1`); st != nil {
		t.Error("a closed cache prepared a statement")
	}
}
