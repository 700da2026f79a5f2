// Package balance is the simplest useful projection: credits folded into
// per-account balances. The conformance suite and the benchmarks use it;
// it imports no test code, so the binary can run it too.
package balance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// CreditedType is the event type the example Balances projection folds.
const CreditedType = "test.credited"

// Credited is the data of a test.credited event.
type Credited struct {
	Account string `json:"account"`
	Amount  int64  `json:"amount"`
}

// Credit returns a test.credited event.
func Credit(account string, amount int64) eventstore.EventData {
	// Hand-built JSON: the benchmarks make millions of these.
	data := make([]byte, 0, 48+len(account))
	data = append(data, `{"account":`...)
	data = strconv.AppendQuote(data, account)
	data = append(data, `,"amount":`...)
	data = strconv.AppendInt(data, amount, 10)
	data = append(data, '}')
	return eventstore.EventData{Type: CreditedType, Data: data}
}

// Balances is the example projection: it folds test.credited events into
// balances(account, amount, position), writing each touched account once per
// batch. PerEvent makes it write once per event instead, the naive baseline
// the benchmarks compare against.
type Balances struct {
	PerEvent bool
}

var _ projections.Projection = Balances{}

// Name is "balances".
func (Balances) Name() string { return "balances" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (Balances) Version() int { return 1 }

// Migrations creates the balances table.
func (Balances) Migrations(d projections.Dialect) []string {
	return []string{`CREATE TABLE balances (
		account  TEXT PRIMARY KEY,
		amount   BIGINT NOT NULL,
		position BIGINT NOT NULL
	)` + d.UpdatedInPlace()}
}

var balancesUpsert = projections.Bulk{
	Table:      "balances",
	Columns:    []string{"account", "amount", "position"},
	OnConflict: "ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount, position = excluded.position",
}

// Apply folds the batch per account and upserts each touched account once,
// in account order (a stable lock order).
func (b Balances) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	type delta struct {
		amount   int64
		position uint64
	}
	touched := make(map[string]delta)
	for _, e := range events {
		if e.Type != CreditedType {
			continue
		}
		var c Credited
		if err := json.Unmarshal(e.Data, &c); err != nil {
			return fmt.Errorf("balances: decode %s: %w", e, err)
		}
		if b.PerEvent {
			if err := tx.Insert(ctx, balancesUpsert, [][]any{{c.Account, c.Amount, int64(e.Position)}}); err != nil {
				return fmt.Errorf("balances: %s: %w", e, err)
			}
			continue
		}
		d := touched[c.Account]
		d.amount += c.Amount
		d.position = e.Position
		touched[c.Account] = d
	}
	if len(touched) == 0 {
		return nil
	}
	accounts := make([]string, 0, len(touched))
	for a := range touched {
		accounts = append(accounts, a)
	}
	slices.Sort(accounts)
	rows := make([][]any, len(accounts))
	for i, a := range accounts {
		d := touched[a]
		rows[i] = []any{a, d.amount, int64(d.position)}
	}
	if err := tx.Insert(ctx, balancesUpsert, rows); err != nil {
		return fmt.Errorf("balances: upsert %d accounts: %w", len(rows), err)
	}
	return nil
}

// Balance reads an account's balance; an unknown account has 0.
func Balance(ctx context.Context, db projections.DB, account string) (int64, error) {
	var amount int64
	err := db.QueryRow(ctx, `SELECT amount FROM balances WHERE account = ?`, account).Scan(&amount)
	if errors.Is(err, projections.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("balance of %s: %w", account, err)
	}
	return amount, nil
}
