package esdbtest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newClient(t *testing.T, srv *esdbtest.Server) *esdb.Client {
	t.Helper()
	config, err := esdb.ParseConnectionString(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	config.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func events(typ string, ids ...uuid.UUID) []esdb.EventData {
	out := make([]esdb.EventData, len(ids))
	for i, id := range ids {
		out[i] = esdb.EventData{EventID: id, EventType: typ, ContentType: esdb.ContentTypeJson, Data: []byte(`{}`)}
	}
	return out
}

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.New()
	}
	return out
}

// readAll returns a function draining a read: readAll(t)(c.ReadAll(...)).
func readAll(t *testing.T) func(*esdb.ReadStream, error) []*esdb.RecordedEvent {
	return func(rs *esdb.ReadStream, err error) []*esdb.RecordedEvent {
		t.Helper()
		return drain(t, rs, err)
	}
}

func drain(t *testing.T, rs *esdb.ReadStream, err error) []*esdb.RecordedEvent {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []*esdb.RecordedEvent
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

func isWrongVersion(err error) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == esdb.ErrorCodeWrongExpectedVersion
}

func TestAppendExpectedRevisionsAndIdempotence(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	first := ids(3)
	r1, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, events("t", first...)...)
	if err != nil {
		t.Fatal(err)
	}
	if r1.NextExpectedVersion != 2 || r1.CommitPosition == 0 || r1.CommitPosition != r1.PreparePosition {
		t.Fatalf("first append %+v", r1)
	}
	// Strong idempotency: same ids right after the expected revision.
	again, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}}, events("t", first...)...)
	if err != nil || *again != *r1 {
		t.Fatalf("repeat: %+v %v, want %+v", again, err, r1)
	}
	// Partly the same: wrong expected version.
	if _, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.NoStream{}},
		events("t", first[0], uuid.New())...); !isWrongVersion(err) {
		t.Fatalf("partial repeat: %v", err)
	}
	// Weak idempotency with any.
	if again, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, events("t", first[1:]...)...); err != nil || again.NextExpectedVersion != 2 {
		t.Fatalf("any repeat: %+v %v", again, err)
	}
	for _, exp := range []esdb.ExpectedRevision{esdb.Revision(5), esdb.Revision(1), esdb.NoStream{}} {
		if _, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: exp}, events("t", ids(1)...)...); !isWrongVersion(err) {
			t.Fatalf("append at %v: %v, want wrong expected version", exp, err)
		}
	}
	if _, err := c.AppendToStream(ctx, "s-2", esdb.AppendToStreamOptions{ExpectedRevision: esdb.StreamExists{}}, events("t", ids(1)...)...); !isWrongVersion(err) {
		t.Fatalf("stream exists on a new stream: %v", err)
	}
	r2, err := c.AppendToStream(ctx, "s-1", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Revision(2)}, events("t", ids(2)...)...)
	if err != nil || r2.NextExpectedVersion != 4 || r2.CommitPosition <= r1.CommitPosition {
		t.Fatalf("append at 2: %+v %v", r2, err)
	}
	got := readAll(t)(c.ReadStream(ctx, "s-1", esdb.ReadStreamOptions{}, 100))
	if len(got) != 5 {
		t.Fatalf("stream has %d events, want 5", len(got))
	}
	for i, e := range got {
		if e.EventNumber != uint64(i) || e.CreatedDate.IsZero() || time.Since(e.CreatedDate) > time.Minute {
			t.Fatalf("event %d: number %d created %v", i, e.EventNumber, e.CreatedDate)
		}
		if i > 0 && e.Position.Commit <= got[i-1].Position.Commit {
			t.Fatalf("positions %v then %v", got[i-1].Position, e.Position)
		}
	}
	if got[2].Position.Commit != r1.CommitPosition || got[0].EventID != first[0] {
		t.Fatalf("append position %d, stored %v", r1.CommitPosition, got[2].Position)
	}
}

func TestAppendTooLarge(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{MaxAppendSize: 100})
	c := newClient(t, srv)
	e := events("t", uuid.New())
	e[0].Data = []byte(`"` + strings.Repeat("x", 200) + `"`)
	_, err := c.AppendToStream(context.Background(), "big", esdb.AppendToStreamOptions{}, e...)
	if st, _ := status.FromError(errors.Unwrap(err)); st.Code() != codes.InvalidArgument {
		t.Fatalf("append too large: %v", err)
	}
}

