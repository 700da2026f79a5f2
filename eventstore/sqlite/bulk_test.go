package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/google/uuid"
)

// TestBulkImportEndsDurableInTheDatabaseFile: a bulk import refuses a
// store that holds events; into an empty one its finish leaves every
// imported event in the database file itself (the WAL checkpointed and
// truncated), where a reopened store reads them, hash chains intact, and
// appends go on after them.
func TestBulkImportEndsDurableInTheDatabaseFile(t *testing.T) {
	ctx := context.Background()
	used := open(t, sqlite.Options{})
	if _, err := used.Append(ctx, "s", eventstore.Any, eventstore.EventData{Type: "t", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := used.BeginBulk(ctx); err == nil {
		t.Fatal("BeginBulk on a store with events: no error")
	}

	path := filepath.Join(t.TempDir(), "events.db")
	s, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	finish, err := s.BeginBulk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var events []eventstore.Event
	var prev eventstore.Hash
	for i := range 3000 {
		e := eventstore.Event{ID: uuid.New(), Stream: "wallet-a", Revision: uint64(i), Type: "t",
			Data: []byte(`{"n":1}`), Created: time.Date(2026, 1, 1, 0, 0, 0, i*1000, time.UTC)}
		e.Hash = eventstore.ChainHash(prev, e)
		prev = e.Hash
		events = append(events, e)
	}
	for i := 0; i < len(events); i += 1000 {
		if _, err := s.Import(ctx, events[i:i+1000]); err != nil {
			t.Fatal(err)
		}
	}
	if err := finish(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path + "-wal"); err == nil && st.Size() != 0 {
		t.Errorf("after finish the WAL holds %d bytes, want it checkpointed and truncated", st.Size())
	}
	if _, err := s.Append(ctx, "wallet-a", eventstore.ExpectRevision(3000), eventstore.EventData{Type: "t", Data: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.ReadAll(ctx, 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3001 {
		t.Fatalf("reopened store holds %d events, want 3001", len(got))
	}
	v := eventstore.NewVerifier()
	for _, e := range got {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
}
