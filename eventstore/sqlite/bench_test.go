package sqlite_test

import (
	"context"
	"testing"

	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// BenchmarkAppend64 measures durable appends by 64 concurrent appenders of
// 1 or 16 events each, with group commit and, as the baseline, one commit
// per append. b.N counts events.
func BenchmarkAppend64(b *testing.B) {
	for _, tc := range []struct {
		name  string
		opts  sqlite.Options
		batch int
	}{
		{"group-commit/1-event", sqlite.Options{}, 1},
		{"group-commit/16-events", sqlite.Options{}, 16},
		{"commit-per-append/1-event", sqlite.Options{NoGroupCommit: true}, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			storetest.BenchAppend64(b, open(b, tc.opts), tc.batch)
		})
	}
}

func BenchmarkReadAll(b *testing.B) {
	s := open(b, sqlite.Options{})
	if _, err := loadgen.AppendLoad(context.Background(), s, 16, 500, 200_000); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total int
	for i := 0; i < b.N; i++ {
		n, _, err := loadgen.ReadAllRate(context.Background(), s, 4096)
		if err != nil {
			b.Fatal(err)
		}
		total += n
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}
