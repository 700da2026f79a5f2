// Package postgres implements projections.DB on PostgreSQL with a pgx
// connection pool. Text parameters and scanned text pass through a
// reversible escape (see escChar), so that text Postgres refuses (NUL
// bytes, invalid UTF-8) is stored and read back like any other.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinledger/coinledger/internal/pg"
	"github.com/coinledger/coinledger/projections"
)

// DB is a read-model database in PostgreSQL. Transactions run at READ
// COMMITTED; the runner's checkpoint fence makes that enough for
// exactly-once application.
type DB struct {
	pool *pgxpool.Pool
	sql  rewriter
}

var _ projections.DB = (*DB)(nil)

// Open connects to the database at url (a postgres:// URL or key=value DSN;
// extra parameters such as search_path=... become session settings) and
// checks that it answers. Close releases the pool.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("open read models: cannot parse the Postgres URL")
	}
	if err := pg.CreateSchema(ctx, cfg.ConnConfig); err != nil {
		return nil, fmt.Errorf("open read models on %s: %w", cfg.ConnConfig.Host, err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open read models on %s: %w", cfg.ConnConfig.Host, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open read models on %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return &DB{pool: pool}, nil
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() { db.pool.Close() }

// Dialect reports projections.Postgres.
func (db *DB) Dialect() projections.Dialect { return projections.Postgres }

// Update runs fn in one transaction; see projections.DB.
func (db *DB) Update(ctx context.Context, fn func(projections.Tx) error) error {
	ptx, err := db.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("read models: begin: %w", transient(err))
	}
	done := false
	defer func() {
		if !done {
			_ = ptx.Rollback(context.WithoutCancel(ctx)) // fn panicked
		}
	}()
	ferr := fn(&tx{tx: ptx, sql: &db.sql})
	done = true
	if ferr != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return transient(ferr)
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("read models: commit: %w", transient(err))
	}
	return nil
}

// transient wraps err in projections.ErrTransient when it is a failure that
// may pass: the connection was lost or refused, the server is shutting down
// or starting, or the transaction hit a serialization failure or deadlock.
// Other errors (a projection's own, a constraint violation) are returned
// as they are.
func transient(err error) error {
	if err == nil || errors.Is(err, projections.ErrTransient) {
		return err
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") || pg.Unreachable(err) {
		return fmt.Errorf("%w: %w", projections.ErrTransient, err)
	}
	return err
}

// Query runs a query on a pooled connection, outside any transaction.
// Failures to reach the server are projections.ErrTransient, as in Update.
func (db *DB) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	r, err := db.pool.Query(ctx, db.sql.rewrite(query), text(args)...)
	if err != nil {
		return nil, transient(err)
	}
	return rows{r}, nil
}

// QueryRow runs a query for at most one row on a pooled connection; see
// Query for its errors.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	return row{db.pool.QueryRow(ctx, db.sql.rewrite(query), text(args)...)}
}

// Migrate runs owner's missing steps; see projections.DB. A transaction-level
// advisory lock, keyed by the current schema, serializes concurrent
// migrations.
func (db *DB) Migrate(ctx context.Context, owner string, steps []string) error {
	return db.Update(ctx, func(t projections.Tx) error {
		if _, err := t.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/coinledger/migrate'))`); err != nil {
			return fmt.Errorf("migrate %s: lock: %w", owner, err)
		}
		return projections.MigrateTx(ctx, t, owner, steps)
	})
}

// text escapes the text parameters of a statement; see escChar.
func text(args []any) []any {
	out, _ := escapeArgs(args)
	return out
}

// rows and row unescape the text they scan; see escChar.
type rows struct{ pgx.Rows }

func (r rows) Scan(dest ...any) error {
	if err := r.Rows.Scan(dest...); err != nil {
		return err
	}
	unescapeDest(dest)
	return nil
}

func (r rows) Err() error { return transient(r.Rows.Err()) }

func (r rows) Close() error {
	r.Rows.Close()
	return r.Err()
}

type row struct{ r pgx.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, pgx.ErrNoRows) {
		return projections.ErrNoRows
	}
	if err == nil {
		unescapeDest(dest)
	}
	return transient(err)
}

type tx struct {
	tx     pgx.Tx
	sql    *rewriter
	staged map[string]bool // staging tables filled in this transaction
}

func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(ctx, t.sql.rewrite(query), text(args)...)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *tx) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	r, err := t.tx.Query(ctx, t.sql.rewrite(query), text(args)...)
	if err != nil {
		return nil, err
	}
	return rows{r}, nil
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	return row{t.tx.QueryRow(ctx, t.sql.rewrite(query), text(args)...)}
}

