package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// BenchmarkAppend64 measures appends by 64 concurrent appenders of 1 or 16
// events each, with group commit and, as the baseline, one transaction per
// append. b.N counts events.
func BenchmarkAppend64(b *testing.B) {
	for _, tc := range []struct {
		name  string
		opts  postgres.Options
		batch int
	}{
		{"group-commit/1-event", postgres.Options{}, 1},
		{"group-commit/16-events", postgres.Options{}, 16},
		{"commit-per-append/1-event", postgres.Options{NoGroupCommit: true}, 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			storetest.BenchAppend64(b, open(b, dbtest.PostgresURL(b), tc.opts), tc.batch)
		})
	}
}

// BenchmarkAppend64TwoProcesses is BenchmarkAppend64 with group commit,
// the appends going round-robin to two stores on one schema, as two
// service processes would: their group commits take turns at the log
// head's lock.
func BenchmarkAppend64TwoProcesses(b *testing.B) {
	for _, tc := range []struct {
		name  string
		batch int
	}{{"1-event", 1}, {"16-events", 16}} {
		b.Run(tc.name, func(b *testing.B) {
			u := dbtest.PostgresURL(b)
			s := &roundRobin{stores: []eventstore.Store{open(b, u, postgres.Options{}), open(b, u, postgres.Options{})}}
			s.Store = s.stores[0]
			storetest.BenchAppend64(b, s, tc.batch)
		})
	}
}

// roundRobin sends each append to the next of its stores.
type roundRobin struct {
	eventstore.Store
	stores []eventstore.Store
	next   atomic.Uint64
}

func (r *roundRobin) Append(ctx context.Context, stream string, v eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	return r.stores[r.next.Add(1)%uint64(len(r.stores))].Append(ctx, stream, v, events...)
}
