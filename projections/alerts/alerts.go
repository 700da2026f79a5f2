// Package alerts is the read model of price alerts: one row per alert with
// its settings and where it is in its life.
//
// One projection, named "alerts", folds the events of every "alert-<id>"
// stream into the table alerts, on SQLite and Postgres alike. Every query
// is scoped to the alert's owner: there is no way to list or read another
// user's alerts through this package, and an alert of someone else reads
// exactly as a missing one (ErrNotFound), so that an id cannot be probed
// (the hole of the CryptoTicker service this replaces).
package alerts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// ErrNotFound: no such alert for this owner, or not in the read model yet
// (the projection may lag behind the event store). It is the domain's
// alerts.ErrNotFound, so one errors.Is check covers commands and queries.
var ErrNotFound = alerts.ErrNotFound

// MaxList is the most alerts List returns (the newest).
const MaxList = 10000

// Projection is the alerts projection; safe for concurrent use.
type Projection struct {
	codec *eventstore.Codec[alerts.Event]
}

var _ projections.Projection = (*Projection)(nil)

// New returns the projection. It does no I/O.
func New() *Projection { return &Projection{codec: eventstore.NewCodecOf(alerts.Events()...)} }

// Name implements projections.Projection: "alerts".
func (*Projection) Name() string { return "alerts" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (*Projection) Version() int { return 1 }

// Migrations implements projections.Projection. Lists are per owner,
// newest first, which the (owner, created_position) index serves.
func (*Projection) Migrations(d projections.Dialect) []string {
	return []string{
		`CREATE TABLE alerts (
			id               TEXT PRIMARY KEY,
			owner            TEXT NOT NULL,
			pair             TEXT NOT NULL,
			direction        TEXT NOT NULL,
			target           TEXT NOT NULL,
			channels         TEXT NOT NULL,
			rearm            TEXT NOT NULL,
			status           TEXT NOT NULL,
			trigger_price    TEXT NOT NULL,
			triggered_at     BIGINT NOT NULL,
			tick_position    BIGINT NOT NULL,
			fired            BIGINT NOT NULL,
			created_at       BIGINT NOT NULL,
			deleted_at       BIGINT NOT NULL,
			created_position BIGINT NOT NULL,
			position         BIGINT NOT NULL
		)` + d.UpdatedInPlace(),
		`CREATE INDEX alerts_owner ON alerts (owner, created_position)`,
	}
}

var _ projections.Selective = (*Projection)(nil)

// Wants implements projections.Selective: the events of alert streams.
func (p *Projection) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, alerts.StreamPrefix) && p.codec.Knows(e.Type)
}

// Apply implements projections.Projection. Alert events are rare next to
// ticks: one statement per event is plenty. Other events are ignored.
func (p *Projection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	for _, e := range events {
		if !strings.HasPrefix(e.Stream, alerts.StreamPrefix) || !p.codec.Knows(e.Type) {
			continue
		}
		ev, err := p.codec.Decode(e)
		if err != nil {
			return fmt.Errorf("alerts projection: %w", err)
		}
		if err := apply(ctx, tx, e, ev); err != nil {
			return fmt.Errorf("alerts projection at %s: %w", e, err)
		}
	}
	return nil
}

func apply(ctx context.Context, tx projections.Tx, e eventstore.Event, ev alerts.Event) error {
	pos := int64(e.Position)
	var err error
	switch ev := ev.(type) {
	case alerts.AlertCreated:
		channels, jerr := json.Marshal(ev.Channels)
		if jerr != nil {
			return jerr
		}
		rearm, jerr := json.Marshal(ev.Rearm) // "null" for a one-shot alert
		if jerr != nil {
			return jerr
		}
		created := ev.At
		if created.IsZero() {
			created = e.Created
		}
		_, err = tx.Exec(ctx, `INSERT INTO alerts (id, owner, pair, direction, target, channels, rearm, status, trigger_price,
				triggered_at, tick_position, fired, created_at, deleted_at, created_position, position)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 0, 0, 0, ?, 0, ?, ?) ON CONFLICT (id) DO NOTHING`,
			string(ev.ID), ev.Owner, ev.Pair.String(), string(ev.Direction), ev.Target.String(), string(channels), string(rearm),
			string(alerts.StatusCreated), created.UnixMicro(), pos, pos)
	case alerts.AlertTriggered:
		_, err = tx.Exec(ctx, `UPDATE alerts SET status = ?, trigger_price = ?, triggered_at = ?, tick_position = ?, fired = ?, position = ?
			WHERE id = ?`, string(alerts.StatusTriggered), ev.Price.String(), ev.At.UnixMicro(), int64(ev.TickPosition), int64(ev.Seq), pos,
			string(ev.ID))
	case alerts.AlertRearmed:
		_, err = tx.Exec(ctx, `UPDATE alerts SET status = ?, position = ? WHERE id = ?`, string(alerts.StatusRearmed), pos, string(ev.ID))
	case alerts.AlertDeleted:
		deleted := ev.At
		if deleted.IsZero() {
			deleted = e.Created
		}
		_, err = tx.Exec(ctx, `UPDATE alerts SET status = ?, deleted_at = ?, position = ? WHERE id = ?`,
			string(alerts.StatusDeleted), deleted.UnixMicro(), pos, string(ev.ID))
	}
	return err
}

