package logging

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct{ format, level, err string }{
		{"", "", ""}, {"JSON", "Debug", ""}, {"text", "warn", ""},
		{"xml", "", `log format "xml": want text or json`},
		{"", "verbose", `log level "verbose": want debug, info, warn or error`},
	} {
		_, err := New(&bytes.Buffer{}, tc.format, tc.level)
		if (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("New(%q, %q) = %v, want %q", tc.format, tc.level, err, tc.err)
		}
	}
}

// TestContextAttrs: attributes put in a context with With are on every
// line logged with it (or a context derived from it, With adding more),
// and only there; a logger's own With attributes are kept.
func TestContextAttrs(t *testing.T) {
	var buf bytes.Buffer
	logger, _ := New(&buf, "text", "info")
	logger = logger.With("component", "api")
	ctx := With(context.Background(), slog.String("request_id", "r1"))
	inner := With(ctx, slog.String("user", "alice"))
	logger.InfoContext(inner, "one")
	logger.InfoContext(ctx, "two")
	logger.Info("three")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"component=api request_id=r1 user=alice", "component=api request_id=r1", "component=api"}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) {
			t.Errorf("line %d = %q, want it to end with %q", i, l, want[i])
		}
	}
}

// TestWatermillAtDebug: watermill's info lines go to debug, its errors
// stay errors.
func TestWatermillAtDebug(t *testing.T) {
	var buf bytes.Buffer
	logger, _ := New(&buf, "text", "info")
	w := Watermill(logger)
	w.Info("Starting handler", nil)
	if buf.Len() != 0 {
		t.Fatalf("watermill's info line shows at info: %q", buf.String())
	}
	w.Error("handler failed", nil, watermill.LogFields{"topic": "t"})
	if !strings.Contains(buf.String(), "level=ERROR") {
		t.Fatalf("watermill's error line is gone: %q", buf.String())
	}
}

// TestBuffered: lines reach the writer within the flush interval, and at
// once on Close.
func TestBuffered(t *testing.T) {
	var mu sync.Mutex
	var out bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	b := NewBuffered(w, 20*time.Millisecond)
	b.Write([]byte("one\n"))
	read := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	for deadline := time.Now().Add(5 * time.Second); read() != "one\n"; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not flushed: %q", read())
		}
	}
	slow := NewBuffered(w, time.Hour)
	slow.Write([]byte("two\n"))
	if err := slow.Close(); err != nil || read() != "one\ntwo\n" {
		t.Fatalf("Close: %v, wrote %q", err, read())
	}
	b.Close()

	// Through a logger, a warning is written at once, with what waited.
	out.Reset()
	slow = NewBuffered(w, time.Hour)
	defer slow.Close()
	logger, _ := New(slow, "text", "info")
	logger.Info("routine")
	if read() != "" {
		t.Fatalf("an info line was written at once: %q", read())
	}
	logger.Warn("attention")
	if got := read(); !strings.Contains(got, "msg=routine") || !strings.Contains(got, "msg=attention") {
		t.Fatalf("a warning was not written at once: %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
