package wallet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/projections"
)

// The rows of a batch keep the values they share (an event's position and
// time, an account's name) boxed once: a catch-up writes millions of values
// through []any, and every boxing is an allocation.

var (
	walletsBulk = projections.Bulk{
		Table:   "wallets",
		Columns: []string{"name", "coin", "exponent", "permissions", "ip_allowlist", "confirmations", "locked", "position", "head", "head_time"},
		OnConflict: `ON CONFLICT (name) DO UPDATE SET coin = excluded.coin, exponent = excluded.exponent,
			permissions = excluded.permissions, ip_allowlist = excluded.ip_allowlist,
			confirmations = excluded.confirmations, locked = excluded.locked, position = excluded.position,
			head = excluded.head, head_time = excluded.head_time`,
	}
	accountsBulk = projections.Bulk{
		Table:   "wallet_accounts",
		Columns: []string{"wallet", "account", "id", "system", "available", "pending", "held", "position"},
		OnConflict: `ON CONFLICT (wallet, account) DO UPDATE SET available = excluded.available,
			pending = excluded.pending, held = excluded.held, position = excluded.position`,
	}
	holdsBulk = projections.Bulk{
		Table:   "wallet_holds",
		Columns: []string{"wallet", "id", "account", "amount", "reason", "expires_at", "status", "position"},
		OnConflict: `ON CONFLICT (wallet, id) DO UPDATE SET account = excluded.account, amount = excluded.amount,
			reason = excluded.reason, expires_at = excluded.expires_at, status = excluded.status,
			position = excluded.position`,
	}
	timesBulk = projections.Bulk{
		Table:   "wallet_times",
		Columns: []string{"wallet", "created", "position"},
	}
	timesUpsert = projections.Bulk{
		Table:      timesBulk.Table,
		Columns:    timesBulk.Columns,
		OnConflict: `ON CONFLICT (wallet, created) DO UPDATE SET position = excluded.position`,
	}
	entriesBulk = projections.Bulk{
		Table: "wallet_entries",
		Columns: []string{"account_id", "position", "revision", "created", "kind", "reference",
			"counterparty", "memo", "available", "pending", "held"},
	}
	transfersBulk = projections.Bulk{
		Table:   "wallet_transfers",
		Columns: []string{"wallet", "id", "position", "from_account", "to_account", "amount", "memo", "created"},
	}
	importsBulk = projections.Bulk{
		Table:   "wallet_imports",
		Columns: []string{"wallet", "id", "position", "account", "amount", "reason", "created"},
	}
)

type walletRow struct {
	name          string
	boxed         any // name, boxed once
	coin          string
	exponent      int
	permissions   string // JSON array
	ipAllowlist   string // JSON array
	confirmations int
	locked        bool
	position      uint64 // of the last change to the wallet itself
	head          uint64 // of the wallet's last event
	headTime      int64  // ledger time of the last event, Unix µs
	times         int    // index+1 of the wallet's last row in batch.times, 0: none yet
	stored        bool   // loaded from the database: wallet_times may have a row for headTime
}

func (w *walletRow) boxedName() any {
	if w.boxed == nil {
		w.boxed = w.name
	}
	return w.boxed
}

type accountRow struct {
	id       int64 // see accountID
	wallet   string
	name     string
	boxed    any // name, boxed once
	bal      Balance
	position uint64
	entries  []int32 // the account's entries in batch.entries, in position order
}

func (a *accountRow) boxedName() any {
	if a.boxed == nil {
		a.boxed = a.name
	}
	return a.boxed
}

type holdRow struct {
	account   string
	amount    int64
	reason    string
	expiresAt int64 // Unix µs, 0: never
	status    string
	position  uint64
}

// eventVals are the values of an event that several of its rows share.
type eventVals struct {
	position int64
	boxed    [3]any // position, revision, ledger time
	ref      any    // transfer, import or hold id
	memo     any
}

func newEventVals(position, revision uint64, created int64) *eventVals {
	return &eventVals{position: int64(position), boxed: [3]any{int64(position), int64(revision), created}}
}

// timeRow is a row of wallet_times: the last position of a wallet with a
// ledger time.
type timeRow struct {
	wallet  *walletRow
	created int64
	vals    *eventVals // of the wallet's last event with that time
	upsert  bool       // the row may exist
}

// entryRow is a row of wallet_entries (the account it belongs to keeps
// its index).
type entryRow struct {
	vals         *eventVals
	kind         any
	counterparty any
	after        Balance
}

// movementRow is a row of wallet_transfers or wallet_imports.
type movementRow struct {
	wallet   *walletRow
	id       string
	vals     *eventVals
	from, to any // imports have only to (the account)
	amount   int64
	memo     any
}

// compareMovements orders transfer and import rows by key: wallet, id,
// position.
func compareMovements(x, y movementRow) int {
	if c := strings.Compare(x.wallet.name, y.wallet.name); c != 0 {
		return c
	}
	if c := strings.Compare(x.id, y.id); c != 0 {
		return c
	}
	return cmp.Compare(x.vals.position, y.vals.position)
}

