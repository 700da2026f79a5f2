package storetest

import (
	"context"
	"reflect"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
)

// RunSnapshots is the conformance suite of eventstore.SnapshotStore: every
// implementation runs it against a fresh store.
func RunSnapshots(t *testing.T, store eventstore.SnapshotStore) {
	ctx := context.Background()
	if s, ok, err := store.Load(ctx, "none"); err != nil || ok {
		t.Fatalf("missing snapshot: %+v, %v, %v; want not found, no error", s, ok, err)
	}
	first := eventstore.Snapshot{Stream: "s-1", Version: 999, Position: 1234, Schema: "v1", Data: []byte(`{"n":1}`)}
	first.Hash[0], first.Hash[31] = 0xab, 0xcd
	other := eventstore.Snapshot{Stream: "s-2", Version: 4, Position: 7, Schema: "v1", Data: []byte(`{"n":2}`)}
	for _, s := range []eventstore.Snapshot{first, first, other} { // saving twice is harmless
		if err := store.Save(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	load := func(stream string) eventstore.Snapshot {
		t.Helper()
		s, ok, err := store.Load(ctx, stream)
		if err != nil || !ok {
			t.Fatalf("load %s: %v, %v", stream, ok, err)
		}
		return s
	}
	if got := load("s-1"); !reflect.DeepEqual(got, first) {
		t.Fatalf("loaded %+v, saved %+v", got, first)
	}
	got := load("s-2")
	if !reflect.DeepEqual(got, other) {
		t.Fatalf("loaded %+v, saved %+v", got, other)
	}
	got.Data[0] = 'x' // the caller owns what it loaded
	if again := load("s-2"); !reflect.DeepEqual(again, other) {
		t.Fatalf("a loaded snapshot's data aliases the store's: %q", again.Data)
	}
	// Save replaces, whatever the versions.
	older := eventstore.Snapshot{Stream: "s-1", Version: 10, Position: 11, Schema: "v2", Data: []byte(`{}`)}
	if err := store.Save(ctx, older); err != nil {
		t.Fatal(err)
	}
	if got := load("s-1"); !reflect.DeepEqual(got, older) {
		t.Fatalf("after replacing: %+v, want %+v", got, older)
	}
}
