package wallet

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/projections"
)

// loadChunk bounds the ids of one IN (...) list.
const loadChunk = 500

// inQuery runs query, which ends in "IN (", once per chunk of names, with
// args fixed..., names...; scan reads each row.
func inQuery(ctx context.Context, tx projections.Tx, query string, fixed []any, names []string, scan func(projections.Rows) error) error {
	for start := 0; start < len(names); start += loadChunk {
		part := names[start:min(start+loadChunk, len(names))]
		// The list is padded to a power of two with the last name again
		// (IN ignores the repeat), so a few SQL texts serve every batch
		// size and each is prepared once (see projections/sqlite).
		size := 1
		for size < len(part) {
			size *= 2
		}
		args := make([]any, 0, len(fixed)+size)
		args = append(args, fixed...)
		for _, n := range part {
			args = append(args, n)
		}
		for range size - len(part) {
			args = append(args, part[len(part)-1])
		}
		rows, err := tx.Query(ctx, query+strings.Repeat("?,", size-1)+"?)", args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
	}
	return nil
}

// byWallet groups keys by wallet, names sorted (deterministic queries).
func byWallet(keys map[key]struct{}) map[string][]string {
	out := map[string][]string{}
	for k := range keys {
		out[k.wallet] = append(out[k.wallet], k.name)
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

func (b *batch) loadAccounts(ctx context.Context, tx projections.Tx, need map[key]struct{}) error {
	for wallet, names := range byWallet(need) {
		err := inQuery(ctx, tx, `SELECT account, id, available, pending, held, position FROM wallet_accounts WHERE wallet = ? AND account IN (`,
			[]any{wallet}, names, func(rows projections.Rows) error {
				var name string
				var a accountRow
				var pos int64
				if err := rows.Scan(&name, &a.id, &a.bal.Available, &a.bal.Pending, &a.bal.Held, &pos); err != nil {
					return err
				}
				a.position, a.wallet, a.name = uint64(pos), wallet, name
				b.accounts[key{wallet, name}] = &a
				return nil
			})
		if err != nil {
			return fmt.Errorf("wallet projection: load %d accounts of %s: %w", len(names), wallet, err)
		}
	}
	return nil
}

func (b *batch) loadHolds(ctx context.Context, tx projections.Tx, need map[key]struct{}) error {
	for wallet, ids := range byWallet(need) {
		err := inQuery(ctx, tx, `SELECT id, account, amount, reason, expires_at, status, position FROM wallet_holds WHERE wallet = ? AND id IN (`,
			[]any{wallet}, ids, func(rows projections.Rows) error {
				var id string
				var h holdRow
				var pos int64
				if err := rows.Scan(&id, &h.account, &h.amount, &h.reason, &h.expiresAt, &h.status, &pos); err != nil {
					return err
				}
				h.position = uint64(pos)
				b.holds[key{wallet, id}] = &h
				return nil
			})
		if err != nil {
			return fmt.Errorf("wallet projection: load %d holds of %s: %w", len(ids), wallet, err)
		}
	}
	return nil
}

func (b *batch) loadWallets(ctx context.Context, tx projections.Tx, need map[string]struct{}) error {
	if len(need) == 0 {
		return nil
	}
	names := make([]string, 0, len(need))
	for n := range need {
		names = append(names, n)
	}
	slices.Sort(names)
	err := inQuery(ctx, tx, `SELECT name, coin, exponent, permissions, ip_allowlist, confirmations, locked, position, head, head_time
		FROM wallets WHERE name IN (`, nil, names, func(rows projections.Rows) error {
		var name string
		var w walletRow
		var exp, confirms, locked, pos, head int64
		if err := rows.Scan(&name, &w.coin, &exp, &w.permissions, &w.ipAllowlist, &confirms, &locked, &pos, &head, &w.headTime); err != nil {
			return err
		}
		w.exponent, w.confirmations, w.locked = int(exp), int(confirms), locked != 0
		w.name, w.position, w.head, w.stored = name, uint64(pos), uint64(head), true
		b.wallets[name] = &w
		return nil
	})
	if err != nil {
		return fmt.Errorf("wallet projection: load %d wallets: %w", len(names), err)
	}
	return nil
}
