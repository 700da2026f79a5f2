package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/postgres"
)

// freshSchema returns the Postgres URL base with its search_path set to a
// new schema, prefix_RANDOM (created by whoever opens the URL first), and
// drop, which removes that schema and everything in it.
func freshSchema(base, prefix string) (string, func(context.Context) error, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, errors.New("cannot parse the Postgres URL")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := prefix + "_" + hex.EncodeToString(b[:])
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	drop := func(ctx context.Context) error {
		db, err := postgres.Open(ctx, base)
		if err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		defer db.Close()
		return db.Update(ctx, func(tx projections.Tx) error {
			_, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			return err
		})
	}
	return u.String(), drop, nil
}
