// Package wallet is the read model of the wallet ledgers: wallets, account
// balances, account entries with running balances (for history and
// point-in-time balances), transfers, imports and holds.
//
// One projection, named "wallet", folds the events of every stream named
// "wallet-<name>" (the domain/ledger events) into these tables, on SQLite and
// Postgres alike:
//
//	wallets           one row per wallet: coin, permissions, lock state, head
//	wallet_accounts   one row per account (user and '@' system accounts):
//	                  available, pending, held
//	wallet_entries    one row per (event, account touched by its postings):
//	                  kind, reference, counterparty, memo and the balances
//	                  after it (an entry's change is the difference to the
//	                  account's entry before it)
//	wallet_times      per wallet, the last position of each ledger time
//	wallet_transfers  one row per FundsTransferred
//	wallet_imports    one row per BalanceImported
//	wallet_holds      one row per hold id: its latest state
//
// Apply folds a batch in memory (the touched accounts, holds and wallets are
// loaded once per batch, events are decoded on every CPU) and writes each
// table with one bulk insert, in key order. The query functions (GetWallet,
// Entries, BalanceAtTime, ...) read the tables; amounts are int64 minor
// units of the wallet's coin.
//
// Ledger time is an event's store time, except that it never decreases
// along a wallet's history: should the store's clock step back, later
// events keep the wallet's latest time. Entries, transfers and imports
// carry it, and balances at a time are defined by it.
package wallet

import (
	"errors"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// ErrNotFound: the wallet, account, transfer, import or hold does not exist
// in the read model (yet: the projection may lag behind the event store).
var ErrNotFound = errors.New("not found")

// Entry kinds. An event type this package does not name (a movement added to
// the ledger later) gets its type name without the "ledger." prefix.
const (
	KindTransferIn  = "transfer_in"
	KindTransferOut = "transfer_out"
	KindImport      = "import"
	KindHold        = "hold"
	KindHoldRelease = "hold_release"
	KindHoldExpiry  = "hold_expiry"
)

// Hold statuses.
const (
	HoldActive   = "active"
	HoldReleased = "released"
	HoldExpired  = "expired"
)

// Codec returns a new codec that decodes every event type of
// ledger.Events().
func Codec() *eventstore.Codec[ledger.Event] { return eventstore.NewCodecOf(ledger.Events()...) }

// Projection is the wallet ledger projection. Make it with New; it is safe
// for concurrent use (it keeps no state between batches).
type Projection struct {
	codec *eventstore.Codec[ledger.Event]
}

var _ projections.Projection = (*Projection)(nil)

// New returns the projection, decoding with Codec(). It does no I/O.
func New() *Projection { return &Projection{codec: Codec()} }

// Name implements projections.Projection: "wallet".
func (*Projection) Name() string { return "wallet" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (*Projection) Version() int { return 1 }

// Migrations implements projections.Projection.
//
// Entries are keyed (account_id, position), account_id being an integer
// the projection assigns to each account (see accountID; much cheaper to
// index than names): newest-first paging and point-in-time by position scan
// that key backwards. Point-in-time by time finds the position in
// wallet_times first. Transfers and imports are keyed (wallet, id,
// position), not (wallet, id): the ledger does not make those ids unique,
// and a repeated id must not stop the projection (lookups return the
// first). Times are Unix microseconds, booleans 0/1, string lists JSON
// arrays.
func (*Projection) Migrations(d projections.Dialect) []string {
	return []string{
		`CREATE TABLE wallets (
			name          TEXT PRIMARY KEY,
			coin          TEXT NOT NULL,
			exponent      BIGINT NOT NULL,
			permissions   TEXT NOT NULL,
			ip_allowlist  TEXT NOT NULL,
			confirmations BIGINT NOT NULL,
			locked        BIGINT NOT NULL,
			position      BIGINT NOT NULL,
			head          BIGINT NOT NULL,
			head_time     BIGINT NOT NULL
		)` + d.UpdatedInPlace(),
		`CREATE TABLE wallet_accounts (
			wallet    TEXT NOT NULL,
			account   TEXT NOT NULL,
			id        BIGINT NOT NULL,
			system    BIGINT NOT NULL,
			available BIGINT NOT NULL,
			pending   BIGINT NOT NULL,
			held      BIGINT NOT NULL,
			position  BIGINT NOT NULL,
			PRIMARY KEY (wallet, account)
		)` + d.UpdatedInPlace(),
		`CREATE TABLE wallet_entries (
			account_id      BIGINT NOT NULL,
			position        BIGINT NOT NULL,
			revision        BIGINT NOT NULL,
			created         BIGINT NOT NULL,
			kind            TEXT NOT NULL,
			reference       TEXT NOT NULL,
			counterparty    TEXT NOT NULL,
			memo            TEXT NOT NULL,
			available       BIGINT NOT NULL,
			pending         BIGINT NOT NULL,
			held            BIGINT NOT NULL,
			PRIMARY KEY (account_id, position)
		)`,
		`CREATE TABLE wallet_times (
			wallet   TEXT NOT NULL,
			created  BIGINT NOT NULL,
			position BIGINT NOT NULL,
			PRIMARY KEY (wallet, created)
		)`,
		`CREATE TABLE wallet_transfers (
			wallet       TEXT NOT NULL,
			id           TEXT NOT NULL,
			position     BIGINT NOT NULL,
			from_account TEXT NOT NULL,
			to_account   TEXT NOT NULL,
			amount       BIGINT NOT NULL,
			memo         TEXT NOT NULL,
			created      BIGINT NOT NULL,
			PRIMARY KEY (wallet, id, position)
		)`,
		`CREATE TABLE wallet_imports (
			wallet   TEXT NOT NULL,
			id       TEXT NOT NULL,
			position BIGINT NOT NULL,
			account  TEXT NOT NULL,
			amount   BIGINT NOT NULL,
			reason   TEXT NOT NULL,
			created  BIGINT NOT NULL,
			PRIMARY KEY (wallet, id, position)
		)`,
		`CREATE TABLE wallet_holds (
			wallet     TEXT NOT NULL,
			id         TEXT NOT NULL,
			account    TEXT NOT NULL,
			amount     BIGINT NOT NULL,
			reason     TEXT NOT NULL,
			expires_at BIGINT NOT NULL,
			status     TEXT NOT NULL,
			position   BIGINT NOT NULL,
			PRIMARY KEY (wallet, id)
		)`,
		// Holds expired but not yet recorded as such (GetAccountAt).
		`CREATE INDEX wallet_holds_expiry ON wallet_holds (wallet, status, expires_at)`,
	}
}
