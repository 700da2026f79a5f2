// Package custody is the read model of what wallets hold on chain: deposit
// addresses, deposits with their confirmations, and withdrawals with their
// broadcast state.
//
// One projection, named "custody", folds the chain events of every
// "wallet-<name>" stream into three tables, on SQLite and Postgres alike:
//
//	custody_addresses    one row per deposit address: its account
//	custody_deposits     one row per deposit (txid:vout): its latest state
//	custody_withdrawals  one row per withdrawal: its latest state
//
// Chain events are few next to transfers: one statement per event is
// plenty. Amounts are int64 minor units of the wallet's coin, times Unix
// microseconds.
package custody

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// ErrNotFound: no such deposit or withdrawal in the read model (yet: the
// projection may lag behind the event store).
var ErrNotFound = errors.New("not found")

// Projection is the custody projection; safe for concurrent use.
type Projection struct {
	codec *eventstore.Codec[ledger.Event]
}

var _ projections.Projection = (*Projection)(nil)

// New returns the projection. It does no I/O.
func New() *Projection { return &Projection{codec: eventstore.NewCodecOf(ledger.Events()...)} }

// Name implements projections.Projection: "custody".
func (*Projection) Name() string { return "custody" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (*Projection) Version() int { return 1 }

// Migrations implements projections.Projection. Deposits are listed newest
// first by the position they were first seen at (seen_position), which the
// (wallet, seen_position) index serves.
func (*Projection) Migrations(d projections.Dialect) []string {
	return []string{
		`CREATE TABLE custody_addresses (
			wallet   TEXT NOT NULL,
			address  TEXT NOT NULL,
			account  TEXT NOT NULL,
			position BIGINT NOT NULL,
			PRIMARY KEY (wallet, address)
		)`,
		`CREATE TABLE custody_deposits (
			wallet        TEXT NOT NULL,
			id            TEXT NOT NULL,
			txid          TEXT NOT NULL,
			vout          BIGINT NOT NULL,
			account       TEXT NOT NULL,
			address       TEXT NOT NULL,
			amount        BIGINT NOT NULL,
			confirmations BIGINT NOT NULL,
			block_hash    TEXT NOT NULL,
			status        TEXT NOT NULL,
			reason        TEXT NOT NULL,
			shortfall     BIGINT NOT NULL,
			seen_at       BIGINT NOT NULL,
			confirmed_at  BIGINT NOT NULL,
			seen_position BIGINT NOT NULL,
			position      BIGINT NOT NULL,
			PRIMARY KEY (wallet, id)
		)` + d.UpdatedInPlace(),
		`CREATE INDEX custody_deposits_seen ON custody_deposits (wallet, seen_position)`,
		`CREATE TABLE custody_withdrawals (
			wallet        TEXT NOT NULL,
			id            TEXT NOT NULL,
			account       TEXT NOT NULL,
			address       TEXT NOT NULL,
			amount        BIGINT NOT NULL,
			subtract_fee  BIGINT NOT NULL,
			status        TEXT NOT NULL,
			txid          TEXT NOT NULL,
			fee           BIGINT NOT NULL,
			fee_shortfall BIGINT NOT NULL,
			confirmations BIGINT NOT NULL,
			reason        TEXT NOT NULL,
			requested_at  BIGINT NOT NULL,
			position      BIGINT NOT NULL,
			PRIMARY KEY (wallet, id)
		)` + d.UpdatedInPlace(),
	}
}

var _ projections.Selective = (*Projection)(nil)

// Wants implements projections.Selective: the chain events of wallet
// streams.
func (p *Projection) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, ledger.StreamPrefix) && chainEvent(e.Type)
}

// Apply implements projections.Projection. Events of other streams and
// other types are ignored.
func (p *Projection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	for _, e := range events {
		wallet, ok := strings.CutPrefix(e.Stream, ledger.StreamPrefix)
		if !ok || !p.codec.Knows(e.Type) || !chainEvent(e.Type) {
			continue
		}
		ev, err := p.codec.Decode(e)
		if err != nil {
			return fmt.Errorf("custody projection: %w", err)
		}
		if err := apply(ctx, tx, wallet, e, ev); err != nil {
			return fmt.Errorf("custody projection at %s: %w", e, err)
		}
	}
	return nil
}

func chainEvent(t string) bool {
	return t == ledger.TypeAddressAssigned || strings.HasPrefix(t, ledger.DepositTypePrefix) || strings.HasPrefix(t, ledger.WithdrawalTypePrefix)
}

