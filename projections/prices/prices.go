// Package prices is the read model of market prices: the latest price of
// every pair and the history of recorded ticks, with OHLC candles computed
// from it.
//
// One projection, named "prices", folds the prices.ticked events of every
// "price-BASE-QUOTE" stream into two tables, on SQLite and Postgres alike:
//
//	prices_latest  one row per pair: the recorded tick with the newest time
//	prices_ticks   one row per recorded tick
//
// Prices are stored as exact decimal TEXT (prices.Price.String) and never
// pass through a float: SQL does not compare or aggregate them; OHLC folds
// the ticks in Go. Times are Unix microseconds, so tick times finer than a
// microsecond are truncated in this read model (the event keeps them).
package prices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// Query limits.
const (
	// DefaultHistory is the number of ticks History returns for limit <= 0.
	DefaultHistory = 100
	// MaxHistory is the most ticks History returns.
	MaxHistory = 10000
	// MaxOHLCTicks is the most ticks OHLC folds in one call; a range with
	// more fails with ErrTooManyTicks.
	MaxOHLCTicks = 200000
	// MaxCandles is the most buckets one OHLC range may span.
	MaxCandles = 10000
)

// Errors.
var (
	// ErrNotFound: the pair has no recorded tick in the read model (yet:
	// the projection may lag behind the event store).
	ErrNotFound = errors.New("no price")
	// ErrInvalidQuery: a query's arguments make no sense (an empty range,
	// a bucket that is not positive).
	ErrInvalidQuery = errors.New("invalid price query")
	// ErrTooManyTicks: an OHLC range holds more than MaxOHLCTicks ticks or
	// spans more than MaxCandles buckets; ask for a shorter range or a
	// larger bucket.
	ErrTooManyTicks = errors.New("too many ticks in range")
)

// Projection is the prices projection; safe for concurrent use.
type Projection struct {
	codec *eventstore.Codec[prices.Event]
}

var _ projections.Projection = (*Projection)(nil)

// New returns the projection. It does no I/O.
func New() *Projection { return &Projection{codec: eventstore.NewCodecOf(prices.Events()...)} }

// Name implements projections.Projection: "prices".
func (*Projection) Name() string { return "prices" }

// Version implements projections.Versioned: bump it when Apply writes
// something else for the same events, and the read model is rebuilt
// blue/green at the next start.
func (*Projection) Version() int { return 1 }

// Migrations implements projections.Projection. History and OHLC read
// ticks of one pair by time, which the (pair, at, position) index serves.
func (*Projection) Migrations(d projections.Dialect) []string {
	return []string{
		`CREATE TABLE prices_latest (
			pair     TEXT PRIMARY KEY,
			price    TEXT NOT NULL,
			source   TEXT NOT NULL,
			at       BIGINT NOT NULL,
			position BIGINT NOT NULL
		)` + d.UpdatedInPlace(),
		`CREATE TABLE prices_ticks (
			pair     TEXT NOT NULL,
			at       BIGINT NOT NULL,
			position BIGINT NOT NULL,
			price    TEXT NOT NULL,
			source   TEXT NOT NULL,
			PRIMARY KEY (pair, position)
		)`,
		`CREATE INDEX prices_ticks_time ON prices_ticks (pair, at, position)`,
	}
}

var ticksBulk = projections.Bulk{Table: "prices_ticks", Columns: []string{"pair", "at", "position", "price", "source"}}

var _ projections.Selective = (*Projection)(nil)

// Wants implements projections.Selective: price ticks only.
func (*Projection) Wants(e eventstore.Event) bool {
	return e.Type == prices.TypePriceTicked && strings.HasPrefix(e.Stream, prices.StreamPrefix)
}

