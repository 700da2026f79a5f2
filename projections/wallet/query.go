package wallet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/coinledger/coinledger/projections"
)

// Balance is an account's three balances in minor units of the wallet's
// coin.
type Balance struct {
	Available int64
	Pending   int64
	Held      int64
}

// Total returns Available + Pending + Held. The ledger keeps it within
// int64 for every account.
func (b Balance) Total() int64 { return b.Available + b.Pending + b.Held }

// Wallet is a wallet's description and lock state.
type Wallet struct {
	Name          string
	Coin          string
	Exponent      int
	Permissions   []string
	IPAllowlist   []string // addresses and CIDR prefixes, normalised; empty allows all
	Confirmations int
	Locked        bool
	Position      uint64 // of the last event that changed the wallet itself
	Head          uint64 // of the wallet's newest event the read model has applied
}

// Account is an account with its balances. System accounts (names starting
// with '@': the other side of imports, deposits and fees) have System set
// and may have negative balances.
type Account struct {
	Wallet   string
	Name     string
	System   bool
	Balance  Balance
	Position uint64 // of the last event that changed the account
}

// Entry is one event's effect on one account.
type Entry struct {
	Position uint64    // global position of the event
	Revision uint64    // its revision in the wallet stream
	Time     time.Time // ledger time (see the package doc), UTC
	// Kind is one of the Kind constants, or for a movement this package
	// does not name, the event type without its "ledger." prefix.
	Kind string
	// Reference is the transfer, import or hold id.
	Reference string
	// Counterparty is the other account of a movement between two accounts
	// (a transfer; an import's user account and @import); empty for holds.
	Counterparty string
	// Memo is the transfer's memo or the import's or hold's reason.
	Memo  string
	Delta Balance // change of each bucket
	After Balance // the account's balances after the event
}

// Transfer is a FundsTransferred event.
type Transfer struct {
	ID       string
	Wallet   string
	From     string
	To       string
	Amount   int64
	Memo     string
	Position uint64
	Time     time.Time
}

// Import is a BalanceImported event: an opening balance credited to Account
// from the @import system account.
type Import struct {
	ID       string
	Wallet   string
	Account  string
	Amount   int64
	Reason   string
	Position uint64
	Time     time.Time
}

// Hold is the latest state of a hold.
type Hold struct {
	ID        string
	Wallet    string
	Account   string
	Amount    int64
	Reason    string    // given when the hold was placed
	ExpiresAt time.Time // zero: never expires (microsecond precision)
	Status    string    // HoldActive, HoldReleased or HoldExpired
	Position  uint64    // of the event that last changed the hold
}

// Entries page sizes.
const (
	DefaultEntriesLimit = 100
	MaxEntriesLimit     = 1000
)

const walletColumns = `name, coin, exponent, permissions, ip_allowlist, confirmations, locked, position, head`

func scanWallet(r projections.Row) (Wallet, error) {
	var w Wallet
	var exp, confirms, locked, pos, head int64
	var perms, ips string
	if err := r.Scan(&w.Name, &w.Coin, &exp, &perms, &ips, &confirms, &locked, &pos, &head); err != nil {
		return Wallet{}, err
	}
	w.Exponent, w.Confirmations, w.Locked = int(exp), int(confirms), locked != 0
	w.Position, w.Head = uint64(pos), uint64(head)
	var err error
	if w.Permissions, err = parseList(perms); err != nil {
		return Wallet{}, err
	}
	if w.IPAllowlist, err = parseList(ips); err != nil {
		return Wallet{}, err
	}
	return w, nil
}

