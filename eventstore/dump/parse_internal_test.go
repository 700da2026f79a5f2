package dump

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

// TestLineParserAgreesWithEncodingJSON: every line the fast parser takes
// decodes to the same event as with encoding/json, and the lines it must
// leave to encoding/json (escapes, other field orders, data_text, the end
// line, malformed data) are left.
func TestLineParserAgreesWithEncodingJSON(t *testing.T) {
	created := time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)
	plain := eventstore.Event{ID: uuid.MustParse("0b5c2f7e-4c1d-4b8e-9a57-1f2e3d4c5b6a"), Stream: "wallet-w1", Revision: 7,
		Position: 12, Type: "ledger.funds_transferred", Data: json.RawMessage(`{"id":"t-1","metadata":{"x":"},\"}"},"n":[1,{"a":null}]}`),
		Metadata: eventstore.Metadata{CorrelationID: "c1", Actor: "user:ü", SchemaVersion: 2, IdempotencyKey: "k1"}, Created: created}
	plain.Hash = eventstore.ChainHash(eventstore.Hash{}, plain)
	bare := plain
	bare.Metadata = eventstore.Metadata{}
	noCorrelation := plain
	noCorrelation.Metadata.CorrelationID = ""
	escaped := plain
	escaped.Stream = "wallet-\"q\""
	newline := plain
	newline.Data = json.RawMessage("{\"a\":\n1}")
	negative := plain
	negative.Metadata = eventstore.Metadata{SchemaVersion: -3}

	lineOf := func(e eventstore.Event) string { return strings.TrimSuffix(string(AppendEvent(nil, e)), "\n") }
	for _, c := range []struct {
		name string
		line string
		fast bool
	}{
		{"plain", lineOf(plain), true},
		{"no metadata", lineOf(bare), true},
		{"metadata from the second field", lineOf(noCorrelation), true},
		{"negative schema version", lineOf(negative), true},
		{"escaped stream", lineOf(escaped), false},
		{"data_text", lineOf(newline), false},
		{"other field order", strings.Replace(lineOf(plain), `{"stream":"wallet-w1","revision":7,`, `{"revision":7,"stream":"wallet-w1",`, 1), false},
		{"extra field", strings.Replace(lineOf(plain), `"}`, `","extra":1}`, 1), false},
		{"invalid data", strings.Replace(lineOf(plain), `"n":[1,`, `"n":[1,,`, 1), false},
		{"leading zero", strings.Replace(lineOf(plain), `"revision":7`, `"revision":07`, 1), false},
		{"carriage return", lineOf(plain) + "\r", false},
		{"end line", `{"end":{"events":1,"last_position":12}}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got eventstore.Event
			fast := newLineParser().parse([]byte(c.line), &got)
			if fast != c.fast {
				t.Fatalf("fast path taken: %v, want %v\n%s", fast, c.fast, c.line)
			}
			if !fast {
				return
			}
			var l line
			if err := json.Unmarshal([]byte(c.line), &l); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			want := eventstore.Event{ID: l.ID, Stream: l.Stream, Revision: l.Revision, Position: l.Position,
				Type: l.Type, Data: l.Data, Metadata: l.Metadata, Created: l.Created.UTC(), Hash: l.Hash}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast parser:\n%+v\nencoding/json:\n%+v", got, want)
			}
		})
	}
}

// FuzzLineParser: whatever line an import file holds, the fast parser
// either leaves it to encoding/json or decodes it exactly as encoding/json
// does; it never panics.
func FuzzLineParser(f *testing.F) {
	e := eventstore.Event{ID: uuid.MustParse("0b5c2f7e-4c1d-4b8e-9a57-1f2e3d4c5b6a"), Stream: "wallet-w1", Revision: 7,
		Position: 12, Type: "ledger.funds_transferred", Data: json.RawMessage(`{"a":[1,{"b":null}]}`),
		Metadata: eventstore.Metadata{CorrelationID: "c1", Actor: "user:a", SchemaVersion: 2, IdempotencyKey: "k1"},
		Created:  time.Date(2026, 3, 4, 5, 6, 7, 891011000, time.UTC)}
	e.Hash = eventstore.ChainHash(eventstore.Hash{}, e)
	f.Add(AppendEvent(nil, e))
	e.Metadata = eventstore.Metadata{}
	f.Add(AppendEvent(nil, e))
	f.Add([]byte(`{"end":{"events":1,"last_position":12}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		b = []byte(strings.TrimSuffix(string(b), "\n"))
		var got eventstore.Event
		if !newLineParser().parse(b, &got) {
			return
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("fast parser took %q, encoding/json refuses it: %v", b, err)
		}
		want := eventstore.Event{ID: l.ID, Stream: l.Stream, Revision: l.Revision, Position: l.Position,
			Type: l.Type, Data: l.Data, Metadata: l.Metadata, Created: l.Created.UTC(), Hash: l.Hash}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fast parser\n%+v\nencoding/json\n%+v", b, got, want)
		}
	})
}
