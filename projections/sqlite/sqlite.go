// Package sqlite implements projections.DB on an embedded SQLite file
// (modernc.org/sqlite, pure Go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/coinledger/coinledger/projections"
)

// DB is a read-model database in one SQLite file, in WAL mode, with one
// writer connection (writers are serialized; SQLite allows one at a time
// anyway) and a pool of read-only connections that read committed snapshots
// without blocking the writer.
//
// It runs with synchronous=NORMAL: a commit is not fsynced, so a power loss
// may lose the last transactions (never corrupt the file). That is fine for
// read models: rows and checkpoint are lost together, and the runner replays
// the lost events from the event store, which is the durable source of truth.
type DB struct {
	path  string
	w     *sql.DB    // writer pool: writes serialized by wmu, BEGIN IMMEDIATE
	wmu   sync.Mutex // one write transaction at a time
	r     *sql.DB    // read-only pool
	stmts stmtCache  // the writer's prepared statements
	rstmt stmtCache  // the readers' prepared statements
}

var _ projections.DB = (*DB)(nil)

const common = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"

// Open opens (creating it and its directory if missing) the SQLite database
// at path, a plain file name: ":memory:", "file:" URIs and names containing
// '?' are rejected, since readers and the writer must share one file. Close
// releases it.
func Open(ctx context.Context, path string) (*DB, error) {
	if path == "" || path == ":memory:" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open read models %q: need a plain file path", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	w, err := sql.Open("sqlite", path+"?"+common+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	// Two connections, one transaction at a time (wmu): the idle one lets
	// the statement cache prepare a statement while the other holds a
	// transaction (database/sql then moves it onto the transaction's
	// connection once and keeps it there).
	w.SetMaxOpenConns(2)
	w.SetMaxIdleConns(2)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer's first connection switches the file to WAL before any
	// reader opens it.
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open read models %s: %w", path, err)
	}
	return &DB{path: path, w: w, r: r, stmts: stmtCache{db: w}, rstmt: stmtCache{db: r}}, nil
}

// Close closes every connection. Queries in progress fail.
func (db *DB) Close() error {
	db.stmts.close()
	db.rstmt.close()
	return errors.Join(db.r.Close(), db.w.Close())
}

// Dialect reports projections.SQLite.
func (db *DB) Dialect() projections.Dialect { return projections.SQLite }

// Update runs fn in one write transaction (BEGIN IMMEDIATE on the single
// writer connection); see projections.DB.
func (db *DB) Update(ctx context.Context, fn func(projections.Tx) error) (err error) {
	db.wmu.Lock()
	defer db.wmu.Unlock()
	stx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("read models %s: begin: %w", db.path, transient(err))
	}
	done := false
	defer func() {
		if !done {
			_ = stx.Rollback() // fn panicked
		}
	}()
	ferr := fn(&tx{tx: stx, stmts: &db.stmts})
	done = true
	if ferr != nil {
		_ = stx.Rollback()
		return transient(ferr)
	}
	if err := stx.Commit(); err != nil {
		if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
			// database/sql rolled the transaction back when ctx was done.
			err = ctx.Err()
		}
		return fmt.Errorf("read models %s: commit: %w", db.path, transient(err))
	}
	return nil
}

// transient wraps err in projections.ErrTransient when SQLite reports the
// database busy or locked (another process holds the write lock past the
// busy timeout): the same transaction may succeed later.
func transient(err error) error {
	if err == nil || errors.Is(err, projections.ErrTransient) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return fmt.Errorf("%w: %w", projections.ErrTransient, err)
		}
	}
	return err
}

// Query runs a read-only query on the read pool, prepared once (see stmtCache).
func (db *DB) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	if st := db.rstmt.get(ctx, query); st != nil {
		return rowsOrErr(st.QueryContext(ctx, args...))
	}
	return rowsOrErr(db.r.QueryContext(ctx, query, args...))
}

// QueryRow runs a read-only query for at most one row on the read pool,
// prepared once (see stmtCache).
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	if st := db.rstmt.get(ctx, query); st != nil {
		return row{st.QueryRowContext(ctx, args...)}
	}
	return row{db.r.QueryRowContext(ctx, query, args...)}
}

// Migrate runs owner's missing steps on the writer; see projections.DB. The
// writer's BEGIN IMMEDIATE serializes migrations across processes.
func (db *DB) Migrate(ctx context.Context, owner string, steps []string) error {
	return db.Update(ctx, func(tx projections.Tx) error {
		return projections.MigrateTx(ctx, tx, owner, steps)
	})
}

