package eventstore

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// TestPrecheckAgreesWithPrepare: for JSON data (all the codec makes),
// precheck refuses exactly the events Prepare refuses, with ErrInvalidEvent.
func TestPrecheckAgreesWithPrepare(t *testing.T) {
	const limit = 64
	ev := func(typ, data string) EventData { return EventData{Type: typ, Data: []byte(data)} }
	id := uuid.New()
	cases := map[string]struct {
		stream string
		events []EventData
	}{
		"plain":                  {"s", []EventData{ev("t", `{"a":1}`), ev("t", `{}`)}},
		"empty data":             {"s", []EventData{ev("t", ``)}},
		"no events":              {"s", nil},
		"empty stream":           {"", []EventData{ev("t", `{}`)}},
		"system stream":          {"$s", []EventData{ev("t", `{}`)}},
		"long stream":            {strings.Repeat("s", 256), []EventData{ev("t", `{}`)}},
		"empty type":             {"s", []EventData{ev("t", `{}`), ev("", `{}`)}},
		"system type":            {"s", []EventData{ev("$t", `{}`)}},
		"at the limit":           {"s", []EventData{ev("t", `{"a":"`+strings.Repeat("x", limit-8)+`"}`)}},
		"over the limit":         {"s", []EventData{ev("t", `{"a":"`+strings.Repeat("x", limit-7)+`"}`)}},
		"fits once compacted":    {"s", []EventData{ev("t", `{"a":   `+strings.Repeat(" ", limit)+`1}`)}},
		"over with metadata":     {"s", []EventData{{Type: "t", Data: []byte(`{}`), Metadata: Metadata{Actor: strings.Repeat("a", limit-1)}}}},
		"at the limit with meta": {"s", []EventData{{Type: "t", Data: []byte(`{}`), Metadata: Metadata{Actor: strings.Repeat("a", limit-2)}}}},
		"ids given":              {"s", []EventData{{ID: uuid.New(), Type: "t"}, {ID: uuid.New(), Type: "t"}}},
		"one id twice":           {"s", []EventData{{ID: id, Type: "t"}, {ID: id, Type: "t"}}},
	}
	for name, c := range cases {
		_, want := Prepare(c.stream, c.events, limit)
		got := precheck(c.stream, c.events, limit)
		if (got == nil) != (want == nil) || got != nil && !errors.Is(got, ErrInvalidEvent) {
			t.Errorf("%s: precheck %v, Prepare %v", name, got, want)
		}
	}
}