func parseList(s string) ([]string, error) {
	out := []string{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("bad list %q: %w", s, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// notFound turns ErrNoRows into ErrNotFound and wraps the error with op.
func notFound(op string, err error) error {
	if errors.Is(err, projections.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// GetWallet returns a wallet.
func GetWallet(ctx context.Context, db projections.DB, name string) (Wallet, error) {
	w, err := scanWallet(db.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE name = ?`, name))
	if err != nil {
		return Wallet{}, notFound("get wallet "+name, err)
	}
	return w, nil
}

// ListWallets returns every wallet, by name (byte order).
func ListWallets(ctx context.Context, db projections.DB) ([]Wallet, error) {
	rows, err := db.Query(ctx, `SELECT `+walletColumns+` FROM wallets ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list wallets: %w", err)
	}
	defer rows.Close()
	out := []Wallet{}
	for rows.Next() {
		w, err := scanWallet(rows)
		if err != nil {
			return nil, fmt.Errorf("list wallets: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list wallets: %w", err)
	}
	// Byte order on every database, whatever its collation.
	slices.SortStableFunc(out, func(a, b Wallet) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

const accountColumns = `wallet, account, system, available, pending, held, position`

func scanAccount(r projections.Row) (Account, error) {
	var a Account
	var system, pos int64
	if err := r.Scan(&a.Wallet, &a.Name, &system, &a.Balance.Available, &a.Balance.Pending, &a.Balance.Held, &pos); err != nil {
		return Account{}, err
	}
	a.System, a.Position = system != 0, uint64(pos)
	return a, nil
}

// ListAccounts returns a wallet's user accounts, by name (byte order);
// ErrNotFound when the wallet does not exist.
func ListAccounts(ctx context.Context, db projections.DB, wallet string) ([]Account, error) {
	return listAccounts(ctx, db, wallet, false)
}

// ListSystemAccounts returns a wallet's system accounts ('@' names), by
// name (byte order); ErrNotFound when the wallet does not exist.
func ListSystemAccounts(ctx context.Context, db projections.DB, wallet string) ([]Account, error) {
	return listAccounts(ctx, db, wallet, true)
}

func listAccounts(ctx context.Context, db projections.DB, wallet string, system bool) ([]Account, error) {
	op := "list accounts of " + wallet
	rows, err := db.Query(ctx, `SELECT `+accountColumns+` FROM wallet_accounts WHERE wallet = ? AND system = ? ORDER BY account`,
		wallet, boolInt(system))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	out := []Account{}
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, a)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	slices.SortStableFunc(out, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	if len(out) == 0 {
		if err := walletExists(ctx, db, wallet); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return out, nil
}

func walletExists(ctx context.Context, db projections.DB, wallet string) error {
	var n int64
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM wallets WHERE name = ?`, wallet).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func accountExists(ctx context.Context, db projections.DB, wallet, account string) error {
	var n int64
	if err := db.QueryRow(ctx, `SELECT COUNT(*) FROM wallet_accounts WHERE wallet = ? AND account = ?`, wallet, account).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// GetAccount returns an account, user or system.
func GetAccount(ctx context.Context, db projections.DB, wallet, account string) (Account, error) {
	a, err := scanAccount(db.QueryRow(ctx, `SELECT `+accountColumns+` FROM wallet_accounts WHERE wallet = ? AND account = ?`, wallet, account))
	if err != nil {
		return Account{}, notFound("get account "+wallet+"/"+account, err)
	}
	return a, nil
}

// Entries returns up to limit entries of an account, newest first, with
// positions below before (before 0: from the newest). Pass the Position of
// the last entry of a page as before to get the next (older) page. A limit
// of 0 or less means DefaultEntriesLimit; more than MaxEntriesLimit is cut
// to it. ErrNotFound when the account does not exist; an account without
// entries has an empty page.
func Entries(ctx context.Context, db projections.DB, wallet, account string, before uint64, limit int) ([]Entry, error) {
	op := fmt.Sprintf("entries of %s/%s before %d", wallet, account, before)
	if limit <= 0 {
		limit = DefaultEntriesLimit
	}
	limit = min(limit, MaxEntriesLimit)
	b := int64(math.MaxInt64)
	if before != 0 && before <= math.MaxInt64 {
		b = int64(before)
	}
	// Rows keep the balances after each entry; an entry's change is the
	// difference to the entry before it, so one row more is read.
	rows, err := db.Query(ctx, `SELECT position, revision, created, kind, reference, counterparty, memo, available, pending, held
		FROM wallet_entries WHERE account_id = (`+accountIDQuery+`) AND position < ?
		ORDER BY position DESC LIMIT ?`, wallet, account, b, int64(limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	out := make([]Entry, 0, min(limit+1, 64))
	for rows.Next() {
		var e Entry
		var pos, rev, created int64
		if err := rows.Scan(&pos, &rev, &created, &e.Kind, &e.Reference, &e.Counterparty, &e.Memo,
			&e.After.Available, &e.After.Pending, &e.After.Held); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		e.Position, e.Revision, e.Time = uint64(pos), uint64(rev), time.UnixMicro(created).UTC()
		out = append(out, e)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for i := range out {
		var prev Balance // the opening balance, before the first entry
		if i+1 < len(out) {
			prev = out[i+1].After
		}
		out[i].Delta = Balance{
			Available: out[i].After.Available - prev.Available,
			Pending:   out[i].After.Pending - prev.Pending,
			Held:      out[i].After.Held - prev.Held,
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	if len(out) == 0 {
		if err := accountExists(ctx, db, wallet, account); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	return out, nil
}

// accountIDQuery finds the id that keys an account's entries; args wallet,
// account.
const accountIDQuery = `SELECT id FROM wallet_accounts WHERE wallet = ? AND account = ?`

// BalanceAtPosition returns an account's balance as of a global position:
// the balance after its last entry at or before position, and that entry's
// position. Before its first entry an account has the opening balance zero
// (and position 0). ErrNotFound only when the account does not exist at
// all.
func BalanceAtPosition(ctx context.Context, db projections.DB, wallet, account string, position uint64) (Balance, uint64, error) {
	p := int64(math.MaxInt64)
	if position <= math.MaxInt64 {
		p = int64(position)
	}
	return balanceAt(ctx, db, fmt.Sprintf("balance of %s/%s at position %d", wallet, account, position),
		`SELECT available, pending, held, position FROM wallet_entries
		WHERE account_id = (`+accountIDQuery+`) AND position <= ? ORDER BY position DESC LIMIT 1`,
		wallet, account, wallet, account, p)
}

// BalanceAtTime is BalanceAtPosition by ledger time: the balance after the
// account's last entry at or before the wallet's last event with a time at
// or before t. Ledger time is the event's store time, except that it never
// decreases along a wallet's history (should the store's clock step back,
// later events keep the wallet's latest time); it has microsecond precision.
func BalanceAtTime(ctx context.Context, db projections.DB, wallet, account string, t time.Time) (Balance, uint64, error) {
	return balanceAt(ctx, db, fmt.Sprintf("balance of %s/%s at %s", wallet, account, t.UTC().Format(time.RFC3339Nano)),
		`SELECT available, pending, held, position FROM wallet_entries
		WHERE account_id = (`+accountIDQuery+`) AND position <= (
			SELECT position FROM wallet_times WHERE wallet = ? AND created <= ? ORDER BY created DESC LIMIT 1)
		ORDER BY position DESC LIMIT 1`,
		wallet, account, wallet, account, wallet, t.UnixMicro())
}

func balanceAt(ctx context.Context, db projections.DB, op, query, wallet, account string, args ...any) (Balance, uint64, error) {
	var b Balance
	var pos int64
	err := db.QueryRow(ctx, query, args...).Scan(&b.Available, &b.Pending, &b.Held, &pos)
	if errors.Is(err, projections.ErrNoRows) {
		if err := accountExists(ctx, db, wallet, account); err != nil {
			return Balance{}, 0, fmt.Errorf("%s: %w", op, err)
		}
		return Balance{}, 0, nil
	}
	if err != nil {
		return Balance{}, 0, fmt.Errorf("%s: %w", op, err)
	}
	return b, uint64(pos), nil
}

// GetTransfer returns a transfer by id (the first one, should an id have
// been used twice).
func GetTransfer(ctx context.Context, db projections.DB, wallet, id string) (Transfer, error) {
	t := Transfer{Wallet: wallet}
	var pos, created int64
	err := db.QueryRow(ctx, `SELECT id, from_account, to_account, amount, memo, position, created
		FROM wallet_transfers WHERE wallet = ? AND id = ? ORDER BY position LIMIT 1`, wallet, id).
		Scan(&t.ID, &t.From, &t.To, &t.Amount, &t.Memo, &pos, &created)
	if err != nil {
		return Transfer{}, notFound("get transfer "+wallet+"/"+id, err)
	}
	t.Position, t.Time = uint64(pos), time.UnixMicro(created).UTC()
	return t, nil
}

// GetImport returns an import by id (the first one, should an id have been
// used twice).
func GetImport(ctx context.Context, db projections.DB, wallet, id string) (Import, error) {
	im := Import{Wallet: wallet}
	var pos, created int64
	err := db.QueryRow(ctx, `SELECT id, account, amount, reason, position, created
		FROM wallet_imports WHERE wallet = ? AND id = ? ORDER BY position LIMIT 1`, wallet, id).
		Scan(&im.ID, &im.Account, &im.Amount, &im.Reason, &pos, &created)
	if err != nil {
		return Import{}, notFound("get import "+wallet+"/"+id, err)
	}
	im.Position, im.Time = uint64(pos), time.UnixMicro(created).UTC()
	return im, nil
}

// GetHold returns a hold, active or ended.
func GetHold(ctx context.Context, db projections.DB, wallet, id string) (Hold, error) {
	h := Hold{Wallet: wallet}
	var expires, pos int64
	err := db.QueryRow(ctx, `SELECT id, account, amount, reason, expires_at, status, position
		FROM wallet_holds WHERE wallet = ? AND id = ?`, wallet, id).
		Scan(&h.ID, &h.Account, &h.Amount, &h.Reason, &expires, &h.Status, &pos)
	if err != nil {
		return Hold{}, notFound("get hold "+wallet+"/"+id, err)
	}
	if expires != 0 {
		h.ExpiresAt = time.UnixMicro(expires).UTC()
	}
	h.Position = uint64(pos)
	return h, nil
}

// A hold counts as released from its expiry on, before the ledger records
// its HoldExpired (the hold expiry scheduler appends it moments later, and
// any spending command does at once): the At queries below read the model
// as of a time, counting the active holds whose expiry is at or before it
// as released. The stored rows change only with the events.

// GetAccountAt is GetAccount with the account's holds that expired by now
// counted as released: their amounts move from Held back to Available. A
// zero now reads the stored balances.
func GetAccountAt(ctx context.Context, db projections.DB, wallet, account string, now time.Time) (Account, error) {
	a, err := GetAccount(ctx, db, wallet, account)
	if err != nil || a.Balance.Held == 0 {
		return a, err
	}
	due, err := ExpiredHeld(ctx, db, wallet, account, now)
	if err != nil {
		return Account{}, err
	}
	a.Balance = a.Balance.released(due)
	return a, nil
}

// CurrentBalance is the account's balance after its last entry (as
// BalanceAtPosition at the newest position) with the holds that expired by
// now counted as released (see GetAccountAt).
func CurrentBalance(ctx context.Context, db projections.DB, wallet, account string, now time.Time) (Balance, uint64, error) {
	b, pos, err := BalanceAtPosition(ctx, db, wallet, account, math.MaxInt64)
	if err != nil || b.Held == 0 {
		return b, pos, err
	}
	due, err := ExpiredHeld(ctx, db, wallet, account, now)
	if err != nil {
		return Balance{}, 0, err
	}
	return b.released(due), pos, nil
}

// released is b with due of its held funds counted as available: holds
// past their expiry that the ledger has not recorded as expired yet.
func (b Balance) released(due int64) Balance {
	b.Available += due
	b.Held -= due
	return b
}

// ExpiredHeld returns the sum of the account's active holds whose expiry
// is at or before now (0 for a zero now): what its current Held includes
// that already counts as Available.
func ExpiredHeld(ctx context.Context, db projections.DB, wallet, account string, now time.Time) (int64, error) {
	if now.IsZero() {
		return 0, nil
	}
	due, err := expiredHeld(ctx, db, wallet, account, now)
	return due[account], err
}

// ListAccountsAt is ListAccounts with the holds that expired by now
// counted as released (see GetAccountAt).
func ListAccountsAt(ctx context.Context, db projections.DB, wallet string, now time.Time) ([]Account, error) {
	as, err := ListAccounts(ctx, db, wallet)
	if err != nil || now.IsZero() {
		return as, err
	}
	due, err := expiredHeld(ctx, db, wallet, "", now)
	if err != nil {
		return nil, err
	}
	for i := range as {
		as[i].Balance = as[i].Balance.released(due[as[i].Name])
	}
	return as, nil
}

// GetHoldAt is GetHold with an active hold whose expiry is at or before
// now reported as HoldExpired (its Position stays that of the placement
// until the ledger records the expiry).
func GetHoldAt(ctx context.Context, db projections.DB, wallet, id string, now time.Time) (Hold, error) {
	h, err := GetHold(ctx, db, wallet, id)
	if err == nil && h.Status == HoldActive && !h.ExpiresAt.IsZero() && !now.IsZero() && !h.ExpiresAt.After(now) {
		h.Status = HoldExpired
	}
	return h, err
}

// expiredHeld sums, per account of wallet (or of account only, if not
// empty), the active holds whose expiry is at or before now. Expiries are
// stored in microseconds: a hold expires in the microsecond of its expiry.
func expiredHeld(ctx context.Context, db projections.DB, wallet, account string, now time.Time) (map[string]int64, error) {
	op := fmt.Sprintf("expired holds of %s at %s", wallet, now.UTC().Format(time.RFC3339Nano))
	query := `SELECT account, CAST(SUM(amount) AS BIGINT) FROM wallet_holds
		WHERE wallet = ? AND status = ? AND expires_at > 0 AND expires_at <= ?`
	args := []any{wallet, HoldActive, now.UnixMicro()}
	if account != "" {
		query += ` AND account = ?`
		args = append(args, account)
	}
	rows, err := db.Query(ctx, query+` GROUP BY account`, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var sum int64
		if err := rows.Scan(&name, &sum); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out[name] = sum
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// SumBalances sums each bucket over all accounts of a wallet, system
// accounts included. Strict double entry makes the Total of the sum zero in
// a consistent wallet; single buckets need not be (a hold moves available
// to held, a deposit may credit pending against @chain's available), so
// check Total. ErrNotFound when the wallet does not exist.
func SumBalances(ctx context.Context, db projections.DB, wallet string) (Balance, error) {
	op := "sum balances of " + wallet
	if err := walletExists(ctx, db, wallet); err != nil {
		return Balance{}, fmt.Errorf("%s: %w", op, err)
	}
	var b Balance
	err := db.QueryRow(ctx, `SELECT CAST(COALESCE(SUM(available), 0) AS BIGINT), CAST(COALESCE(SUM(pending), 0) AS BIGINT),
		CAST(COALESCE(SUM(held), 0) AS BIGINT) FROM wallet_accounts WHERE wallet = ?`, wallet).
		Scan(&b.Available, &b.Pending, &b.Held)
	if err != nil {
		return Balance{}, fmt.Errorf("%s: %w", op, err)
	}
	return b, nil
}

// EachEntry calls fn with every entry of every account, user and system:
// the account and the entry's position and balances after it (what an
// audit compares with the log), in no particular order. It stops at fn's
// first error.
func EachEntry(ctx context.Context, db projections.DB, fn func(wallet, account string, position uint64, after Balance) error) error {
	rows, err := db.Query(ctx, `SELECT a.wallet, a.account, e.position, e.available, e.pending, e.held
		FROM wallet_entries e JOIN wallet_accounts a ON a.id = e.account_id`)
	if err != nil {
		return fmt.Errorf("every entry: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w, a string
		var pos int64
		var b Balance
		if err := rows.Scan(&w, &a, &pos, &b.Available, &b.Pending, &b.Held); err != nil {
			return fmt.Errorf("every entry: %w", err)
		}
		if err := fn(w, a, uint64(pos), b); err != nil {
			return err
		}
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("every entry: %w", err)
	}
	return nil
}
