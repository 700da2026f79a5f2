// Package esdbtest is an in-process test double of an EventStoreDB node: the
// Streams gRPC service (Append, Read of a stream and of $all, $all
// subscriptions with server-side filters) and ServerFeatures, held in memory
// and served without TLS on 127.0.0.1. The official Go client
// (EventStore-Client-Go/v4) talks to it as to a single node:
//
//	srv := esdbtest.Start(t, esdbtest.Options{})
//	client, _ := esdb.ParseConnectionString(srv.URL())
//
// It mirrors the server's observable behaviour as read from KurrentDB's
// source (Streams.Append/Read, IndexWriter.CheckCommit, AllReader and the
// $all subscription enumerators):
//
//   - Every event is its own log record with a log position; commit and
//     prepare position are both that position, as for every event written
//     through gRPC since 20.6.1. Positions are sparse (they advance by the
//     record's size), start after a non-event epoch record at 0, and a few
//     system events ("$"-prefixed streams and types) are written at start.
//   - Append checks the expected revision and deduplicates by event id: for an
//     exact revision or no-stream that lies behind the stream, the events must
//     be exactly the stream's events at that place (strong idempotency), for
//     any and stream-exists the ids are looked up in the stream (weak
//     idempotency; the server only consults a cache of recent ids). A
//     repeated append answers with the original revision and position and
//     writes nothing; a partial repeat is a wrong expected version.
//   - Reading $all forwards from a position includes the event at it,
//     backwards excludes it; a position inside a record is an invalid
//     position (InvalidArgument). A $all subscription starts after its
//     position, confirms first, sends a checkpoint and "caught up" when it
//     reaches the end (checkpoints also every window×multiplier events
//     considered by a filter), then live events.
//   - Every event carries "type", "content-type" and "created" (100 ns ticks
//     since the Unix epoch) in its system metadata.
//
// Not supported: stream subscriptions, Delete, Tombstone, BatchAppend,
// persistent subscriptions, projections, gossip, links resolution,
// authentication and TLS.
package esdbtest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"google.golang.org/grpc"
)

// DefaultMaxAppendSize is EventStoreDB's default limit on the size of one
// append up to version 24.10 (1 MiB).
const DefaultMaxAppendSize = 1 << 20

// Options tune the double. The zero value behaves like a fresh single node.
type Options struct {
	// MaxAppendSize limits one append: the sum over its events of data,
	// metadata and twice the type's length, as the server counts (default
	// DefaultMaxAppendSize).
	MaxAppendSize int
	// Links makes every appended user event followed by a "$>" link event in
	// the "$ce-<category>" stream, as the server's system projections do, so
	// that system events are interleaved with user events in $all.
	Links bool
	// Now is the server clock for the "created" metadata (default time.Now).
	Now func() time.Time
	// Version is the server version reported by ServerFeatures (default "24.10.0").
	Version string
}

func (o *Options) setDefaults() {
	if o.MaxAppendSize <= 0 {
		o.MaxAppendSize = DefaultMaxAppendSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "24.10.0"
	}
}

// Server is a running test double. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *memlog
	addr string

	mu      sync.Mutex
	grpc    *grpc.Server
	serving chan struct{} // closed when the current grpc server stops
	subs    map[*subscription]struct{}
}

// Start starts a double on 127.0.0.1 with a free port and stops it when the
// test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := Listen("127.0.0.1:0", opts)
	if err != nil {
		tb.Fatalf("esdbtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Listen starts a double on addr.
func Listen(addr string, opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{opts: opts, log: newMemlog(opts), subs: make(map[*subscription]struct{})}
	s.log.seed()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	return s, nil
}

func (s *Server) serve(lis net.Listener) {
	g := grpc.NewServer()
	api.RegisterStreamsServer(g, &streams{s: s})
	serverfeatures.RegisterServerFeaturesServer(g, &features{version: s.opts.Version})
	done := make(chan struct{})
	s.mu.Lock()
	s.grpc, s.serving = g, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = g.Serve(lis) // returns when stopped
	}()
}

// Addr is the host:port the double listens on.
func (s *Server) Addr() string { return s.addr }

// URL is the connection string for the official client.
func (s *Server) URL() string { return "esdb://" + s.addr + "?tls=false" }

// Stop stops serving, as a crashed or restarting node: open calls and
// subscriptions fail with Unavailable and new connections are refused.
// The stored events are kept for Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	g, done := s.grpc, s.serving
	s.grpc = nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	g.Stop()
	<-done
}

// Restart serves again on the same address with the same events.
func (s *Server) Restart() error {
	s.mu.Lock()
	running := s.grpc != nil
	s.mu.Unlock()
	if running {
		return nil
	}
	lis, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("restart on %s: %w", s.addr, err)
	}
	s.serve(lis)
	return nil
}

// Close stops the double for good.
func (s *Server) Close() { s.Stop() }

// DropSubscriptions ends every live $all subscription with Unavailable, as
// when the node drops a client, and returns how many it dropped.
func (s *Server) DropSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sub := range s.subs {
		if sub.drop() {
			n++
		}
	}
	return n
}

// Subscriptions returns the number of open $all subscriptions.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

func (s *Server) addSub(sub *subscription) {
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
}

func (s *Server) removeSub(sub *subscription) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

// AppendRaw writes one event without any checks, as another writer of the
// database would (system events, events in "$" streams) and returns its
// position.
func (s *Server) AppendRaw(stream, eventType string, data, metadata []byte) uint64 {
	return s.log.appendRaw(stream, eventType, data, metadata)
}

// Tamper rewrites the log as someone with write access to the node's
// database files would: edit gets every record in log order (the
// server's own included) and returns the new log, whose records are put in
// order of Position (which must be unique) and indexed by stream and
// revision as given. Nothing is checked: revisions may skip, ids repeat.
// Open subscriptions go on after the position they have sent: they are
// woken for records added beyond it but not told of records changed
// before it.
func (s *Server) Tamper(edit func([]Record) []Record) { s.log.tamper(edit) }

// Head returns the log position of the newest record (events included, of any kind).
func (s *Server) Head() uint64 { return s.log.head() }
