package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
)

// TestBenchReplaySmallLog runs bench replay over a log of 2,000 events (into
// Postgres too, when the test server is there) and checks its JSON last
// line: the event count and a positive rate for every phase.
func TestBenchReplaySmallLog(t *testing.T) {
	out := captureStdout(t, func() error {
		return benchReplay(context.Background(), []string{"-events", "2000", "-dir", t.TempDir()})
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r benchResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("last line %q: %v\n%s", lines[len(lines)-1], err, out)
	}
	if r.Scenario != "replay" || r.Extra["events"] != 2000 {
		t.Fatalf("result %+v, want scenario replay over 2000 events\n%s", r, out)
	}
	want := []string{"rebuild_sqlite_events_per_sec", "export_events_per_sec", "import_sqlite_events_per_sec"}
	if os.Getenv("COINLEDGER_TEST_POSTGRES_URL") != "" {
		want = append(want, "rebuild_postgres_events_per_sec")
	}
	for _, k := range want {
		if r.Extra[k] <= 0 {
			t.Errorf("%s = %v, want > 0\n%s", k, r.Extra[k], out)
		}
	}
	if r.OpsPerSec != r.Extra["rebuild_sqlite_events_per_sec"] {
		t.Errorf("ops_per_sec %v is not the SQLite rebuild rate %v", r.OpsPerSec, r.Extra["rebuild_sqlite_events_per_sec"])
	}
}

// captureStdout runs fn with os.Stdout redirected and returns what it wrote.
func captureStdout(t *testing.T, fn func() error) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, r); close(done) }()
	ferr := fn()
	os.Stdout = saved
	w.Close()
	<-done
	if ferr != nil {
		t.Fatalf("%v\n%s", ferr, buf.String())
	}
	return buf.String()
}