func apply(ctx context.Context, tx projections.Tx, wallet string, e eventstore.Event, ev ledger.Event) error {
	pos, at := int64(e.Position), e.Created.UnixMicro()
	var err error
	switch ev := ev.(type) {
	case ledger.AddressAssigned:
		_, err = tx.Exec(ctx, `INSERT INTO custody_addresses (wallet, address, account, position) VALUES (?, ?, ?, ?)
			ON CONFLICT (wallet, address) DO NOTHING`, wallet, ev.Address, ev.Account, pos)
	case ledger.DepositSeen:
		// First sight, or seen again after a reversal (re-mined elsewhere).
		_, err = tx.Exec(ctx, `INSERT INTO custody_deposits (wallet, id, txid, vout, account, address, amount,
				confirmations, block_hash, status, reason, shortfall, seen_at, confirmed_at, seen_position, position)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 0, ?, 0, ?, ?)
			ON CONFLICT (wallet, id) DO UPDATE SET confirmations = excluded.confirmations, block_hash = excluded.block_hash,
				status = excluded.status, reason = '', shortfall = 0, confirmed_at = 0, position = excluded.position`,
			wallet, ev.ID, ev.TxID, int64(ev.Vout), ev.Account, ev.Address, ev.Amount, int64(ev.Confirmations), ev.BlockHash,
			string(ledger.DepositStatusSeen), at, pos, pos)
	case ledger.DepositConfirmed:
		_, err = tx.Exec(ctx, `UPDATE custody_deposits SET status = ?, confirmations = ?, block_hash = ?, confirmed_at = ?, position = ?
			WHERE wallet = ? AND id = ?`, string(ledger.DepositStatusConfirmed), int64(ev.Confirmations), ev.BlockHash, at, pos, wallet, ev.ID)
	case ledger.DepositConfirmationsChanged:
		_, err = tx.Exec(ctx, `UPDATE custody_deposits SET confirmations = ?, block_hash = ?, position = ? WHERE wallet = ? AND id = ?`,
			int64(ev.Confirmations), ev.BlockHash, pos, wallet, ev.ID)
	case ledger.DepositReversed:
		_, err = tx.Exec(ctx, `UPDATE custody_deposits SET status = ?, reason = ?, shortfall = ?, confirmations = 0, position = ?
			WHERE wallet = ? AND id = ?`, string(ledger.DepositStatusReversed), ev.Reason, ev.Shortfall, pos, wallet, ev.ID)
	case ledger.WithdrawalRequested:
		_, err = tx.Exec(ctx, `INSERT INTO custody_withdrawals (wallet, id, account, address, amount, subtract_fee, status,
				txid, fee, fee_shortfall, confirmations, reason, requested_at, position)
			VALUES (?, ?, ?, ?, ?, ?, ?, '', 0, 0, 0, '', ?, ?) ON CONFLICT (wallet, id) DO NOTHING`,
			wallet, ev.ID, ev.Account, ev.Address, ev.Amount, boolInt(ev.SubtractFee), string(ledger.WithdrawalStatusRequested), at, pos)
	case ledger.WithdrawalBroadcastStarted:
		err = setWithdrawal(ctx, tx, wallet, ev.ID, pos, ledger.WithdrawalStatusBroadcasting, "")
	case ledger.WithdrawalBroadcastAborted:
		err = setWithdrawal(ctx, tx, wallet, ev.ID, pos, ledger.WithdrawalStatusRequested, ev.Reason)
	case ledger.WithdrawalUnknown:
		err = setWithdrawal(ctx, tx, wallet, ev.ID, pos, ledger.WithdrawalStatusUnknown, ev.Reason)
	case ledger.WithdrawalFailed:
		err = setWithdrawal(ctx, tx, wallet, ev.ID, pos, ledger.WithdrawalStatusFailed, ev.Reason)
	case ledger.WithdrawalBroadcast:
		_, err = tx.Exec(ctx, `UPDATE custody_withdrawals SET status = ?, txid = ?, fee = ?, fee_shortfall = ?, reason = '', position = ?
			WHERE wallet = ? AND id = ?`, string(ledger.WithdrawalStatusBroadcast), ev.TxID, ev.Fee, ev.FeeShortfall, pos, wallet, ev.ID)
	case ledger.WithdrawalConfirmed:
		_, err = tx.Exec(ctx, `UPDATE custody_withdrawals SET status = ?, confirmations = ?, position = ? WHERE wallet = ? AND id = ?`,
			string(ledger.WithdrawalStatusConfirmed), int64(ev.Confirmations), pos, wallet, ev.ID)
	}
	return err
}

