package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/postgres"
)

func TestConformance(t *testing.T) { dbtest.Run(t, dbtest.OpenPostgres) }

func BenchmarkCatchUp(b *testing.B) { dbtest.BenchCatchUp(b, dbtest.OpenPostgres) }

func TestOpenBadURL(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "postgres://secret@%zz"); err == nil {
		t.Fatal("Open of a malformed URL succeeded")
	} else if want := "secret"; strings.Contains(err.Error(), want) {
		t.Errorf("error %q leaks the URL", err)
	}
}