type row struct{ r *sql.Row }

func (r row) Scan(dest ...any) error {
	err := r.r.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return projections.ErrNoRows
	}
	return err
}

type tx struct {
	tx    *sql.Tx
	stmts *stmtCache
}

// stmt returns query prepared for this transaction, from the cache when it
// can (parsing SQL costs more than running a small statement); nil when
// the statement is to run unprepared.
func (t *tx) stmt(ctx context.Context, query string) *sql.Stmt {
	st := t.stmts.get(ctx, query)
	if st == nil {
		return nil
	}
	return t.tx.StmtContext(ctx, st)
}

func (t *tx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	var res sql.Result
	var err error
	if st := t.stmt(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = t.tx.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return rowsOrErr(st.QueryContext(ctx, args...))
	}
	return rowsOrErr(t.tx.QueryContext(ctx, query, args...))
}

// rowsOrErr keeps a nil *sql.Rows from becoming a non-nil projections.Rows.
func rowsOrErr(r *sql.Rows, err error) (projections.Rows, error) {
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (t *tx) QueryRow(ctx context.Context, query string, args ...any) projections.Row {
	if st := t.stmt(ctx, query); st != nil {
		return row{st.QueryRowContext(ctx, args...)}
	}
	return row{t.tx.QueryRowContext(ctx, query, args...)}
}

// maxParams stays under SQLite's default limit of 32766 bound parameters;
// maxRows keeps statements small enough to prepare quickly.
const (
	maxParams = 32000
	maxRows   = 1024
)

// Insert writes rows with multi-row INSERT ... VALUES statements whose row
// counts are powers of two, so that a few cached statements serve every
// batch size.
func (t *tx) Insert(ctx context.Context, b projections.Bulk, rows [][]any) error {
	cols := len(b.Columns)
	if cols == 0 {
		return fmt.Errorf("insert into %s: no columns", b.Table)
	}
	limit := min(maxRows, maxParams/cols)
	args := make([]any, 0, min(limit, len(rows))*cols)
	for start := 0; start < len(rows); {
		n := 1
		for n*2 <= min(limit, len(rows)-start) {
			n *= 2
		}
		part := rows[start : start+n]
		args = args[:0]
		for i, r := range part {
			if len(r) != cols {
				return fmt.Errorf("insert into %s: row %d has %d values for %d columns", b.Table, start+i, len(r), cols)
			}
			args = append(args, r...)
		}
		if _, err := t.Exec(ctx, insertSQL(b, n), args...); err != nil {
			return fmt.Errorf("insert into %s (rows %d..%d): %w", b.Table, start, start+n-1, err)
		}
		start += n
	}
	return nil
}

func insertSQL(b projections.Bulk, rows int) string {
	var sb strings.Builder
	tuple := "(" + strings.Repeat("?,", len(b.Columns)-1) + "?)"
	sb.Grow(64 + rows*(len(tuple)+1) + len(b.OnConflict))
	sb.WriteString("INSERT INTO ")
	sb.WriteString(b.Table)
	sb.WriteString(" (")
	sb.WriteString(strings.Join(b.Columns, ", "))
	sb.WriteString(") VALUES ")
	for i := range rows {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(tuple)
	}
	if b.OnConflict != "" {
		sb.WriteByte(' ')
		sb.WriteString(b.OnConflict)
	}
	return sb.String()
}

// stmtCache keeps a pool's prepared statements by SQL text: database/sql
// prepares a cached statement on each connection of the pool the first time
// it runs there and keeps it, so SQL is parsed once per connection instead
// of on every call. It is bounded: past maxCached distinct statements, new
// ones run unprepared. Lookups take no lock.
type stmtCache struct {
	db *sql.DB
	m  sync.Map // SQL text -> *sql.Stmt

	mu     sync.Mutex // serializes preparing and closing
	n      int        // statements in m
	closed bool
}

const maxCached = 512

// get returns the cached statement for query, preparing it if there is
// room; nil when the cache is full or closed, or the statement cannot be
// prepared outside a transaction (it names a table the transaction
// creates): the caller then runs it unprepared, which also reports any
// real error.
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	if c.closed || c.n >= maxCached {
		return nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.m.Store(query, st)
	c.n++
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.m.Range(func(k, st any) bool {
		st.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
	c.n = 0
}
