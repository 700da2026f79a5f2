package dump_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/google/uuid"
)

// odd returns events whose names, metadata and data need escaping or keep
// bytes encoding/json would change: whitespace in data, a line break in
// data (data_text), quotes, backslashes, control characters, non-ASCII.
func odd() []eventstore.Event {
	t0 := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	datas := []string{
		`{"a":1}`,
		`{ "spaced" : [1, 2, 3] , "u":"\u00e9 é <>&" }`,
		"{\"multi\":\n  \"line\"\r\n}",
		`"just a string"`,
		`{"sealed":"seal1:AAAA+/=="}`,
	}
	var out []eventstore.Event
	var prev eventstore.Hash
	for i, d := range datas {
		e := eventstore.Event{ID: uuid.New(), Stream: "odd-\"stream\\\t\x01ü", Revision: uint64(i), Position: uint64(i + 1),
			Type: "t.odd<&>", Data: json.RawMessage(d),
			Metadata: eventstore.Metadata{CorrelationID: "c\"1", CausationID: "\u2028", Actor: "user:ü", SchemaVersion: i, IdempotencyKey: "k\n"},
			Created:  t0.Add(time.Duration(i) * time.Second)}
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

// TestExportLinesRoundTripExactly: every field of an event, data bytes
// included, reads back identically from its line, and its hash still
// verifies; data with a line break keeps the file one event per line.
func TestExportLinesRoundTripExactly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, filepath.Join(dir, "src.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	want := odd()
	if _, err := src.Import(ctx, want); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	end, err := dump.Export(ctx, src, &buf, dump.ExportOptions{Source: "sqlite"})
	if err != nil {
		t.Fatal(err)
	}
	if end.Events != uint64(len(want)) {
		t.Fatalf("exported %d events, want %d", end.Events, len(want))
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != len(want)+2 {
		t.Fatalf("the export has %d lines, want %d:\n%s", n, len(want)+2, buf.Bytes())
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"data":{ "spaced" : [1, 2, 3]`)) {
		t.Fatalf("data not written as stored:\n%s", buf.Bytes())
	}
	dst, err := sqlite.Open(ctx, filepath.Join(dir, "dst.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	h, _, err := dump.Import(ctx, dst, bytes.NewReader(buf.Bytes()), dump.ImportOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if h.Source != "sqlite" || h.Head != uint64(len(want)) || h.Format != dump.Format {
		t.Fatalf("header %+v", h)
	}
	got, err := dst.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got  %+v\n want %+v", got, want)
	}
}

// TestImportRefusesBrokenFiles: a truncated file (no end line), a wrong
// header, and an end line that miscounts are refused.
func TestImportRefusesBrokenFiles(t *testing.T) {
	ctx := context.Background()
	src, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "src.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Import(ctx, odd()); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := dump.Export(ctx, src, &buf, dump.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	for _, tc := range []struct {
		name, input, want string
	}{
		{"truncated", strings.Join(lines[:4], ""), "without its end line"},
		{"no header", strings.Join(lines[1:], ""), "not a coinledger-events header"},
		{"empty", "", "no header"},
		{"miscounted end", strings.Join(lines[:3], "") + lines[len(lines)-2], "end line counts"},
		{"repeated line", lines[0] + lines[1] + lines[1], "does not follow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := dump.Import(ctx, nil, strings.NewReader(tc.input), dump.ImportOptions{CheckOnly: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("import: %v, want %q", err, tc.want)
			}
		})
	}
	// A partial export (from > 1) starts streams mid-chain: refused.
	var part bytes.Buffer
	if _, err := dump.Export(ctx, src, &part, dump.ExportOptions{From: 3}); err != nil {
		t.Fatal(err)
	}
	var ce *eventstore.ChainError
	if _, _, err := dump.Import(ctx, nil, &part, dump.ImportOptions{CheckOnly: true}); !errors.As(err, &ce) || ce.Revision != 2 {
		t.Fatalf("import of a partial export: %v", err)
	}
}
