package dbtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coinledger/coinledger/eventstore"
)

// MemStore is a minimal in-memory eventstore.Store for tests and benchmarks
// that want the projection side alone: appends are checked against the
// expected version and hash-chained, but not deduplicated, and nothing is
// durable. Subscribe delivers pages of at most Page events (default 4096).
type MemStore struct {
	Page int

	mu      sync.RWMutex
	events  []eventstore.Event // events[i].Position == i+1
	streams map[string]eventstore.Event
	changed chan struct{} // closed and replaced on every append
}

var _ eventstore.Store = (*MemStore)(nil)

// NewMemStore returns an empty store.
func NewMemStore() *MemStore {
	return &MemStore{streams: map[string]eventstore.Event{}, changed: make(chan struct{})}
}

// Append stores events at the end of stream; see eventstore.Store.
func (s *MemStore) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	prepared, err := eventstore.Prepare(stream, events, 0)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, exists := s.streams[stream]
	next := uint64(0)
	if exists {
		next = last.Revision + 1
	}
	if !expected.Allows(next) {
		return eventstore.AppendResult{}, fmt.Errorf("append %s@%d (expected %s): %w", stream, next, expected, eventstore.ErrConflict)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	for _, d := range prepared {
		e := eventstore.Event{ID: d.ID, Stream: stream, Revision: next, Position: uint64(len(s.events)) + 1,
			Type: d.Type, Data: d.Data, Metadata: d.Metadata, Created: now}
		e.Hash = eventstore.ChainHash(last.Hash, e)
		s.events = append(s.events, e)
		last = e
		next++
	}
	s.streams[stream] = last
	close(s.changed)
	s.changed = make(chan struct{})
	return eventstore.AppendResult{NextRevision: next, Position: last.Position}, nil
}

// ReadStream returns up to limit events of stream from revision from on.
func (s *MemStore) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventstore.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []eventstore.Event
	for _, e := range s.events {
		if e.Stream == stream && e.Revision >= from && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

// ReadAll returns up to limit events after position after.
func (s *MemStore) ReadAll(ctx context.Context, after uint64, limit int) ([]eventstore.Event, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if after >= uint64(len(s.events)) {
		return nil, nil
	}
	to := min(uint64(len(s.events)), after+uint64(limit))
	return append([]eventstore.Event(nil), s.events[after:to]...), nil
}

// Subscribe delivers stored events after position after, then live ones.
func (s *MemStore) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	page := s.Page
	if page <= 0 {
		page = 4096
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.RLock()
		changed := s.changed
		s.mu.RUnlock()
		events, _ := s.ReadAll(ctx, after, page)
		if len(events) == 0 {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := fn(ctx, events); err != nil {
			return err
		}
		after = events[len(events)-1].Position
	}
}

// Head returns the newest position.
func (s *MemStore) Head(ctx context.Context) (uint64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return uint64(len(s.events)), nil
}
