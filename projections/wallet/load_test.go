package wallet_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// recordingTx is a real transaction that records the SQL of its queries.
type recordingTx struct {
	projections.Tx
	queries []string
}

func (r *recordingTx) Query(ctx context.Context, query string, args ...any) (projections.Rows, error) {
	r.queries = append(r.queries, query)
	return r.Tx.Query(ctx, query, args...)
}

// TestInQueryPadsListsToPowersOfTwo checks that an IN (...) list is padded
// to a power of two (so a few statement texts serve every batch size and
// each is prepared once) and that the padding returns no row twice.
func TestInQueryPadsListsToPowersOfTwo(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, open dbtest.NewDB) {
		ctx := context.Background()
		db := open(t)
		if err := db.Migrate(ctx, "in_query_test", []string{`CREATE TABLE in_query_test (name TEXT PRIMARY KEY)`}); err != nil {
			t.Fatal(err)
		}
		var all []string
		for i := range 600 {
			all = append(all, fmt.Sprintf("n%03d", i))
		}
		err := db.Update(ctx, func(tx projections.Tx) error {
			rows := make([][]any, len(all))
			for i, n := range all {
				rows[i] = []any{n}
			}
			return tx.Insert(ctx, projections.Bulk{Table: "in_query_test", Columns: []string{"name"}}, rows)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			names      int
			placeholds []int // per query
		}{
			{1, []int{1}},
			{2, []int{2}},
			{3, []int{4}},
			{5, []int{8}},
			{500, []int{512}},
			{503, []int{512, 4}},
		} {
			names := all[:tc.names]
			var got []string
			var queries []string
			err := db.Update(ctx, func(tx projections.Tx) error {
				rec := &recordingTx{Tx: tx}
				err := wallet.InQuery(ctx, rec, `SELECT name FROM in_query_test WHERE name IN (`, nil, names, func(rows projections.Rows) error {
					var n string
					if err := rows.Scan(&n); err != nil {
						return err
					}
					got = append(got, n)
					return nil
				})
				queries = rec.queries
				return err
			})
			if err != nil {
				t.Fatalf("%d names: %v", tc.names, err)
			}
			var placeholds []int
			for _, q := range queries {
				placeholds = append(placeholds, strings.Count(q, "?"))
			}
			if !slices.Equal(placeholds, tc.placeholds) {
				t.Errorf("%d names: queries with %v placeholders, want %v", tc.names, placeholds, tc.placeholds)
			}
			slices.Sort(got)
			if !slices.Equal(got, names) {
				t.Errorf("%d names: got %d rows (%v...), want each name once", tc.names, len(got), got[:min(len(got), 5)])
			}
		}
	})
}
