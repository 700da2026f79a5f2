package audit

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/wallet"
)

// WalletDrift returns the probe that compares the wallet read model in db,
// which has applied the log up to position, with the fold: every account's
// balances (wallet_accounts) and every entry's balances after its event
// (wallet_entries), naming the row that differs. The verifier must keep
// entries (Options.Entries).
func WalletDrift(ctx context.Context, db projections.DB, position uint64) Probe {
	return driftProbe(ctx, db, position, "wallet", walletDrift)
}

// driftProbe is the probe at position that runs check, whose drift
// findings (and error) name the read model.
//
// The read model may be a running server's, which goes on applying the log
// while the pass runs: the probe compares only when the model's checkpoint
// is still at position before and after it reads the rows (every
// transaction that changes rows moves the checkpoint), and says so in the
// report's notes either way.
func driftProbe(ctx context.Context, db projections.DB, position uint64, model string,
	check func(context.Context, projections.DB, *Verifier, func(string, ...any)) error) Probe {
	return Probe{At: position, Run: func(v *Verifier) []Finding {
		var out []Finding
		drift := func(format string, args ...any) {
			out = append(out, Finding{Code: CodeReadModelDrift, Position: position, Message: fmt.Sprintf(format, args...)})
		}
		moved := func() bool {
			at, err := projections.StoredCheckpoint(ctx, db, model)
			if err == nil && at != position {
				v.Note("%s read model: moved from position %d to %d while the log was checked: not compared", model, position, at)
				return true
			}
			return false
		}
		if moved() {
			return nil
		}
		if err := check(ctx, db, v, drift); err != nil {
			drift("%s read model: %v", model, err)
		}
		if moved() {
			return nil
		}
		v.Note("%s read model: compared at position %d", model, position)
		return out
	}}
}

func walletDrift(ctx context.Context, db projections.DB, v *Verifier, drift func(string, ...any)) error {
	books := v.Tally().Books().Wallets()
	rows, err := wallet.ListWallets(ctx, db)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, w := range rows {
		seen[w.Name] = true
		book := books[w.Name]
		if book == nil || book.Coin == "" {
			drift("wallets %s: no such wallet in the log", w.Name)
			continue
		}
		if w.Coin != book.Coin {
			drift("wallets %s: coin %s, the log says %s", w.Name, w.Coin, book.Coin)
		}
		users, err := wallet.ListAccounts(ctx, db, w.Name)
		if err != nil {
			return err
		}
		system, err := wallet.ListSystemAccounts(ctx, db, w.Name)
		if err != nil {
			return err
		}
		names := map[string]bool{}
		for _, a := range append(users, system...) {
			names[a.Name] = true
			want, ok := book.Accounts[a.Name]
			got := ledger.Balance(a.Balance)
			switch {
			case !ok:
				drift("wallet_accounts %s/%s: no such account in the log", w.Name, a.Name)
			case got != *want:
				drift("wallet_accounts %s/%s: available %d, pending %d, held %d; the log folds to %d, %d, %d",
					w.Name, a.Name, got.Available, got.Pending, got.Held, want.Available, want.Pending, want.Held)
			}
		}
		for _, a := range slices.Sorted(maps.Keys(book.Accounts)) {
			if !names[a] {
				drift("wallet_accounts %s/%s: missing (the log has the account)", w.Name, a)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(books)) {
		if !seen[name] && books[name].Coin != "" {
			drift("wallets %s: missing (the log opens the wallet)", name)
		}
	}
	return entryDrift(ctx, db, v, drift)
}

// entryDrift compares every entry row with the entries the fold kept.
func entryDrift(ctx context.Context, db projections.DB, v *Verifier, drift func(string, ...any)) error {
	entries := v.Entries()
	matched := map[string]int{}
	err := wallet.EachEntry(ctx, db, func(w, a string, pos uint64, after wallet.Balance) error {
		k := LiabilityAccount(w, a)
		list := entries[k]
		i := sort.Search(len(list), func(i int) bool { return list[i].Position >= pos })
		switch {
		case i == len(list) || list[i].Position != pos:
			drift("wallet_entries %s at position %d: the log has no such entry", k, pos)
		case list[i].Balance != ledger.Balance(after):
			b := list[i].Balance
			drift("wallet_entries %s at position %d: after available %d, pending %d, held %d; the log folds to %d, %d, %d",
				k, pos, after.Available, after.Pending, after.Held, b.Available, b.Pending, b.Held)
			matched[k]++
		default:
			matched[k]++
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		if n := len(entries[k]); matched[k] != n {
			drift("wallet_entries %s: %d rows, the log makes %d entries", k, matched[k], n)
		}
	}
	return nil
}

// CustodyDrift returns the probe that compares the deposits of the custody
// read model in db, which has applied the log up to position, with the
// fold: each row's account, amount and status, and their number per
// wallet.
func CustodyDrift(ctx context.Context, db projections.DB, position uint64) Probe {
	return driftProbe(ctx, db, position, "custody", depositDrift)
}

func depositDrift(ctx context.Context, db projections.DB, v *Verifier, drift func(string, ...any)) error {
	books := v.Tally().Books().Wallets()
	for _, name := range slices.Sorted(maps.Keys(books)) {
		s := v.State(name)
		rows, err := custody.Deposits(ctx, db, name, custody.DepositFilter{Limit: math.MaxInt32})
		if err != nil {
			return err
		}
		for _, d := range rows {
			want, ok := s.Deposit(d.TxID, d.Vout)
			switch {
			case !ok:
				drift("custody_deposits %s/%s: no such deposit in the log", name, d.ID)
			case d.Account != want.Account || d.Amount != want.Amount || d.Status != want.Status:
				drift("custody_deposits %s/%s: account %s, amount %d, status %s; the log says %s, %d, %s",
					name, d.ID, d.Account, d.Amount, d.Status, want.Account, want.Amount, want.Status)
			}
		}
		if n := v.Deposits(name); len(rows) != n {
			drift("custody_deposits %s: %d rows, the log has %d deposits", name, len(rows), n)
		}
	}
	return nil
}
