package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
)

// DefaultMaxAppendSize is EventStoreDB's default limit on one append (its
// MaxAppendSize setting up to version 24.10).
const DefaultMaxAppendSize = 1 << 20

// Options tune the adapter. The zero value is the production default.
type Options struct {
	// MaxEventSize limits one event's data plus metadata (default eventstore.DefaultMaxEventSize).
	MaxEventSize int
	// MaxAppendSize limits one append as the server counts it: data, user
	// metadata and twice the type's length, summed over the events. It must
	// not exceed the server's MaxAppendSize setting (default DefaultMaxAppendSize).
	MaxAppendSize int
	// DedupeWindow is how many of a stream's newest events, besides the
	// append's own count, an Any or StreamExists append with caller-chosen
	// ids looks through to recognise a retried append (default 32).
	DedupeWindow int
	// BatchSize caps the events per ReadAll page and per Subscribe batch (default 512).
	BatchSize int
	// RetryMin and RetryMax bound the backoff between resubscriptions and
	// between the internal retries of a conflicted Any append (defaults 50ms and 5s).
	RetryMin, RetryMax time.Duration
	// Logger receives the client's log lines and resubscription notices (default: discarded).
	Logger *slog.Logger
	// Now is the clock for event creation times (default time.Now).
	Now func() time.Time
}

func (o *Options) setDefaults() {
	if o.MaxEventSize <= 0 {
		o.MaxEventSize = eventstore.DefaultMaxEventSize
	}
	if o.MaxAppendSize <= 0 {
		o.MaxAppendSize = DefaultMaxAppendSize
	}
	if o.DedupeWindow <= 0 {
		o.DedupeWindow = 32
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 512
	}
	if o.RetryMin <= 0 {
		o.RetryMin = 50 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	o.RetryMax = max(o.RetryMax, o.RetryMin)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is the EventStoreDB event store. It is safe for concurrent use.
type Store struct {
	opts   Options
	config esdb.Configuration
	log    *slog.Logger

	ctx    context.Context // cancelled by Close: ends every call and subscription
	cancel context.CancelFunc

	mu       sync.Mutex // guards client and the start of calls
	client   *esdb.Client
	closed   atomic.Bool
	inflight sync.WaitGroup // calls into the client
}

var _ eventstore.Store = (*Store)(nil)

// closeWait bounds how long Close waits for calls still inside the client.
const closeWait = 5 * time.Second

// New returns a store for the node or cluster in connString, e.g.
// "esdb://localhost:2113?tls=false". It does no I/O: the client connects on
// first use.
//
// Unless connString sets maxDiscoverAttempts, the client never stops
// rediscovering the node: a v4 client that gives up closes for good, and
// calls made while it was rediscovering stay blocked inside it forever. With
// an explicit limit the adapter replaces a client that gave up instead.
func New(connString string, opts Options) (*Store, error) {
	opts.setDefaults()
	config, err := parseConfig(connString, opts.Logger)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(strings.ToLower(connString), "maxdiscoverattempts=") {
		config.MaxDiscoverAttempts = math.MaxInt32
	}
	client, err := esdb.NewClient(config)
	if err != nil {
		return nil, fmt.Errorf("esdb: new client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Store{opts: opts, config: *config, log: opts.Logger, ctx: ctx, cancel: cancel, client: client}, nil
}

func parseConfig(connString string, logger *slog.Logger) (*esdb.Configuration, error) {
	config, err := esdb.ParseConnectionString(connString)
	if err != nil {
		return nil, fmt.Errorf("esdb: parse connection string: %s", redact(err.Error(), connString))
	}
	config.Logger = clientLogger(logger)
	return config, nil
}

// Open checks that the server answers a read of $all (which the
// credentials must allow), then returns a store like New. A server that
// cannot be reached is an error wrapping eventstore.ErrUnavailable. The check uses a
// client of its own that gives up after the connection string's discovery
// attempts (10 by default), so that Open fails on an unreachable server.
func Open(ctx context.Context, connString string, opts Options) (*Store, error) {
	opts.setDefaults()
	if err := probe(ctx, connString, opts.Logger); err != nil {
		return nil, fmt.Errorf("esdb: open: %w", err)
	}
	return New(connString, opts)
}

// redact removes the connection string's password from msg. It does not
// rely on url.Parse: the string may be malformed.
func redact(msg, connString string) string {
	_, rest, ok := strings.Cut(connString, "://")
	if !ok {
		return msg
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok || strings.Contains(userinfo, "/") {
		return msg
	}
	if _, pw, ok := strings.Cut(userinfo, ":"); ok && pw != "" {
		msg = strings.ReplaceAll(msg, pw, "[redacted]")
	}
	return msg
}

// probe reads the newest event of $all with a client used for nothing else.
func probe(ctx context.Context, connString string, logger *slog.Logger) error {
	config, err := parseConfig(connString, logger)
	if err != nil {
		return err
	}
	client, err := esdb.NewClient(config)
	if err != nil {
		return fmt.Errorf("esdb: new client: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// The client's only user closes it, once its call has returned.
		defer client.Close()
		rs, err := client.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Backwards, From: esdb.End{}}, 1)
		if err == nil {
			_, err = rs.Recv()
			rs.Close()
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil && !permanent(err) && ctx.Err() == nil {
			// Not reached, or not answering yet: a wait may mend it.
			err = fmt.Errorf("%w: %w", eventstore.ErrUnavailable, err)
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close ends every call and subscription (they fail with ErrClosed) and
// closes the client. Later calls fail with ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.mu.Unlock()
	s.cancel()

	drained := make(chan struct{})
	go func() { s.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(closeWait):
		// Closing the client now could panic the calls blocked inside it.
		return errors.New("esdb: close: calls still blocked in the client; left it open")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.Close()
}

// acquire returns the current client for one call; release must be called
// when the call no longer uses the client.
func (s *Store) acquire() (c *esdb.Client, release func(), err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, nil, eventstore.ErrClosed
	}
	s.inflight.Add(1)
	return s.client, s.inflight.Done, nil
}

// call runs op with the client on a goroutine of its own and returns op's
// error, or the context's error as soon as ctx ends or the store closes
// (ErrClosed): the client can block regardless of the context while it
// rediscovers the node. op's context ends when call returns.
func (s *Store) call(ctx context.Context, op func(ctx context.Context, c *esdb.Client) error) error {
	c, release, err := s.acquire()
	if err != nil {
		return err
	}
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	done := make(chan error, 1)
	go func() {
		defer release()
		err := op(opCtx, c)
		s.renew(c, err)
		done <- err
	}()
	select {
	case err = <-done:
		if err == nil {
			return nil
		}
	case <-opCtx.Done():
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.closed.Load() {
		return eventstore.ErrClosed
	}
	return err
}

// renew replaces c by a fresh client when c has given up on the server
// (after maxDiscoverAttempts failed discoveries the v4 client stays closed).
// The old client is not closed: calls may still be blocked inside it, and
// closing it would make them panic.
func (s *Store) renew(c *esdb.Client, err error) {
	var e *esdb.Error
	if err == nil || !errors.As(err, &e) || e.Code() != esdb.ErrorCodeConnectionClosed {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() || s.client != c {
		return
	}
	config := s.config
	fresh, nerr := esdb.NewClient(&config)
	if nerr != nil {
		return
	}
	s.client = fresh
	s.log.Warn("esdb client gave up on the server; replaced it", "err", err)
}
