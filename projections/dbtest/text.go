package dbtest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// HostileTexts are strings a read-model database must store and return
// unchanged although Postgres text refuses some of them (NUL bytes, invalid
// UTF-8) and others look like the Postgres layer's escape of those; plain
// ones are there for contrast. The event log may hold any of them: events
// written before the edge refused them, imported logs.
var HostileTexts = []string{
	"plain", "", "a\x00b", "\x00", "bad \xff\xfe bytes", "cut \xe2\x82", "\xc3",
	"\uFDD0", "\uFDD000", "\uFDD0zz", "\uFDD0\uFDD0", "é€😀 \uFFFD", "\x00\uFDD041\xff",
}

// label is a named string type: parameters of such types are text too.
type label string

// testHostileText writes HostileTexts through every way a projection has
// (Exec with string, *string, sql.NullString and named-type parameters;
// Insert by COPY, by a small upsert and by a large staged upsert), finds
// them with = parameters, and reads them back into every portable string
// destination.
func testHostileText(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db := newDB(t)
	must(t, db.Migrate(ctx, "t", []string{`CREATE TABLE texts (
		id   BIGINT PRIMARY KEY,
		body TEXT NOT NULL,
		note TEXT
	)`}))
	bulk := projections.Bulk{Table: "texts", Columns: []string{"id", "body", "note"}}
	upsert := bulk
	upsert.OnConflict = "ON CONFLICT (id) DO UPDATE SET body = excluded.body, note = excluded.note"
	n := len(HostileTexts)
	want := map[int64]string{}
	var copied, small, large [][]any
	for i, s := range HostileTexts {
		copied = append(copied, []any{int64(1000 + i), s, &s})
		small = append(small, []any{int64(2000 + i), label(s), nil})
		want[int64(i)], want[int64(1000+i)], want[int64(2000+i)] = s, s, s
	}
	for i := range 300 { // past the size at which Postgres stages an upsert
		s := HostileTexts[i%n]
		large = append(large, []any{int64(3000 + i), s, sql.NullString{String: s, Valid: true}})
		want[int64(3000+i)] = s
	}
	must(t, db.Update(ctx, func(tx projections.Tx) error {
		for i, s := range HostileTexts {
			if _, err := tx.Exec(ctx, `INSERT INTO texts (id, body, note) VALUES (?, ?, ?)`,
				int64(i), s, sql.NullString{String: s, Valid: true}); err != nil {
				return fmt.Errorf("exec %q: %w", s, err)
			}
		}
		for _, rows := range []struct {
			b    projections.Bulk
			rows [][]any
		}{{bulk, copied}, {upsert, small}, {upsert, large}} {
			if err := tx.Insert(ctx, rows.b, rows.rows); err != nil {
				return err
			}
		}
		// Inside the transaction, found by an equal parameter.
		var body string
		if err := tx.QueryRow(ctx, `SELECT body FROM texts WHERE body = ? AND id = ?`, "a\x00b", 2).Scan(&body); err != nil {
			return fmt.Errorf("tx read: %w", err)
		}
		if body != "a\x00b" {
			t.Errorf("Tx.QueryRow read %q, want %q", body, "a\x00b")
		}
		return nil
	}))
	// Updates keyed by a hostile parameter hit exactly their rows.
	must(t, db.Update(ctx, func(tx projections.Tx) error {
		for _, s := range HostileTexts {
			if _, err := tx.Exec(ctx, `UPDATE texts SET note = ? WHERE body = ? AND id >= 2000 AND id < 3000`, s, s); err != nil {
				return err
			}
		}
		return nil
	}))
	for id := range n {
		want := HostileTexts[id]
		var note *string
		var body label
		must(t, db.QueryRow(ctx, `SELECT body, note FROM texts WHERE id = ?`, 2000+id).Scan(&body, &note))
		if string(body) != want || note == nil || *note != want {
			t.Errorf("row %d: body %q, note %v; want %q twice", 2000+id, body, note, want)
		}
	}

	rows, err := db.Query(ctx, `SELECT id, body, note FROM texts ORDER BY id`)
	must(t, err)
	seen := 0
	for rows.Next() {
		var id int64
		var body string
		var note sql.NullString
		must(t, rows.Scan(&id, &body, &note))
		seen++
		if body != want[id] || !note.Valid || note.String != want[id] {
			t.Errorf("row %d: body %q, note %q; want %q", id, body, note.String, want[id])
		}
	}
	must(t, rows.Close())
	if seen != len(want) {
		t.Errorf("read %d rows, want %d", seen, len(want))
	}
	for i, s := range HostileTexts {
		var count int64
		must(t, db.QueryRow(ctx, `SELECT COUNT(*) FROM texts WHERE body = ?`, s).Scan(&count))
		if wantCount := int64(3 + countOf(300, n, i)); count != wantCount {
			t.Errorf("%q: %d rows equal to it, want %d", s, count, wantCount)
		}
	}
}

