package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
)

// TestPragmasInForce asks SQLite, on the store's own connections, which
// durability settings are in force (not which ones the DSN asks for): the
// writer must run journal_mode=wal with synchronous=FULL (2), so that an
// acknowledged append has been fsynced to the WAL; the readers must see the
// WAL. A DSN changed to synchronous(OFF) or NORMAL, or a pragma the driver
// silently ignores, fails here.
func TestPragmasInForce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "events.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// After an append too: the connection that commits is the one checked.
	if _, err := s.Append(ctx, "pragma", eventstore.Any, eventstore.EventData{Type: "t.pragma"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		conn   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"writer", s.wdb, "journal_mode", "wal"},
		{"writer", s.wdb, "synchronous", "2"}, // FULL; OFF is 0, NORMAL 1
		{"reader", s.rdb, "journal_mode", "wal"},
	}
	for _, tc := range tests {
		var got string
		if err := tc.db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("%s: PRAGMA %s: %v", tc.conn, tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("%s connection: %s = %s, want %s", tc.conn, tc.pragma, got, tc.want)
		}
	}
}