func TestReads(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := c.AppendToStream(ctx, "r-1", esdb.AppendToStreamOptions{}, events("t", ids(2)...)...); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := c.ReadStream(ctx, "missing", esdb.ReadStreamOptions{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	_, err = rs.Recv()
	rs.Close()
	var e *esdb.Error
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("missing stream: %v", err)
	}
	back := readAll(t)(c.ReadStream(ctx, "r-1", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 2))
	if len(back) != 2 || back[0].EventNumber != 5 || back[1].EventNumber != 4 {
		t.Fatalf("backwards from end: %v", back)
	}
	fwd := readAll(t)(c.ReadStream(ctx, "r-1", esdb.ReadStreamOptions{From: esdb.Revision(4)}, 10))
	if len(fwd) != 2 || fwd[0].EventNumber != 4 {
		t.Fatalf("forwards from 4: %v", fwd)
	}

	all := readAll(t)(c.ReadAll(ctx, esdb.ReadAllOptions{}, 100))
	var user []*esdb.RecordedEvent
	for _, e := range all {
		if !strings.HasPrefix(e.StreamID, "$") {
			user = append(user, e)
		}
	}
	if len(user) != 6 || len(all) <= 6 {
		t.Fatalf("$all has %d events, %d of them user events; want system events and 6", len(all), len(user))
	}
	at := user[2].Position
	from := readAll(t)(c.ReadAll(ctx, esdb.ReadAllOptions{From: at}, 2))
	if len(from) != 2 || from[0].Position != at {
		t.Fatalf("forwards from %v starts at %v, want inclusive", at, from[0].Position)
	}
	before := readAll(t)(c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: at}, 1))
	if len(before) != 1 || before[0].Position != user[1].Position {
		t.Fatalf("backwards from %v: %v, want exclusive", at, before)
	}
	last := readAll(t)(c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1))
	if len(last) != 1 || last[0].Position != user[5].Position {
		t.Fatalf("backwards from end: %v", last)
	}
	rs, err = c.ReadAll(ctx, esdb.ReadAllOptions{From: esdb.Position{Commit: at.Commit + 1, Prepare: at.Commit + 1}}, 1)
	if err == nil {
		_, err = rs.Recv()
	}
	if st, _ := status.FromError(errors.Unwrap(err)); st.Code() != codes.InvalidArgument {
		t.Fatalf("read from inside a record: %v", err)
	}
}

func TestSubscribeToAll(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{Links: true})
	c := newClient(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.AppendToStream(ctx, "sub-1", esdb.AppendToStreamOptions{}, events("t", ids(2)...)...)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := c.SubscribeToAll(ctx, esdb.SubscribeToAllOptions{
		From:   esdb.Position{Commit: r.CommitPosition, Prepare: r.PreparePosition},
		Filter: esdb.ExcludeSystemEventsFilter(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if srv.Subscriptions() != 1 {
		t.Fatalf("%d subscriptions", srv.Subscriptions())
	}
	want := ids(3)
	if _, err := c.AppendToStream(ctx, "sub-2", esdb.AppendToStreamOptions{}, events("t", want...)...); err != nil {
		t.Fatal(err)
	}
	var got []uuid.UUID
	checkpoints, caughtUp := 0, false
	// The appends may land before the subscription's first catch-up read:
	// then they come before the caught-up message, which still follows.
	for len(got) < len(want) || !caughtUp {
		m := sub.Recv()
		switch {
		case m.EventAppeared != nil:
			e := m.EventAppeared.Event
			if strings.HasPrefix(e.EventType, "$") || e.Position.Commit <= r.CommitPosition {
				t.Fatalf("event %s@%d at %v delivered", e.StreamID, e.EventNumber, e.Position)
			}
			got = append(got, e.EventID)
		case m.CheckPointReached != nil:
			checkpoints++
		case m.CaughtUp != nil:
			caughtUp = true
		case m.SubscriptionDropped != nil:
			t.Fatal(m.SubscriptionDropped.Error)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s", i, got[i], want[i])
		}
	}
	if !caughtUp || checkpoints == 0 {
		t.Fatalf("caught up %v, %d checkpoints", caughtUp, checkpoints)
	}
	if n := srv.DropSubscriptions(); n != 1 {
		t.Fatalf("dropped %d subscriptions", n)
	}
	for {
		m := sub.Recv()
		if m.SubscriptionDropped != nil {
			if st, _ := status.FromError(m.SubscriptionDropped.Error); st.Code() != codes.Unavailable {
				t.Fatalf("dropped with %v", m.SubscriptionDropped.Error)
			}
			break
		}
	}
}

func TestStopAndRestartKeepEvents(t *testing.T) {
	srv := esdbtest.Start(t, esdbtest.Options{})
	c := newClient(t, srv)
	ctx := context.Background()
	if _, err := c.AppendToStream(ctx, "keep", esdb.AppendToStreamOptions{}, events("t", ids(1)...)...); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	c2 := newClient(t, srv)
	if got := readAll(t)(c2.ReadStream(ctx, "keep", esdb.ReadStreamOptions{}, 10)); len(got) != 1 {
		t.Fatalf("%d events after restart", len(got))
	}
}