// write bulk-writes the batch: the touched wallets, accounts and holds once
// each (in a stable order: wallets and holds by key, accounts by id), then
// the appended rows, in key order so that the inserts fill each index page
// after page instead of all over it.
func (b *batch) write(ctx context.Context, tx projections.Tx) error {
	if err := b.writeWallets(ctx, tx); err != nil {
		return err
	}
	// Accounts in id order, and the entries account by account (each
	// account's entries are in position order: events come in order).
	accounts := make([]*accountRow, 0, len(b.accounts))
	for _, a := range b.accounts {
		accounts = append(accounts, a)
	}
	slices.SortFunc(accounts, func(x, y *accountRow) int { return cmp.Compare(x.id, y.id) })
	rows := make([][]any, len(accounts))
	flatAccounts := make([]any, 0, len(accounts)*len(accountsBulk.Columns))
	entries := make([][]any, 0, len(b.entries))
	flat := make([]any, 0, len(b.entries)*len(entriesBulk.Columns))
	for i, a := range accounts {
		id := any(a.id)
		flatAccounts = append(flatAccounts, a.wallet, a.boxedName(), id, boolInt(ledger.IsSystemAccount(a.name)),
			a.bal.Available, a.bal.Pending, a.bal.Held, int64(a.position))
		rows[i] = flatAccounts[len(flatAccounts)-len(accountsBulk.Columns):]
		for _, j := range a.entries {
			e := &b.entries[j]
			v := e.vals
			flat = append(flat, id, v.boxed[0], v.boxed[1], v.boxed[2], e.kind, v.ref,
				e.counterparty, v.memo, e.after.Available, e.after.Pending, e.after.Held)
			entries = append(entries, flat[len(flat)-len(entriesBulk.Columns):])
		}
	}
	if err := tx.Insert(ctx, accountsBulk, rows); err != nil {
		return fmt.Errorf("wallet projection: write %d accounts: %w", len(rows), err)
	}
	if err := b.writeHolds(ctx, tx); err != nil {
		return err
	}
	if err := b.writeTimes(ctx, tx); err != nil {
		return err
	}
	if err := tx.Insert(ctx, entriesBulk, entries); err != nil {
		return fmt.Errorf("wallet projection: write %d entries: %w", len(entries), err)
	}
	return b.writeMovements(ctx, tx)
}

func (b *batch) writeWallets(ctx context.Context, tx projections.Tx) error {
	if len(b.wallets) == 0 {
		return nil
	}
	names := make([]string, 0, len(b.wallets))
	for n := range b.wallets {
		names = append(names, n)
	}
	slices.Sort(names)
	rows := make([][]any, len(names))
	for i, n := range names {
		w := b.wallets[n]
		rows[i] = []any{n, w.coin, int64(w.exponent), w.permissions, w.ipAllowlist, int64(w.confirmations), boolInt(w.locked),
			int64(w.position), int64(w.head), w.headTime}
	}
	if err := tx.Insert(ctx, walletsBulk, rows); err != nil {
		return fmt.Errorf("wallet projection: write %d wallets: %w", len(rows), err)
	}
	return nil
}

func (b *batch) writeHolds(ctx context.Context, tx projections.Tx) error {
	if len(b.holds) == 0 {
		return nil
	}
	keys := make([]key, 0, len(b.holds))
	for k := range b.holds {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareKeys)
	rows := make([][]any, len(keys))
	for i, k := range keys {
		h := b.holds[k]
		rows[i] = []any{k.wallet, k.name, h.account, h.amount, h.reason, h.expiresAt, h.status, int64(h.position)}
	}
	if err := tx.Insert(ctx, holdsBulk, rows); err != nil {
		return fmt.Errorf("wallet projection: write %d holds: %w", len(rows), err)
	}
	return nil
}

func (b *batch) writeTimes(ctx context.Context, tx projections.Tx) error {
	var times, updated [][]any
	flat := make([]any, 0, len(b.times)*len(timesBulk.Columns))
	for _, t := range b.times {
		flat = append(flat, t.wallet.boxedName(), t.vals.boxed[2], t.vals.boxed[0])
		row := flat[len(flat)-len(timesBulk.Columns):]
		if t.upsert {
			updated = append(updated, row)
		} else {
			times = append(times, row)
		}
	}
	if err := tx.Insert(ctx, timesUpsert, updated); err != nil {
		return fmt.Errorf("wallet projection: write %d times: %w", len(updated), err)
	}
	if err := tx.Insert(ctx, timesBulk, times); err != nil {
		return fmt.Errorf("wallet projection: write %d times: %w", len(times), err)
	}
	return nil
}

func (b *batch) writeMovements(ctx context.Context, tx projections.Tx) error {
	slices.SortFunc(b.transfers, compareMovements)
	slices.SortFunc(b.imports, compareMovements)
	rows := make([][]any, len(b.transfers))
	flat := make([]any, 0, len(b.transfers)*len(transfersBulk.Columns))
	for i, t := range b.transfers {
		v := t.vals
		flat = append(flat, t.wallet.boxedName(), v.ref, v.boxed[0], t.from, t.to, t.amount, t.memo, v.boxed[2])
		rows[i] = flat[len(flat)-len(transfersBulk.Columns):]
	}
	if err := tx.Insert(ctx, transfersBulk, rows); err != nil {
		return fmt.Errorf("wallet projection: write %d transfers: %w", len(rows), err)
	}
	rows = make([][]any, len(b.imports))
	for i, im := range b.imports {
		v := im.vals
		rows[i] = []any{im.wallet.boxedName(), v.ref, v.boxed[0], im.to, im.amount, im.memo, v.boxed[2]}
	}
	if err := tx.Insert(ctx, importsBulk, rows); err != nil {
		return fmt.Errorf("wallet projection: write %d imports: %w", len(rows), err)
	}
	return nil
}