// copyUpsertMin is the row count from which an upsert goes through COPY into
// a staging table (about 1.5 times the rate of a multi-row VALUES upsert at
// 10,000 rows); below it one INSERT ... VALUES statement is cheaper.
const copyUpsertMin = 256

// Insert writes rows with COPY, or, when b.OnConflict is set, with one
// multi-row INSERT ... VALUES (below copyUpsertMin rows) or through a
// staging table (see copyUpsert).
func (t *tx) Insert(ctx context.Context, b projections.Bulk, rs [][]any) error {
	cols := len(b.Columns)
	if cols == 0 {
		return fmt.Errorf("insert into %s: no columns", b.Table)
	}
	if len(rs) == 0 {
		return nil
	}
	for i, r := range rs {
		if len(r) != cols {
			return fmt.Errorf("insert into %s: row %d has %d values for %d columns", b.Table, i, len(r), cols)
		}
	}
	rs = escapeRows(rs)
	switch {
	case b.OnConflict == "":
		if _, err := t.tx.CopyFrom(ctx, pgx.Identifier(strings.Split(b.Table, ".")), b.Columns, pgx.CopyFromRows(rs)); err != nil {
			return fmt.Errorf("insert into %s (copy %d rows): %w", b.Table, len(rs), err)
		}
		return nil
	case len(rs) >= copyUpsertMin:
		return t.copyUpsert(ctx, b, rs)
	}
	args := make([]any, 0, len(rs)*cols)
	for _, r := range rs {
		args = append(args, r...)
	}
	// Built with $n directly: pgx caches the prepared statement by its text.
	if _, err := t.tx.Exec(ctx, insertSQL(b, len(rs)), args...); err != nil {
		return fmt.Errorf("insert into %s (%d rows): %w", b.Table, len(rs), err)
	}
	return nil
}

func insertSQL(b projections.Bulk, rows int) string {
	var sb strings.Builder
	sb.Grow(64 + rows*len(b.Columns)*7 + len(b.OnConflict))
	sb.WriteString("INSERT INTO ")
	sb.WriteString(b.Table)
	sb.WriteString(" (")
	sb.WriteString(strings.Join(b.Columns, ", "))
	sb.WriteString(") VALUES ")
	n := 0
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for j := range b.Columns {
			if j > 0 {
				sb.WriteByte(',')
			}
			n++
			sb.WriteByte('$')
			sb.WriteString(strconv.Itoa(n))
		}
		sb.WriteByte(')')
	}
	if b.OnConflict != "" {
		sb.WriteByte(' ')
		sb.WriteString(b.OnConflict)
	}
	return sb.String()
}

// copyUpsert stages rs with COPY in a temporary table that has the bulk's
// columns and lives as long as the connection (ON COMMIT DELETE ROWS), then
// upserts them in one INSERT ... SELECT ... ON CONFLICT statement.
func (t *tx) copyUpsert(ctx context.Context, b projections.Bulk, rs [][]any) error {
	h := fnv.New64a()
	h.Write([]byte(b.Table))
	for _, c := range b.Columns {
		h.Write([]byte{0})
		h.Write([]byte(c))
	}
	stage := fmt.Sprintf("coinledger_stage_%x", h.Sum64())
	cols := strings.Join(b.Columns, ", ")
	if t.staged[stage] {
		// Used before in this transaction: its rows are only deleted at commit.
		if _, err := t.tx.Exec(ctx, "DELETE FROM "+stage); err != nil {
			return fmt.Errorf("insert into %s: empty staging table: %w", b.Table, err)
		}
	} else if _, err := t.tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stage+" ON COMMIT DELETE ROWS AS SELECT "+cols+" FROM "+b.Table+" WITH NO DATA"); err != nil {
		return fmt.Errorf("insert into %s: create staging table: %w", b.Table, err)
	}
	if t.staged == nil {
		t.staged = map[string]bool{}
	}
	t.staged[stage] = true
	if _, err := t.tx.CopyFrom(ctx, pgx.Identifier{stage}, b.Columns, pgx.CopyFromRows(rs)); err != nil {
		return fmt.Errorf("insert into %s (copy %d rows to stage): %w", b.Table, len(rs), err)
	}
	if _, err := t.tx.Exec(ctx, "INSERT INTO "+b.Table+" ("+cols+") SELECT "+cols+" FROM "+stage+" "+b.OnConflict); err != nil {
		return fmt.Errorf("insert into %s (%d rows from stage): %w", b.Table, len(rs), err)
	}
	return nil
}
