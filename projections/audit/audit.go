// Package audit is the read model of every stream's chain head: the newest
// revision, position and hash, which auditors compare against the log and
// which signed checkpoints are made of.
package audit

import (
	"context"
	"fmt"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// Heads projects stream heads into table stream_heads.
type Heads struct{}

// Name implements projections.Projection.
func (Heads) Name() string { return "audit_heads" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (Heads) Version() int { return 1 }

// Migrations implements projections.Projection.
func (Heads) Migrations(d projections.Dialect) []string {
	return []string{`CREATE TABLE stream_heads (
		stream   TEXT PRIMARY KEY,
		next     BIGINT NOT NULL,
		position BIGINT NOT NULL,
		hash     ` + d.Bytes() + ` NOT NULL,
		created  BIGINT NOT NULL
	)` + d.UpdatedInPlace()}
}

var bulk = projections.Bulk{
	Table:   "stream_heads",
	Columns: []string{"stream", "next", "position", "hash", "created"},
	OnConflict: `ON CONFLICT (stream) DO UPDATE SET next = excluded.next, position = excluded.position,
		hash = excluded.hash, created = excluded.created`,
}

// Apply implements projections.Projection: the last event of each stream in
// the batch is its head.
func (Heads) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	last := make(map[string]int, 16)
	order := make([]string, 0, 16)
	for i, e := range events {
		if _, seen := last[e.Stream]; !seen {
			order = append(order, e.Stream)
		}
		last[e.Stream] = i
	}
	rows := make([][]any, 0, len(order))
	for _, stream := range order {
		e := events[last[stream]]
		rows = append(rows, []any{e.Stream, int64(e.Revision + 1), int64(e.Position), e.Hash[:], e.Created.UnixMicro()})
	}
	if err := tx.Insert(ctx, bulk, rows); err != nil {
		return fmt.Errorf("stream heads: %w", err)
	}
	return nil
}

// Head is one stream's chain head.
type Head struct {
	Stream   string          `json:"stream"`
	Next     uint64          `json:"next_revision"`
	Position uint64          `json:"position"`
	Hash     eventstore.Hash `json:"hash"`
}

// Count returns the number of streams.
func Count(ctx context.Context, db projections.DB) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM stream_heads`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count stream heads: %w", err)
	}
	return n, nil
}