// Apply implements projections.Projection. It writes every tick of the
// batch in one bulk insert and the latest price of each pair it touched
// once. Other events are ignored.
func (p *Projection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	var rows [][]any
	latest := map[prices.Pair]Tick{}
	var order []prices.Pair
	for _, e := range events {
		if e.Type != prices.TypePriceTicked || !strings.HasPrefix(e.Stream, prices.StreamPrefix) {
			continue
		}
		ev, err := p.codec.Decode(e)
		if err != nil {
			return fmt.Errorf("prices projection: %w", err)
		}
		t, ok := ev.(prices.PriceTicked)
		if !ok {
			continue
		}
		tick := Tick{Pair: t.Pair, Price: t.Price, Source: t.Source, At: t.At.Truncate(time.Microsecond).UTC(), Position: e.Position}
		rows = append(rows, []any{t.Pair.String(), tick.At.UnixMicro(), int64(e.Position), t.Price.String(), t.Source})
		cur, seen := latest[t.Pair]
		if !seen {
			order = append(order, t.Pair)
		}
		if !seen || newer(tick, cur) {
			latest[t.Pair] = tick
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if err := tx.Insert(ctx, ticksBulk, rows); err != nil {
		return fmt.Errorf("prices projection: insert %d ticks: %w", len(rows), err)
	}
	for _, pair := range order {
		t := latest[pair]
		// A late tick (older time, later position) does not replace a
		// newer price; ties on time go to the later position.
		_, err := tx.Exec(ctx, `INSERT INTO prices_latest (pair, price, source, at, position) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (pair) DO UPDATE SET price = excluded.price, source = excluded.source, at = excluded.at, position = excluded.position
			WHERE excluded.at > prices_latest.at OR (excluded.at = prices_latest.at AND excluded.position > prices_latest.position)`,
			pair.String(), t.Price.String(), t.Source, t.At.UnixMicro(), int64(t.Position))
		if err != nil {
			return fmt.Errorf("prices projection: latest %s: %w", pair, err)
		}
	}
	return nil
}

// newer reports whether a is more recent than b: a later time, or the same
// time at a later position.
func newer(a, b Tick) bool {
	return a.At.After(b.At) || (a.At.Equal(b.At) && a.Position > b.Position)
}

// Tick is a recorded price tick.
type Tick struct {
	Pair     prices.Pair
	Price    prices.Price
	Source   string
	At       time.Time // the source's time for the price, UTC, to the microsecond
	Position uint64    // global position of the PriceTicked event
}

// Latest returns the tick with the newest time of pair (ErrNotFound).
func Latest(ctx context.Context, db projections.DB, pair prices.Pair) (Tick, error) {
	var price, source string
	var at, pos int64
	err := db.QueryRow(ctx, `SELECT price, source, at, position FROM prices_latest WHERE pair = ?`, pair.String()).
		Scan(&price, &source, &at, &pos)
	if errors.Is(err, projections.ErrNoRows) {
		return Tick{}, fmt.Errorf("latest price of %s: %w", pair, ErrNotFound)
	}
	if err != nil {
		return Tick{}, fmt.Errorf("latest price of %s: %w", pair, err)
	}
	return tick(pair, price, source, at, pos)
}

// LatestAll returns the latest tick of every pair, by pair.
func LatestAll(ctx context.Context, db projections.DB) ([]Tick, error) {
	rows, err := db.Query(ctx, `SELECT pair, price, source, at, position FROM prices_latest ORDER BY pair`)
	if err != nil {
		return nil, fmt.Errorf("latest prices: %w", err)
	}
	defer rows.Close()
	var out []Tick
	for rows.Next() {
		var pairS, price, source string
		var at, pos int64
		if err := rows.Scan(&pairS, &price, &source, &at, &pos); err != nil {
			return nil, fmt.Errorf("latest prices: %w", err)
		}
		pair, err := prices.ParsePair(pairS)
		if err != nil {
			return nil, fmt.Errorf("latest prices: %w", err)
		}
		t, err := tick(pair, price, source, at, pos)
		if err != nil {
			return nil, fmt.Errorf("latest prices: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("latest prices: %w", err)
	}
	return out, nil
}

func tick(pair prices.Pair, price, source string, at, pos int64) (Tick, error) {
	p, err := prices.Parse(price)
	if err != nil {
		return Tick{}, fmt.Errorf("stored price of %s at position %d: %w", pair, pos, err)
	}
	return Tick{Pair: pair, Price: p, Source: source, At: time.UnixMicro(at).UTC(), Position: uint64(pos)}, nil
}

// timeRange turns [from, to) into microsecond bounds; a zero from or to is
// unbounded on that side.
func timeRange(from, to time.Time) (lo, hi int64, err error) {
	lo, hi = minMicros, maxMicros
	if !from.IsZero() {
		lo = from.UnixMicro()
	}
	if !to.IsZero() {
		hi = to.UnixMicro()
	}
	if hi <= lo {
		return 0, 0, fmt.Errorf("%w: empty range [%s, %s)", ErrInvalidQuery, from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	return lo, hi, nil
}

const (
	minMicros = -1 << 62
	maxMicros = 1 << 62
)

// History returns the ticks of pair with from <= At < to, newest first (by
// time, then position), at most limit of them (DefaultHistory for limit <=
// 0, at most MaxHistory). A zero from or to leaves that side open.
func History(ctx context.Context, db projections.DB, pair prices.Pair, from, to time.Time, limit int) ([]Tick, error) {
	lo, hi, err := timeRange(from, to)
	if err != nil {
		return nil, fmt.Errorf("price history of %s: %w", pair, err)
	}
	if limit <= 0 {
		limit = DefaultHistory
	}
	limit = min(limit, MaxHistory)
	rows, err := db.Query(ctx, `SELECT price, source, at, position FROM prices_ticks
		WHERE pair = ? AND at >= ? AND at < ? ORDER BY at DESC, position DESC LIMIT ?`, pair.String(), lo, hi, limit)
	if err != nil {
		return nil, fmt.Errorf("price history of %s: %w", pair, err)
	}
	out, err := scanTicks(rows, pair, limit)
	if err != nil {
		return nil, fmt.Errorf("price history of %s: %w", pair, err)
	}
	return out, nil
}

func scanTicks(rows projections.Rows, pair prices.Pair, capacity int) ([]Tick, error) {
	defer rows.Close()
	out := make([]Tick, 0, min(capacity, 1024))
	for rows.Next() {
		var price, source string
		var at, pos int64
		if err := rows.Scan(&price, &source, &at, &pos); err != nil {
			return nil, err
		}
		t, err := tick(pair, price, source, at, pos)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Close()
}

// Candle is the ticks of one bucket: the first and last price by time
// (ties by position), the extremes and how many ticks there were.
type Candle struct {
	Start                  time.Time // UTC
	Open, High, Low, Close prices.Price
	Ticks                  int
}

// OHLC returns the candles of pair over [from, to) in buckets of bucket,
// oldest first; buckets without ticks are left out. Buckets are aligned to
// the Unix epoch (a bucket of an hour starts on the hour, UTC), so the
// first and last candle may cover less than the range. The prices are
// exact: the ticks are read in time order and folded here, never averaged
// or compared as floats in SQL. Both from and to are required, bucket must
// be a positive whole number of microseconds, and the range may span at
// most MaxCandles buckets and hold at most MaxOHLCTicks ticks
// (ErrTooManyTicks).
func OHLC(ctx context.Context, db projections.DB, pair prices.Pair, from, to time.Time, bucket time.Duration) ([]Candle, error) {
	return ohlc(ctx, db, pair, from, to, bucket, MaxOHLCTicks)
}

// ohlc is OHLC with the tick limit as an argument, for tests.
func ohlc(ctx context.Context, db projections.DB, pair prices.Pair, from, to time.Time, bucket time.Duration, maxTicks int) ([]Candle, error) {
	op := fmt.Sprintf("ohlc of %s", pair)
	if from.IsZero() || to.IsZero() {
		return nil, fmt.Errorf("%s: %w: from and to are required", op, ErrInvalidQuery)
	}
	if bucket < time.Microsecond || bucket%time.Microsecond != 0 {
		return nil, fmt.Errorf("%s: %w: bucket %s: want a positive whole number of microseconds", op, ErrInvalidQuery, bucket)
	}
	lo, hi, err := timeRange(from, to)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	width := bucket.Microseconds()
	if n := (floorDiv(hi-1, width) - floorDiv(lo, width)) + 1; n > MaxCandles {
		return nil, fmt.Errorf("%s: %w: the range spans %d buckets of %s, at most %d", op, ErrTooManyTicks, n, bucket, MaxCandles)
	}
	rows, err := db.Query(ctx, `SELECT price, source, at, position FROM prices_ticks
		WHERE pair = ? AND at >= ? AND at < ? ORDER BY at, position LIMIT ?`, pair.String(), lo, hi, maxTicks+1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	ticks, err := scanTicks(rows, pair, maxTicks+1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(ticks) > maxTicks {
		return nil, fmt.Errorf("%s: %w: more than %d ticks between %s and %s; ask for a shorter range",
			op, ErrTooManyTicks, maxTicks, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	return Fold(ticks, bucket), nil
}

// Fold groups ticks, given in time order, into candles of bucket aligned to
// the Unix epoch. bucket must be at least a microsecond.
func Fold(ticks []Tick, bucket time.Duration) []Candle {
	width := max(bucket.Microseconds(), 1)
	var out []Candle
	var cur *Candle
	var curKey int64
	for _, t := range ticks {
		key := floorDiv(t.At.UnixMicro(), width)
		if cur == nil || key != curKey {
			out = append(out, Candle{Start: time.UnixMicro(key * width).UTC(), Open: t.Price, High: t.Price, Low: t.Price})
			cur, curKey = &out[len(out)-1], key
		}
		if cur.High.Less(t.Price) {
			cur.High = t.Price
		}
		if t.Price.Less(cur.Low) {
			cur.Low = t.Price
		}
		cur.Close = t.Price
		cur.Ticks++
	}
	return out
}

// floorDiv is a/b rounded towards negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
