package storetest

import (
	"context"
	"errors"
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

// LogCounter wraps a Store and counts how the global log is read (ReadAll
// and Subscribe): the reads that start at its beginning and the events
// delivered, for tests that prove a restart resumes where it stopped.
type LogCounter struct {
	eventstore.Store
	fromStart atomic.Int64
	events    atomic.Int64
}

// ReadAll implements eventstore.Store.
func (c *LogCounter) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	if after == 0 {
		c.fromStart.Add(1)
	}
	events, err := c.Store.ReadAll(ctx, after, limit)
	c.events.Add(int64(len(events)))
	return events, err
}

// Subscribe implements eventstore.Store.
func (c *LogCounter) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	if after == 0 {
		c.fromStart.Add(1)
	}
	return c.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		c.events.Add(int64(len(events)))
		return fn(ctx, events)
	})
}

// FromStart returns how many ReadAll and Subscribe calls started at
// position 0.
func (c *LogCounter) FromStart() int64 { return c.fromStart.Load() }

// Events returns how many events ReadAll and Subscribe delivered.
func (c *LogCounter) Events() int64 { return c.events.Load() }

// Reset sets the counts to zero.
func (c *LogCounter) Reset() { c.fromStart.Store(0); c.events.Store(0) }

// AppendCounter wraps a Store and counts the appends it answered as
// retries (AppendResult.Retry) and as conflicts (ErrConflict), for tests
// that prove which way a writer went.
type AppendCounter struct {
	eventstore.Store
	retries, conflicts atomic.Int64
}

// Append implements eventstore.Store.
func (c *AppendCounter) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := c.Store.Append(ctx, stream, expected, events...)
	switch {
	case errors.Is(err, eventstore.ErrConflict):
		c.conflicts.Add(1)
	case err == nil && res.Retry:
		c.retries.Add(1)
	}
	return res, err
}

// Retries returns how many appends were answered as retries so far.
func (c *AppendCounter) Retries() int64 { return c.retries.Load() }

// Conflicts returns how many appends failed with ErrConflict so far.
func (c *AppendCounter) Conflicts() int64 { return c.conflicts.Load() }
