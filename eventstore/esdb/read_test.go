package esdb_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

func TestReadAllAndHeadSkipSystemEvents(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	ctx := context.Background()
	if head, err := s.Head(ctx); err != nil || head != 0 {
		t.Fatalf("head of a fresh node (system events only): %d, %v; want 0", head, err)
	}
	stream := storetest.Stream("sys")
	a := storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.a", 0, 1)...)
	for i := 0; i < 150; i++ { // more than one backwards page
		srv.AppendRaw("$stats-node", "$statsCollected", []byte(`{}`), nil)
		srv.AppendRaw("$projections-p-result", "Result", []byte(`{}`), nil)
	}
	if head, err := s.Head(ctx); err != nil || head != a.Position {
		t.Fatalf("head %d, %v; want %d", head, err, a.Position)
	}
	if srv.Head() <= a.Position {
		t.Fatal("the system events are not after the user event")
	}
	b := storetest.MustAppend(t, s, stream, eventstore.Exact(0), storetest.Events("t.b", 1, 1)...)
	got, err := s.ReadAll(ctx, a.Position, 1)
	if err != nil || len(got) != 1 || got[0].Position != b.Position {
		t.Fatalf("read all after %d: %v %v; want the event at %d", a.Position, got, err, b.Position)
	}
	all, err := s.ReadAll(ctx, 0, 1000)
	if err != nil || len(all) != 2 {
		t.Fatalf("read all: %d events, %v; want 2", len(all), err)
	}
	if none, err := s.ReadAll(ctx, b.Position, 10); err != nil || len(none) != 0 {
		t.Fatalf("read all after the head: %d events, %v", len(none), err)
	}
	if none, err := s.ReadAll(ctx, srv.Head()+1<<20, 10); err != nil || len(none) != 0 {
		t.Fatalf("read all beyond the log: %d events, %v", len(none), err)
	}
}

func TestReadAllRejectsPositionInsideARecord(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s := MustOpen(t, srv.URL(), esdb.Options{})
	res := storetest.MustAppend(t, s, storetest.Stream("pos"), eventstore.NoStream, storetest.Events("t.p", 0, 2)...)
	_, err := s.ReadAll(context.Background(), res.Position+1, 10)
	if err == nil || errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("read all from inside a record: %v, want an invalid position error", err)
	}
	err = s.Subscribe(context.Background(), res.Position+1, func(context.Context, []eventstore.Event) error { return nil })
	if err == nil {
		t.Fatal("subscribe from inside a record succeeded")
	}
}

func TestReadLimitsAndClosedStore(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	s, err := esdb.Open(context.Background(), srv.URL(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stream := storetest.Stream("lim")
	storetest.MustAppend(t, s, stream, eventstore.NoStream, storetest.Events("t.l", 0, 3)...)
	if got, err := s.ReadStream(context.Background(), stream, 0, 0); err != nil || len(got) != 0 {
		t.Fatalf("limit 0: %d events, %v", len(got), err)
	}
	if got, err := s.ReadStream(context.Background(), stream, 1, 1); err != nil || len(got) != 1 || got[0].Revision != 1 {
		t.Fatalf("limit 1 from 1: %v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadStream(context.Background(), stream, 0, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("read stream after close: %v", err)
	}
	if _, err := s.ReadAll(context.Background(), 0, 10); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("read all after close: %v", err)
	}
	if _, err := s.Head(context.Background()); !errors.Is(err, eventstore.ErrClosed) {
		t.Fatalf("head after close: %v", err)
	}
}

func TestOpenFailsOnUnreachableServer(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	url := srv.URL() + "&maxDiscoverAttempts=2&discoveryInterval=10"
	srv.Stop()
	if _, err := esdb.Open(context.Background(), url, esdb.Options{}); err == nil {
		t.Fatal("open of a stopped server succeeded")
	}
	if _, err := esdb.New("http://not-esdb", esdb.Options{}); err == nil {
		t.Fatal("new with a bad connection string succeeded")
	}
}

func TestNewRedactsPassword(t *testing.T) {
	_, err := esdb.New("esdb://admin:s3cret-pw@host:2113,%zz?tls=false", esdb.Options{})
	if err == nil {
		t.Fatal("the malformed connection string was accepted")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error shows the password: %v", err)
	}
}
