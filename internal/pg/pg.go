// Package pg is what the packages that talk to PostgreSQL through pgx
// (projections/postgres, eventstore/postgres) share: telling a server that
// cannot be reached from other failures, and creating the schema a URL
// names.
package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Unreachable reports whether err is a failure to reach the server that
// may pass: the connection was refused or lost, the server is shutting
// down or starting, or it has too many connections.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || // connection exception
			strings.HasPrefix(pe.Code, "57P") || // admin shutdown, crash shutdown, cannot connect now
			strings.HasPrefix(pe.Code, "53") // insufficient resources (too many connections)
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	return errors.As(err, &ne) || errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) || strings.Contains(err.Error(), "conn closed")
}

// CreateSchema creates the first schema of a search_path given in cfg's
// runtime parameters (from the URL) if it does not exist, so that several
// deployments (or test runs) can share one database, each in its own
// schema. It connects without the search_path for that.
func CreateSchema(ctx context.Context, cfg *pgx.ConnConfig) error {
	path := cfg.RuntimeParams["search_path"]
	name := strings.TrimSpace(strings.Split(path, ",")[0])
	if name == "" || name == "public" || strings.HasPrefix(name, "$") {
		return nil
	}
	cc := cfg.Copy()
	delete(cc.RuntimeParams, "search_path")
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{name}.Sanitize()); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // created concurrently
			return nil
		}
		return fmt.Errorf("create schema %s: %w", name, err)
	}
	return nil
}
