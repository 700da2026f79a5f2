package storetest

import (
	"context"
	"sync/atomic"

	"github.com/coinledger/coinledger/eventstore"
)

// ReadCounter wraps a Store and counts the events its ReadStream returns,
// for tests that prove how much of a stream a load reads.
type ReadCounter struct {
	eventstore.Store
	read atomic.Int64
}

// ReadStream implements eventstore.Store.
func (c *ReadCounter) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	events, err := c.Store.ReadStream(ctx, stream, from, limit)
	c.read.Add(int64(len(events)))
	return events, err
}

// Read returns how many events ReadStream returned so far.
func (c *ReadCounter) Read() int64 { return c.read.Load() }

// Reset sets the count to zero.
func (c *ReadCounter) Reset() { c.read.Store(0) }
