package sqlite

import (
	"context"
	"fmt"

	"github.com/coinledger/coinledger/eventstore"
)

var _ eventstore.BulkImporter = (*Store)(nil)

// BeginBulk implements eventstore.BulkImporter: the writer's connection
// runs with synchronous=OFF (commits write the WAL without an fsync) until
// finish, which switches back to synchronous=FULL and checkpoints the whole
// WAL into the database file with TRUNCATE: under FULL the checkpoint
// syncs the WAL before copying it and the database file after, so every
// imported event is on disk when finish returns nil. A failed checkpoint
// fails the store (fail-stop): only a restart may trust the file again.
func (s *Store) BeginBulk(ctx context.Context) (func(context.Context) error, error) {
	if head := s.head.Load(); head != 0 {
		return nil, fmt.Errorf("bulk import into %s: the store holds events up to position %d", s.path, head)
	}
	// The writer's single connection is free between commits; this waits
	// for it.
	if _, err := s.wdb.ExecContext(ctx, `PRAGMA synchronous=OFF`); err != nil {
		return nil, fmt.Errorf("bulk import into %s: %w", s.path, err)
	}
	return func(ctx context.Context) error {
		if _, err := s.wdb.ExecContext(ctx, `PRAGMA synchronous=FULL`); err != nil {
			return s.fail(fmt.Errorf("end bulk import: %w", err))
		}
		var busy, frames, done int
		if err := s.wdb.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &frames, &done); err != nil {
			return s.fail(fmt.Errorf("end bulk import: checkpoint: %w", err))
		}
		if busy != 0 {
			return s.fail(fmt.Errorf("end bulk import: checkpoint blocked by a reader (%d of %d WAL frames copied)", done, frames))
		}
		return nil
	}, nil
}