// Alert is a row of the read model.
type Alert struct {
	ID        alerts.ID
	Owner     string
	Pair      prices.Pair
	Direction alerts.Direction
	Target    prices.Price
	Channels  alerts.Channels
	Rearm     *alerts.Rearm // nil: one-shot
	Status    alerts.Status
	// TriggerPrice is the price of the tick that fired the alert last
	// (not the target); zero, with TriggeredAt zero, if it never fired.
	TriggerPrice prices.Price
	TriggeredAt  time.Time // tick time of the last firing
	TickPosition uint64    // position of the tick of the last firing
	Fired        int       // number of firings (the Seq of the last one)
	CreatedAt    time.Time
	DeletedAt    time.Time // zero unless deleted
	// CreatedPosition and Position are the global positions of the
	// alert's first and last event: wait for the projection to reach a
	// command's position to read its effect.
	CreatedPosition uint64
	Position        uint64
}

const columns = `id, owner, pair, direction, target, channels, rearm, status, trigger_price, triggered_at, tick_position,
	fired, created_at, deleted_at, created_position, position`

// List returns owner's alerts, newest first, at most MaxList, with status
// status ("" for every status, deleted ones included). Nobody else's
// alerts can be listed: an empty owner lists nothing. An unknown status is
// an error wrapping alerts.ErrValidation.
func List(ctx context.Context, db projections.DB, owner, status string) ([]Alert, error) {
	switch alerts.Status(status) {
	case "", alerts.StatusCreated, alerts.StatusTriggered, alerts.StatusRearmed, alerts.StatusDeleted:
	default:
		return nil, fmt.Errorf("list alerts: %w: status %q: want created, triggered, rearmed or deleted", alerts.ErrValidation, clip(status))
	}
	if owner == "" {
		return nil, nil
	}
	q := `SELECT ` + columns + ` FROM alerts WHERE owner = ?`
	args := []any{owner}
	if status != "" {
		q, args = q+` AND status = ?`, append(args, status)
	}
	q, args = q+` ORDER BY created_position DESC LIMIT ?`, append(args, MaxList)
	rows, err := db.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rows.Close()
	var out []Alert
	for rows.Next() {
		a, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// Get returns alert id if owner owns it. A missing alert and someone
// else's answer the same ErrNotFound, with the same message and the same
// query.
func Get(ctx context.Context, db projections.DB, owner string, id alerts.ID) (Alert, error) {
	a, err := scan(db.QueryRow(ctx, `SELECT `+columns+` FROM alerts WHERE id = ? AND owner = ?`, string(id), owner))
	if errors.Is(err, projections.ErrNoRows) {
		return Alert{}, fmt.Errorf("get alert: %w", ErrNotFound)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("get alert: %w", err)
	}
	return a, nil
}

func scan(r projections.Row) (Alert, error) {
	var a Alert
	var id, pair, direction, target, channels, rearm, status, triggerPrice string
	var triggeredAt, tickPos, fired, createdAt, deletedAt, createdPos, pos int64
	if err := r.Scan(&id, &a.Owner, &pair, &direction, &target, &channels, &rearm, &status, &triggerPrice, &triggeredAt,
		&tickPos, &fired, &createdAt, &deletedAt, &createdPos, &pos); err != nil {
		return Alert{}, err
	}
	var err error
	a.ID, a.Direction, a.Status = alerts.ID(id), alerts.Direction(direction), alerts.Status(status)
	if a.Pair, err = prices.ParsePair(pair); err != nil {
		return Alert{}, fmt.Errorf("alert %s: %w", id, err)
	}
	if a.Target, err = prices.Parse(target); err != nil {
		return Alert{}, fmt.Errorf("alert %s: target: %w", id, err)
	}
	if triggerPrice != "" {
		if a.TriggerPrice, err = prices.Parse(triggerPrice); err != nil {
			return Alert{}, fmt.Errorf("alert %s: trigger price: %w", id, err)
		}
	}
	if err := json.Unmarshal([]byte(channels), &a.Channels); err != nil {
		return Alert{}, fmt.Errorf("alert %s: channels: %w", id, err)
	}
	if err := json.Unmarshal([]byte(rearm), &a.Rearm); err != nil {
		return Alert{}, fmt.Errorf("alert %s: rearm: %w", id, err)
	}
	a.TriggeredAt, a.DeletedAt = micros(triggeredAt), micros(deletedAt)
	a.CreatedAt = time.UnixMicro(createdAt).UTC()
	a.TickPosition, a.Fired = uint64(tickPos), int(fired)
	a.CreatedPosition, a.Position = uint64(createdPos), uint64(pos)
	return a, nil
}

// micros reads a stored time where 0 means none.
func micros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
