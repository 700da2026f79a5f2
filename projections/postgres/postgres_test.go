package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/postgres"
)

const envURL = "COINLEDGER_TEST_POSTGRES_URL"

// baseURL returns the test server's URL. Without one the test fails in CI
// (the CI script starts Postgres with test/pg.sh) and is skipped elsewhere.
func baseURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		if os.Getenv("CI") != "" {
			tb.Fatalf("%s is not set: CI must start Postgres (eval \"$(test/pg.sh)\") before the tests", envURL)
		}
		tb.Skipf("%s is not set; start a server with: eval \"$(test/pg.sh)\"", envURL)
	}
	return u
}

var schemas sync.Mutex

// open returns a database in a fresh schema of the test server, dropped when
// tb ends, so tests run in parallel without seeing each other's tables.
func open(tb testing.TB) projections.DB {
	tb.Helper()
	base := baseURL(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", envURL, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, base); err == nil {
			_, _ = c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE")
			c.Close(ctx)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close) // runs before the schema is dropped
	return db
}

func TestConformance(t *testing.T) { dbtest.Run(t, open) }

func BenchmarkCatchUp(b *testing.B) { dbtest.BenchCatchUp(b, open) }

func TestOpenBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://secret@%zz"); err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	} else if want := "secret"; strings.Contains(err.Error(), want) {
		t.Errorf("error %q leaks the URL", err)
	}
}
