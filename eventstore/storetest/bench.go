package storetest

import (
	"context"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/loadgen"
)

// BenchAppend64 runs b.N events (at least one append each) through s from
// 64 concurrent appenders of batch events each, and reports the rate and
// the 99th percentile latency of an append.
func BenchAppend64(b *testing.B, s eventstore.Store, batch int) {
	b.Helper()
	b.ResetTimer()
	res, err := loadgen.AppendLoad(context.Background(), s, 64, batch, max(b.N, 64*batch))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.EventsPerSec(), "events/s")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
}
