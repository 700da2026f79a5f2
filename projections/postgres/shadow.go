package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinledger/coinledger/projections"
)

var _ projections.Shadowing = (*DB)(nil)

// OpenShadow implements projections.Shadowing: the shadow is a schema of
// its own in the same database (named after db's current schema and name),
// reached through a small pool whose search_path is that schema, so the
// projection's SQL runs there unchanged. A schema an interrupted rebuild
// left is dropped first.
func (db *DB) OpenShadow(ctx context.Context, name string) (projections.Shadow, error) {
	var live string
	if err := db.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		return nil, fmt.Errorf("open shadow of %s: %w", name, transient(err))
	}
	schema := shadowSchema(live, name)
	id := pgx.Identifier{schema}.Sanitize()
	for _, q := range []string{`DROP SCHEMA IF EXISTS ` + id + ` CASCADE`, `CREATE SCHEMA ` + id} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("open shadow %s: %w", schema, transient(err))
		}
	}
	cfg := db.pool.Config()
	params := map[string]string{}
	for k, v := range cfg.ConnConfig.RuntimeParams {
		params[k] = v
	}
	params["search_path"] = schema
	cfg.ConnConfig.RuntimeParams = params
	cfg.MaxConns, cfg.MinConns = 4, 0
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open shadow %s: %w", schema, transient(err))
	}
	return &shadow{DB: &DB{pool: pool}, live: db, schema: schema, liveSchema: live}, nil
}

// shadowSchema names the shadow schema of projection name beside schema
// live: within Postgres's 63 bytes, the name's other characters replaced.
func shadowSchema(live, name string) string {
	s := strings.Map(func(r rune) rune {
		if r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r - 'A' + 'a'
		}
		return '_'
	}, live+"_rebuild_"+name)
	if len(s) > 63 {
		h := fnv.New32a()
		h.Write([]byte(live + "\x00" + name))
		s = fmt.Sprintf("%s_%08x", s[:54], h.Sum32())
	}
	return s
}

// shadow is a rebuild's schema; see projections.Shadow.
type shadow struct {
	*DB
	live               *DB
	schema, liveSchema string
}

// Swap implements projections.Shadow: in one live transaction each shadow
// table (with its indexes and sequences) moves into the live schema with
// ALTER TABLE ... SET SCHEMA after the live table of that name is dropped;
// no row is copied. Readers of a swapped table wait for the commit (the
// statements take an exclusive lock) and then read the new table.
func (s *shadow) Swap(ctx context.Context, fn func(projections.Tx) error) error {
	return s.live.Update(ctx, func(t projections.Tx) error {
		rows, err := t.Query(ctx, `SELECT table_name FROM information_schema.tables
			WHERE table_schema = ? AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'`, s.schema)
		if err != nil {
			return fmt.Errorf("swap %s: list tables: %w", s.schema, err)
		}
		var tables []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return fmt.Errorf("swap %s: list tables: %w", s.schema, err)
			}
			tables = append(tables, name)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("swap %s: list tables: %w", s.schema, err)
		}
		live := pgx.Identifier{s.liveSchema}.Sanitize()
		for _, name := range tables {
			if _, err := t.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{s.liveSchema, name}.Sanitize()+` CASCADE`); err != nil {
				return fmt.Errorf("swap %s: drop live %s: %w", s.schema, name, err)
			}
			if _, err := t.Exec(ctx, `ALTER TABLE `+pgx.Identifier{s.schema, name}.Sanitize()+` SET SCHEMA `+live); err != nil {
				return fmt.Errorf("swap %s: move %s: %w", s.schema, name, err)
			}
		}
		return fn(t)
	})
}

// Drop implements projections.Shadow: it closes the shadow's pool and
// drops its schema.
func (s *shadow) Drop(ctx context.Context) error {
	s.DB.Close()
	if _, err := s.live.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{s.schema}.Sanitize()+` CASCADE`); err != nil {
		return fmt.Errorf("drop shadow %s: %w", s.schema, transient(err))
	}
	return nil
}
