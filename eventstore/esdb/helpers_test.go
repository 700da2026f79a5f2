package esdb_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
)

func number(t testing.TB, e eventstore.Event) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("data of %s: %v", e, err)
	}
	return v.N
}

// testLogger writes the store's log lines to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
