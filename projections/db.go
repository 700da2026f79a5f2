// Package projections turns the event store's global log into read models.
//
// A Projection is written once against the small SQL layer in this file (DB,
// Tx, Rows) and runs on every read-model database that implements it:
// embedded SQLite (projections/sqlite) and Postgres (projections/postgres).
// The Runner feeds each projection the events after its checkpoint and
// commits the projection's rows and its new checkpoint in one transaction, so
// every event takes effect exactly once, across crashes and restarts.
//
// This package imports no database driver; every implementation passes the
// conformance suite in projections/dbtest.
package projections

import (
	"context"
	"errors"
	"fmt"
)

// Sentinel errors. Implementations translate their drivers' errors into them.
var (
	// ErrNoRows: QueryRow found no row.
	ErrNoRows = errors.New("no rows in result set")
	// ErrSchemaTooNew: the database has more migration steps recorded for an
	// owner than the code knows; the code is older than the database.
	ErrSchemaTooNew = errors.New("read-model schema is newer than the code")
	// ErrTransient wraps an error that may go away if the same work is
	// tried again: the database is unreachable or restarting, or a
	// transaction lost a serialization conflict or a deadlock. The Runner
	// retries such failures with backoff instead of parking the projection.
	ErrTransient = errors.New("transient read-model failure")
)

// Transient reports whether err is worth retrying unchanged: an
// implementation marked it ErrTransient, or a deadline ran out on the
// database.
func Transient(err error) bool {
	return errors.Is(err, ErrTransient) || errors.Is(err, context.DeadlineExceeded)
}

// Dialect names the SQL dialect of a DB. Queries are written once in the
// common subset of both dialects (see DB); the few differences are switched
// on here, in one place.
type Dialect string

// The dialects there are.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Bytes returns the column type for byte strings: BLOB on SQLite, BYTEA on
// Postgres.
func (d Dialect) Bytes() string {
	if d == Postgres {
		return "BYTEA"
	}
	return "BLOB"
}

// UpdatedInPlace returns the table options (to append after CREATE TABLE's
// closing parenthesis) for a table whose rows are updated far more often than
// inserted, such as balances: on Postgres a fillfactor that leaves room on
// each page so updates stay HOT (no index churn; about twice the upsert
// rate); nothing on SQLite.
func (d Dialect) UpdatedInPlace() string {
	if d == Postgres {
		return " WITH (fillfactor = 70)"
	}
	return ""
}

// DB is a read-model database.
//
// SQL is written once, in the subset that SQLite and Postgres share, with ?
// placeholders (an implementation rewrites them to its own form; a ? inside a
// quoted literal, identifier or comment is left alone, so Postgres's jsonb ?
// operators cannot be used: call jsonb_exists instead). Portable column types
// are BIGINT, TEXT and Dialect.Bytes(); times are stored as BIGINT (Unix
// microseconds); upserts are written INSERT ... ON CONFLICT (cols) DO UPDATE
// SET col = excluded.col. Portable scan destinations are *int64, *int,
// *string, *[]byte and their sql.Null* and pointer-to-pointer forms;
// aggregates such as SUM should be CAST(... AS BIGINT) since Postgres
// returns NUMERIC for a sum of BIGINTs. Text may hold any bytes (NUL,
// invalid UTF-8, as events may): every implementation stores string
// parameters and returns them to string destinations unchanged, and an =
// comparison with a parameter matches them.
//
// All methods are safe for concurrent use. Readers never block the writer and
// see only committed transactions; on SQLite writers are serialized.
type DB interface {
	// Update runs fn in one read-write transaction: it commits when fn
	// returns nil and rolls back when fn returns an error (returned
	// unwrapped, so callers can branch on it), panics (the panic goes on) or
	// ctx is done. The Tx must not be used after fn returns, and fn must
	// not call Update (on SQLite, with its single writer, that deadlocks).
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Query runs a read-only query outside any write transaction. The caller
	// must Close the rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow runs a query expected to return at most one row; Scan
	// reports ErrNoRows when there is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
	// Migrate brings owner's schema to len(steps) versions: it runs the
	// steps the database has not yet recorded for owner, in order, and
	// records them, all in one transaction, so a failing step leaves nothing
	// behind. Calling it again with the same steps does nothing. Steps are
	// append-only: never edit or reorder a released step, add a new one. It
	// fails with ErrSchemaTooNew when the database has more steps recorded
	// than given. Concurrent Migrate calls (from several processes too) are
	// serialized.
	Migrate(ctx context.Context, owner string, steps []string) error
	// Dialect reports the SQL dialect.
	Dialect() Dialect
}

// Tx is a read-write transaction handed to DB.Update. It is not safe for
// concurrent use, and the Rows of a Query must be closed before the next
// statement in the same transaction (Postgres runs one at a time per
// connection).
type Tx interface {
	// Exec runs a statement and returns the number of rows it affected.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query runs a query inside the transaction; it sees the
	// transaction's own writes. The caller must Close the rows.
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	// QueryRow is Query for at most one row; Scan reports ErrNoRows when
	// there is none.
	QueryRow(ctx context.Context, query string, args ...any) Row
	// Insert writes rows (each one value per column of b) in as few round
	// trips as the dialect allows: multi-row INSERT ... VALUES statements on
	// SQLite, COPY on Postgres (multi-row VALUES when b.OnConflict is set).
	// Rows with the same conflict key must not appear twice in one call
	// (Postgres rejects it): fold them first.
	Insert(ctx context.Context, b Bulk, rows [][]any) error
}

// Bulk names the target of Tx.Insert. Table and column names are written
// into the SQL as they are: they must be trusted identifiers.
type Bulk struct {
	Table   string
	Columns []string
	// OnConflict, when set, is appended to every INSERT, e.g.
	// "ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount".
	OnConflict string
}

// Rows is the result of a query. Close releases it and reports the first
// error met while iterating; Err reports that error without closing.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Row is the result of QueryRow.
type Row interface {
	// Scan copies the row's columns into dest; it reports ErrNoRows when the
	// query returned no row.
	Scan(dest ...any) error
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	owner   TEXT NOT NULL,
	version BIGINT NOT NULL,
	PRIMARY KEY (owner, version)
)`

// MigrateTx is the common body of DB.Migrate for implementations: it runs in
// tx (which the implementation has made exclusive against other migrations)
// the steps of owner that schema_migrations does not yet record, and records
// them. Projections call DB.Migrate, never this.
func MigrateTx(ctx context.Context, tx Tx, owner string, steps []string) error {
	if owner == "" {
		return errors.New("migrate: empty owner")
	}
	if _, err := tx.Exec(ctx, migrationsTable); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", owner, err)
	}
	var have int64
	err := tx.QueryRow(ctx, `SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations WHERE owner = ?`, owner).Scan(&have)
	if err != nil {
		return fmt.Errorf("migrate %s: read version: %w", owner, err)
	}
	if have > int64(len(steps)) {
		return fmt.Errorf("migrate %s: database at version %d, code knows %d: %w", owner, have, len(steps), ErrSchemaTooNew)
	}
	for v := have; v < int64(len(steps)); v++ {
		if _, err := tx.Exec(ctx, steps[v]); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", owner, v+1, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (owner, version) VALUES (?, ?)`, owner, v+1); err != nil {
			return fmt.Errorf("migrate %s: record version %d: %w", owner, v+1, err)
		}
	}
	return nil
}
