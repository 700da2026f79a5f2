package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/coinledger/coinledger/projections"
)

var _ projections.Shadowing = (*DB)(nil)

// OpenShadow implements projections.Shadowing: the shadow is a SQLite file
// of its own beside db's (db's path + ".rebuild-" + name), replaced if an
// interrupted rebuild left one.
func (db *DB) OpenShadow(ctx context.Context, name string) (projections.Shadow, error) {
	path := db.path + ".rebuild-" + fileSafe(name)
	if err := removeDB(path); err != nil {
		return nil, fmt.Errorf("open shadow %s: %w", path, err)
	}
	s, err := Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open shadow: %w", err)
	}
	return &shadow{DB: s, live: db}, nil
}

// fileSafe keeps the letters, digits, '-' and '_' of name.
func fileSafe(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			return r
		}
		return '_'
	}, name)
}

// removeDB deletes a database file with its WAL and shared-memory files.
func removeDB(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shadow is a rebuild's database file; see projections.Shadow.
type shadow struct {
	*DB
	live *DB
}

// Swap implements projections.Shadow. SQLite cannot move a table between
// files, so in one write transaction of the live database (with the shadow
// file attached to its connection) each shadow table replaces the live one:
// the live table is dropped, created again from the shadow's definition,
// filled with INSERT ... SELECT, and then indexed as in the shadow. Live
// readers, on WAL snapshots, see the old tables until the commit.
func (s *shadow) Swap(ctx context.Context, fn func(projections.Tx) error) error {
	live := s.live
	live.wmu.Lock()
	defer live.wmu.Unlock()
	conn, err := live.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("swap %s: %w", s.path, transient(err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `ATTACH DATABASE ? AS rebuild`, s.path); err != nil {
		return fmt.Errorf("swap %s: attach: %w", s.path, transient(err))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DETACH DATABASE rebuild`) //nolint:errcheck // the connection is returned either way
	stx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("swap %s: begin: %w", s.path, transient(err))
	}
	t := &tx{tx: stx, stmts: &live.stmts}
	if err := s.swap(ctx, t); err != nil {
		_ = stx.Rollback()
		return fmt.Errorf("swap %s: %w", s.path, transient(err))
	}
	if err := fn(t); err != nil {
		_ = stx.Rollback()
		return transient(err)
	}
	if err := stx.Commit(); err != nil {
		return fmt.Errorf("swap %s: commit: %w", s.path, transient(err))
	}
	return nil
}

// swap replaces the live tables by the attached shadow's in t.
func (s *shadow) swap(ctx context.Context, t *tx) error {
	type object struct{ kind, name, table, sql string }
	rows, err := t.tx.QueryContext(ctx, `SELECT type, name, tbl_name, sql FROM rebuild.sqlite_master
		WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' AND tbl_name <> 'schema_migrations' ORDER BY rowid`)
	if err != nil {
		return fmt.Errorf("list shadow tables: %w", err)
	}
	var tables, others []object
	for rows.Next() {
		var o object
		if err := rows.Scan(&o.kind, &o.name, &o.table, &o.sql); err != nil {
			rows.Close()
			return fmt.Errorf("list shadow tables: %w", err)
		}
		if o.kind == "table" {
			tables = append(tables, o)
		} else {
			others = append(others, o) // indexes, triggers
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("list shadow tables: %w", err)
	}
	for _, o := range tables {
		q := quote(o.name)
		if _, err := t.tx.ExecContext(ctx, `DROP TABLE IF EXISTS main.`+q); err != nil {
			return fmt.Errorf("drop %s: %w", o.name, err)
		}
		if _, err := t.tx.ExecContext(ctx, o.sql); err != nil { // unqualified: created in main
			return fmt.Errorf("create %s: %w", o.name, err)
		}
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO main.`+q+` SELECT * FROM rebuild.`+q); err != nil {
			return fmt.Errorf("copy %s: %w", o.name, err)
		}
	}
	for _, o := range others {
		if _, err := t.tx.ExecContext(ctx, o.sql); err != nil {
			return fmt.Errorf("create %s %s: %w", o.kind, o.name, err)
		}
	}
	return nil
}

// Drop implements projections.Shadow: it closes the shadow and deletes its
// file.
func (s *shadow) Drop(context.Context) error {
	return errors.Join(s.DB.Close(), removeDB(s.path))
}

// quote returns name as a quoted SQL identifier.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }
