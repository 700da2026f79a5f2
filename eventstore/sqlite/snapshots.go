package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/coinledger/coinledger/eventstore"
)

// Snapshots is an eventstore.SnapshotStore in its own SQLite file (e.g.
// snapshots.db beside events.db, whatever the event store). Snapshots are
// a cache: the file is written without fsync (synchronous=NORMAL in WAL
// mode), and deleting it only costs the next cold loads a full fold.
type Snapshots struct {
	db *sql.DB
}

var _ eventstore.SnapshotStore = (*Snapshots)(nil)

const snapshotSchema = `CREATE TABLE IF NOT EXISTS snapshots (
	stream   TEXT PRIMARY KEY,
	version  INTEGER NOT NULL,
	position INTEGER NOT NULL,
	hash     BLOB NOT NULL,
	schema   TEXT NOT NULL,
	data     BLOB NOT NULL
) WITHOUT ROWID`

// OpenSnapshots opens (creating if needed) the snapshot file at path.
func OpenSnapshots(ctx context.Context, path string) (*Snapshots, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open snapshots %s: %w", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, fmt.Errorf("open snapshots %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, snapshotSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open snapshots %s: schema: %w", path, err)
	}
	return &Snapshots{db: db}, nil
}

// Close closes the file.
func (s *Snapshots) Close() error { return s.db.Close() }

// Load implements eventstore.SnapshotStore.
func (s *Snapshots) Load(ctx context.Context, stream string) (eventstore.Snapshot, bool, error) {
	snap := eventstore.Snapshot{Stream: stream}
	var hash []byte
	err := s.db.QueryRowContext(ctx, `SELECT version, position, hash, schema, data FROM snapshots WHERE stream = ?`, stream).
		Scan(&snap.Version, &snap.Position, &hash, &snap.Schema, &snap.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return eventstore.Snapshot{}, false, nil
	}
	if err != nil {
		return eventstore.Snapshot{}, false, fmt.Errorf("load snapshot of %s: %w", stream, err)
	}
	copy(snap.Hash[:], hash) // a short hash leaves zeros: the loader's check ignores it
	return snap, true, nil
}

// Save implements eventstore.SnapshotStore.
func (s *Snapshots) Save(ctx context.Context, snap eventstore.Snapshot) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO snapshots (stream, version, position, hash, schema, data) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (stream) DO UPDATE SET version = excluded.version, position = excluded.position,
		hash = excluded.hash, schema = excluded.schema, data = excluded.data`,
		snap.Stream, snap.Version, snap.Position, snap.Hash[:], snap.Schema, snap.Data)
	if err != nil {
		return fmt.Errorf("save snapshot of %s@%d: %w", snap.Stream, snap.Version, err)
	}
	return nil
}
