package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/postgres"
)

// PostgresEnv names the variable with the test server's URL; test/pg.sh
// prints it.
const PostgresEnv = "COINLEDGER_TEST_POSTGRES_URL"

// PostgresURL returns the test server's URL with a fresh schema as its
// search_path (postgres.Open creates it), dropped when tb ends, so tests
// run in parallel without seeing each other's tables. Without a server the
// test fails in CI (CI must start one) and is skipped elsewhere.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set: run the tests with test/run.sh, which starts PostgreSQL", PostgresEnv)
		}
		tb.Skipf("%s is not set; start a server with: eval \"$(test/pg.sh)\"", PostgresEnv)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresEnv, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if admin, err := postgres.Open(ctx, base); err == nil {
			_ = admin.Update(ctx, func(tx projections.Tx) error {
				_, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
				return err
			})
			admin.Close()
		}
	})
	return u.String()
}

// OpenPostgres returns a read-model database in a fresh schema of the test
// server (see PostgresURL), closed before the schema is dropped.
func OpenPostgres(tb testing.TB) projections.DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, PostgresURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	return db
}
