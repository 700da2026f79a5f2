package esdb_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	client "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// rawEvents reads stream with the official client directly.
func rawEvents(t *testing.T, url, stream string) []*client.RecordedEvent {
	t.Helper()
	config, err := client.ParseConnectionString(url)
	if err != nil {
		t.Fatal(err)
	}
	config.Logger = client.NoopLogging()
	c, err := client.NewClient(config)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs, err := c.ReadStream(context.Background(), stream, client.ReadStreamOptions{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []*client.RecordedEvent
	for {
		e, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Event)
	}
}

func TestAppendStoresCreatedHashAndMetadata(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	clock := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.FixedZone("CEST", 2*3600))
	s := MustOpen(t, srv.URL(), esdb.Options{Now: func() time.Time { return clock }})
	stream := storetest.Stream("meta")
	meta := eventstore.Metadata{CorrelationID: "corr", CausationID: "cause", Actor: "user:bob", SchemaVersion: 3, IdempotencyKey: "k-" + stream}
	storetest.MustAppend(t, s, stream, eventstore.NoStream, eventstore.EventData{Type: "t.m", Data: json.RawMessage(`{"x": 1}`), Metadata: meta})

	got, err := s.ReadStream(context.Background(), stream, 0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("read: %d events, %v", len(got), err)
	}
	e := got[0]
	want := time.Date(2024, 5, 6, 5, 8, 9, 123456000, time.UTC)
	if !e.Created.Equal(want) || e.Created.Location() != time.UTC {
		t.Fatalf("created %v, want %v", e.Created, want)
	}
	if e.Metadata != meta || e.ID != eventstore.EventID(stream, 0, eventstore.EventData{Type: "t.m", Data: json.RawMessage(`{"x":1}`), Metadata: meta}) {
		t.Fatalf("metadata %+v id %s", e.Metadata, e.ID)
	}
	if err := eventstore.NewVerifier().Verify(e); err != nil {
		t.Fatal(err)
	}

	raw := rawEvents(t, srv.URL(), stream)[0]
	var m map[string]any
	if err := json.Unmarshal(raw.UserMetadata, &m); err != nil {
		t.Fatalf("user metadata %s: %v", raw.UserMetadata, err)
	}
	wantMeta := map[string]any{
		"$correlationId": "corr", "$causationId": "cause", "actor": "user:bob", "schemaVersion": 3.0,
		"idempotencyKey": meta.IdempotencyKey, "created": "2024-05-06T05:08:09.123456Z", "hash": e.Hash.String(),
	}
	for k, v := range wantMeta {
		if m[k] != v {
			t.Errorf("user metadata %s = %v, want %v", k, m[k], v)
		}
	}
	if raw.ContentType != "application/json" || raw.EventType != "t.m" || string(raw.Data) != `{"x":1}` {
		t.Fatalf("stored as %q %q %s", raw.ContentType, raw.EventType, raw.Data)
	}
}

func TestAppendErrors(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{MaxAppendSize: 4000})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	ctx := context.Background()
	stream := storetest.Stream("err")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.e", 0, 3)...)

	// Refused before sending: the adapter sees the stream is behind.
	_, err := s.Append(ctx, stream, eventstore.Exact(5), storetest.Events("t.e", 3, 1)...)
	if !errors.Is(err, eventstore.ErrConflict) || !strings.Contains(err.Error(), "append "+stream+"@5") {
		t.Fatalf("stream behind: %v", err)
	}
	// Refused by the server: the stream is ahead and these are new events.
	_, err = s.Append(ctx, stream, eventstore.Exact(0), storetest.Events("t.e", 3, 1)...)
	if !errors.Is(err, eventstore.ErrConflict) || !strings.Contains(err.Error(), "expecting '0' but got '2'") {
		t.Fatalf("stream ahead: %v", err)
	}
	_, err = s.Append(ctx, stream, eventstore.NoStream, storetest.Events("t.e", 3, 1)...)
	if !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("no stream: %v", err)
	}

	invalid := map[string]func() error{
		"system stream": func() error {
			_, err := s.Append(ctx, "$"+stream, eventstore.Any, storetest.Events("t.e", 0, 1)...)
			return err
		},
		"system type": func() error {
			_, err := s.Append(ctx, stream, eventstore.Any, storetest.Events("$t.e", 0, 1)...)
			return err
		},
		"larger than the server takes": func() error {
			// The adapter's own limit is the default 1 MiB; the double's is 4000 bytes.
			_, err := s.Append(ctx, stream, eventstore.Exact(2), eventstore.EventData{Type: "t.big", Data: json.RawMessage(`"` + strings.Repeat("x", 5000) + `"`)})
			return err
		},
	}
	for name, fn := range invalid {
		if err := fn(); !errors.Is(err, eventstore.ErrInvalidEvent) {
			t.Errorf("%s: %v, want ErrInvalidEvent", name, err)
		}
	}
	small := MustOpen(t, srv.URL(), esdb.Options{MaxAppendSize: 1000})
	if _, err := small.Append(ctx, stream, eventstore.Exact(2), storetest.Events("t.e", 3, 20)...); !errors.Is(err, eventstore.ErrInvalidEvent) {
		t.Fatalf("over MaxAppendSize: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cancelled, stream, eventstore.Exact(2), storetest.Events("t.e", 3, 1)...); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if n := len(rawEvents(t, srv.URL(), stream)); n != 3 {
		t.Fatalf("stream has %d events after failed appends, want 3", n)
	}
}