func setWithdrawal(ctx context.Context, tx projections.Tx, wallet, id string, pos int64, st ledger.WithdrawalStatus, reason string) error {
	_, err := tx.Exec(ctx, `UPDATE custody_withdrawals SET status = ?, reason = ?, position = ? WHERE wallet = ? AND id = ?`,
		string(st), reason, pos, wallet, id)
	return err
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// Deposit is a row of custody_deposits.
type Deposit struct {
	Wallet, ID, TxID string
	Vout             uint32
	Account, Address string
	Amount           int64
	Confirmations    int
	BlockHash        string
	Status           ledger.DepositStatus
	Reason           string // of a reversal
	Shortfall        int64  // of a reversal
	SeenAt           time.Time
	ConfirmedAt      time.Time // zero until confirmed
	SeenPosition     uint64
	Position         uint64 // of the deposit's last event
}

// DepositFilter narrows a deposit listing. Before is a cursor: the
// SeenPosition of the last deposit of the previous page (0 for the first).
type DepositFilter struct {
	Account string
	Status  ledger.DepositStatus
	Before  uint64
	Limit   int
}

const depositColumns = `wallet, id, txid, vout, account, address, amount, confirmations, block_hash, status, reason,
	shortfall, seen_at, confirmed_at, seen_position, position`

// Deposits returns a wallet's deposits, newest first.
func Deposits(ctx context.Context, db projections.DB, wallet string, f DepositFilter) ([]Deposit, error) {
	q := `SELECT ` + depositColumns + ` FROM custody_deposits WHERE wallet = ?`
	args := []any{wallet}
	if f.Account != "" {
		q, args = q+` AND account = ?`, append(args, f.Account)
	}
	if f.Status != "" {
		q, args = q+` AND status = ?`, append(args, string(f.Status))
	}
	if f.Before > 0 {
		q, args = q+` AND seen_position < ?`, append(args, int64(f.Before))
	}
	q, args = q+` ORDER BY seen_position DESC LIMIT ?`, append(args, max(f.Limit, 1))
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("deposits of %s: %w", wallet, err)
	}
	defer rows.Close()
	var out []Deposit
	for rows.Next() {
		d, err := scanDeposit(rows)
		if err != nil {
			return nil, fmt.Errorf("deposits of %s: %w", wallet, err)
		}
		out = append(out, d)
	}
	return out, rows.Close()
}

func scanDeposit(r projections.Row) (Deposit, error) {
	var d Deposit
	var vout, confs, seenAt, confirmedAt, seenPos, pos int64
	var status string
	err := r.Scan(&d.Wallet, &d.ID, &d.TxID, &vout, &d.Account, &d.Address, &d.Amount, &confs, &d.BlockHash, &status,
		&d.Reason, &d.Shortfall, &seenAt, &confirmedAt, &seenPos, &pos)
	d.Vout, d.Confirmations, d.Status = uint32(vout), int(confs), ledger.DepositStatus(status)
	d.SeenAt, d.SeenPosition, d.Position = time.UnixMicro(seenAt).UTC(), uint64(seenPos), uint64(pos)
	if confirmedAt > 0 {
		d.ConfirmedAt = time.UnixMicro(confirmedAt).UTC()
	}
	return d, err
}

// Withdrawal is a row of custody_withdrawals.
type Withdrawal struct {
	Wallet, ID, Account, Address string
	Amount                       int64
	SubtractFee                  bool
	Status                       ledger.WithdrawalStatus
	TxID                         string
	Fee, FeeShortfall            int64
	Confirmations                int
	Reason                       string
	RequestedAt                  time.Time
	Position                     uint64 // of the withdrawal's last event
}

// GetWithdrawal returns a withdrawal (ErrNotFound).
func GetWithdrawal(ctx context.Context, db projections.DB, wallet, id string) (Withdrawal, error) {
	var w Withdrawal
	var subtract, confs, requested, pos int64
	var status string
	err := db.QueryRow(ctx, `SELECT wallet, id, account, address, amount, subtract_fee, status, txid, fee, fee_shortfall,
			confirmations, reason, requested_at, position FROM custody_withdrawals WHERE wallet = ? AND id = ?`, wallet, id).
		Scan(&w.Wallet, &w.ID, &w.Account, &w.Address, &w.Amount, &subtract, &status, &w.TxID, &w.Fee, &w.FeeShortfall,
			&confs, &w.Reason, &requested, &pos)
	if errors.Is(err, projections.ErrNoRows) {
		return Withdrawal{}, fmt.Errorf("withdrawal %s of %s: %w", id, wallet, ErrNotFound)
	}
	if err != nil {
		return Withdrawal{}, fmt.Errorf("withdrawal %s of %s: %w", id, wallet, err)
	}
	w.SubtractFee, w.Status, w.Confirmations = subtract != 0, ledger.WithdrawalStatus(status), int(confs)
	w.RequestedAt, w.Position = time.UnixMicro(requested).UTC(), uint64(pos)
	return w, nil
}

// WithdrawalsByStatus counts the withdrawals of every wallet by status
// (the metrics' withdrawals gauge).
func WithdrawalsByStatus(ctx context.Context, db projections.DB) (map[ledger.WithdrawalStatus]int64, error) {
	rows, err := db.Query(ctx, `SELECT status, COUNT(*) FROM custody_withdrawals GROUP BY status`)
	if err != nil {
		return nil, fmt.Errorf("withdrawals by status: %w", err)
	}
	defer rows.Close()
	out := map[ledger.WithdrawalStatus]int64{}
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return nil, fmt.Errorf("withdrawals by status: %w", err)
		}
		out[ledger.WithdrawalStatus(status)] = n
	}
	return out, rows.Err()
}
