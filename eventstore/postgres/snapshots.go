package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/coinledger/coinledger/eventstore"
)

// Snapshots is an eventstore.SnapshotStore in the event store's database,
// shared by every process on it. Snapshots are a cache: the table is
// UNLOGGED (no WAL, emptied by a crash of the server), which only costs
// the next cold loads a full fold.
type Snapshots struct {
	s *Store
}

var _ eventstore.SnapshotStore = (*Snapshots)(nil)

const snapshotSchema = `CREATE UNLOGGED TABLE IF NOT EXISTS snapshots (
	stream   bytea   PRIMARY KEY,
	version  bigint  NOT NULL,
	position bigint  NOT NULL,
	hash     bytea   NOT NULL,
	schema   bytea   NOT NULL,
	data     bytea   NOT NULL
)`

// Snapshots returns the snapshot store beside s, on its connection pool.
func (s *Store) Snapshots() *Snapshots { return &Snapshots{s: s} }

// Load implements eventstore.SnapshotStore.
func (n *Snapshots) Load(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	if n.s.closed.Load() {
		return eventstore.Snapshot{}, false, eventstore.ErrClosed
	}
	snap := eventstore.Snapshot{Stream: stream}
	var version, position int64
	var hash, schema []byte
	err := n.s.pool.QueryRow(ctx, `SELECT version, position, hash, schema, data FROM snapshots WHERE stream = $1`, []byte(stream)).
		Scan(&version, &position, &hash, &schema, &snap.Data)
	if errors.Is(err, pgx.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("load snapshot of %s: %w", stream, n.s.translate(err))
	}
	snap.Version, snap.Position, snap.Schema = uint64(version), uint64(position), string(schema)
	copy(snap.Hash[:], hash) // a short hash leaves zeros: the loader's check ignores it
	return snap, true, nil
}

// Save implements eventstore.SnapshotStore.
func (n *Snapshots) Save(ctx context.Context, snap eventstore.Snapshot) error {
	if n.s.closed.Load() {
		return eventstore.ErrClosed
	}
	_, err := n.s.pool.Exec(ctx, `INSERT INTO snapshots (stream, version, position, hash, schema, data) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, position = excluded.position,
		hash = excluded.hash, schema = excluded.schema, data = excluded.data`,
		[]byte(snap.Stream), int64(snap.Version), int64(snap.Position), snap.Hash[:], []byte(snap.Schema), nonNil(snap.Data))
	if err != nil {
		return fmt.Errorf("save snapshot of %s@%d: %w", snap.Stream, snap.Version, n.s.translate(err))
	}
	return nil
}