// countOf is how many of 0..total-1 are i modulo n.
func countOf(total, n, i int) int { return (total - i + n - 1) / n }

// TextType is the type of the events textProjection keeps.
const TextType = "test.text"

// textProjection keeps the texts of every TextType event: its stream, its
// actor and its data's memo.
type textProjection struct{}

func (textProjection) Name() string { return "texts" }

func (textProjection) Migrations(projections.Dialect) []string {
	return []string{`CREATE TABLE event_texts (
		position BIGINT PRIMARY KEY,
		stream   TEXT NOT NULL,
		actor    TEXT NOT NULL,
		memo     TEXT NOT NULL
	)`}
}

func (textProjection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	for _, e := range events {
		if e.Type != TextType {
			continue
		}
		var data struct{ Memo string }
		if err := json.Unmarshal(e.Data, &data); err != nil {
			return fmt.Errorf("texts at %s: %w", e, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO event_texts (position, stream, actor, memo) VALUES (?, ?, ?, ?)`,
			int64(e.Position), e.Stream, e.Metadata.Actor, data.Memo); err != nil {
			return fmt.Errorf("texts at %d: %w", e.Position, err)
		}
	}
	return nil
}

// testHostileEvents appends events whose stream names, actors and data
// carry HostileTexts straight to the store, between ordinary events, and
// runs a projection over them: it catches up past them, keeps running (a
// later event is applied too) and reads every text back as the event holds
// it (a memo decoded from JSON has invalid UTF-8 replaced by U+FFFD, as the
// decoder does).
func testHostileEvents(t *testing.T, newDB NewDB) {
	ctx := context.Background()
	db, store := newDB(t), NewStore(t)
	type text struct{ stream, actor, memo string }
	want := map[uint64]text{}
	appendText := func(stream, s string) uint64 {
		data, err := json.Marshal(map[string]string{"memo": s})
		must(t, err)
		res, err := store.Append(ctx, stream, eventstore.Any,
			eventstore.EventData{Type: TextType, Data: data, Metadata: eventstore.Metadata{Actor: s}})
		must(t, err)
		var decoded struct{ Memo string }
		must(t, json.Unmarshal(data, &decoded))
		want[res.Position] = text{stream, s, decoded.Memo}
		return res.Position
	}
	appendText("text-plain", "before")
	var last uint64
	for _, s := range HostileTexts {
		last = appendText("text-"+s, s)
	}
	r := projections.NewRunner(db, store, projections.Options{}, textProjection{})
	stop := start(t, r)
	wait(t, r, "texts", last)
	after := appendText("text-plain", "after")
	wait(t, r, "texts", after)
	must(t, stop())

	rows, err := db.Query(ctx, `SELECT position, stream, actor, memo FROM event_texts ORDER BY position`)
	must(t, err)
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var pos int64
		var got text
		must(t, rows.Scan(&pos, &got.stream, &got.actor, &got.memo))
		seen++
		if w := want[uint64(pos)]; got != w {
			t.Errorf("event %d read back as %+q, want %+q", pos, got, w)
		}
	}
	must(t, rows.Close())
	if seen != len(want) {
		t.Errorf("read %d rows, want %d", seen, len(want))
	}
}
