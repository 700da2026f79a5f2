package esdb

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/google/uuid"
)

func TestPositionMapping(t *testing.T) {
	if got := position(esdb.Position{Commit: 1234, Prepare: 1234}); got != 1234 {
		t.Fatalf("position %d, want the commit position", got)
	}
	// The 20.6.0 release candidate reported the append's start as prepare position.
	if got := position(esdb.Position{Commit: 2000, Prepare: 1800}); got != 2000 {
		t.Fatalf("position %d, want the commit position", got)
	}
	// Stream reads before 22.10 carry no $all position.
	if got := position(esdb.Position{Commit: math.MaxUint64, Prepare: math.MaxUint64}); got != 0 {
		t.Fatalf("unknown position mapped to %d, want 0", got)
	}
	if p := resumeAt(1234); p.Commit != 1234 || p.Prepare != 1234 {
		t.Fatalf("resume at %+v", p)
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	e := eventstore.Event{
		ID: uuid.New(), Stream: "wallet-a", Revision: 7, Type: "t.x", Data: json.RawMessage(`{}`),
		Metadata: eventstore.Metadata{CorrelationID: "c", CausationID: "d", Actor: "adapter:x", SchemaVersion: 2, IdempotencyKey: "k"},
		Created:  time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC),
	}
	e.Hash = eventstore.ChainHash(eventstore.Hash{1}, e)
	meta, err := encodeMetadata(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := toEvent(&esdb.RecordedEvent{
		EventID: e.ID, EventType: e.Type, StreamID: e.Stream, EventNumber: e.Revision,
		Position: esdb.Position{Commit: 99, Prepare: 99}, Data: e.Data, UserMetadata: meta,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Position = 99
	if got.String() != e.String() || got.Hash != e.Hash || got.Metadata != e.Metadata || !got.Created.Equal(e.Created) {
		t.Fatalf("round trip %+v, want %+v", got, e)
	}
}

func TestIsSystem(t *testing.T) {
	for _, tc := range []struct {
		stream, typ string
		want        bool
	}{
		{"wallet-a", "t.x", false},
		{"$ce-wallet", "$>", true},
		{"$projections-x-result", "Result", true},
		{"wallet-a", "$metadata", true},
	} {
		if got := isSystem(&esdb.RecordedEvent{StreamID: tc.stream, EventType: tc.typ}); got != tc.want {
			t.Errorf("isSystem(%s, %s) = %v", tc.stream, tc.typ, got)
		}
	}
}