func TestAppendRecognisesRetries(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := MustOpen(t, srv.URL(), esdb.Options{DedupeWindow: 4})
	stream := storetest.Stream("retry")
	keyed := func(key string, start int) []eventstore.EventData {
		events := storetest.Events("t.k", start, 2)
		for i := range events {
			events[i].Metadata.IdempotencyKey = key
		}
		return events
	}
	first := storetest.MustAppend(t, s, stream, eventstore.Any, keyed("a", 0)...)
	storetest.MustAppend(t, s, stream, eventstore.Any, storetest.Events("t.o", 2, 3)...)
	first.Retry = true // as the retries are answered

	// Any: found among the newest 2+4 events.
	if again := storetest.MustAppend(t, s, stream, eventstore.Any, keyed("a", 0)...); again != first {
		t.Fatalf("Any retry %+v, original %+v", again, first)
	}
	// NoStream: recognised where the original went, however far back.
	storetest.MustAppend(t, s, stream, eventstore.Any, storetest.Events("t.o", 5, 10)...)
	if again := storetest.MustAppend(t, s, stream, eventstore.NoStream, keyed("a", 0)...); again != first {
		t.Fatalf("NoStream retry %+v, original %+v", again, first)
	}
	if n := len(rawEvents(t, srv.URL(), stream)); n != 15 {
		t.Fatalf("stream has %d events, want 15", n)
	}
	// Beyond the window an Any append is taken as new, as EventStoreDB
	// forgets old ids too.
	storetest.MustAppend(t, s, stream, eventstore.Any, keyed("a", 0)...)
	if n := len(rawEvents(t, srv.URL(), stream)); n != 17 {
		t.Fatalf("stream has %d events, want 17", n)
	}
}

func TestHashChainDetectsTampering(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{Links: true})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	stream := storetest.Stream("tamper")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.t", 0, 2)...)
	storetest.MustAppend(t, s, stream, eventstore.Any, storetest.Events("t.t", 2, 2)...)
	events, err := s.ReadStream(context.Background(), stream, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	v := eventstore.NewVerifier()
	for _, e := range events {
		if err := v.Verify(e); err != nil {
			t.Fatal(err)
		}
	}
	// Another writer appends an event with a copied hash and other data.
	raw := rawEvents(t, srv.URL(), stream)[3]
	srv.AppendRaw(stream, "t.t", []byte(`{"n":4}`), raw.UserMetadata)
	forged, err := s.ReadStream(context.Background(), stream, 4, 1)
	if err != nil || len(forged) != 1 {
		t.Fatalf("read forged: %v", err)
	}
	var ce *eventstore.ChainError
	if err := v.Verify(forged[0]); !errors.As(err, &ce) || ce.Revision != 4 {
		t.Fatalf("forged event: %v, want a ChainError at 4", err)
	}
	// An event without our metadata reads with a zero hash, which fails too.
	other := storetest.Stream("foreign")
	srv.AppendRaw(other, "t.f", []byte(`{}`), nil)
	foreign, err := s.ReadStream(context.Background(), other, 0, 1)
	if err != nil || len(foreign) != 1 || foreign[0].Created.IsZero() {
		t.Fatalf("read foreign: %+v %v", foreign, err)
	}
	if err := eventstore.NewVerifier().Verify(foreign[0]); !errors.As(err, &ce) {
		t.Fatalf("foreign event: %v, want a ChainError", err)
	}
	// Malformed metadata is an error, not a silent zero.
	bad := storetest.Stream("bad")
	srv.AppendRaw(bad, "t.b", []byte(`{}`), []byte(`{"created": 5}`))
	if _, err := s.ReadStream(context.Background(), bad, 0, 1); err == nil {
		t.Fatal("read of malformed metadata succeeded")
	}
}
