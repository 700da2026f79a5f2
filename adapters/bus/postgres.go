package bus

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinledger/coinledger/internal/logging"
	"github.com/coinledger/coinledger/internal/pg"
)

// The Postgres bus is watermill-sql with its default PostgreSQL schema and
// offsets adapters: one table of messages per topic ("watermill_<topic>")
// and one of consumer-group offsets ("watermill_offsets_<topic>").
//
// How it acknowledges. A subscriber opens a REPEATABLE READ transaction,
// locks its consumer group's offsets row (SELECT ... FOR UPDATE), reads the
// next message, hands it to the handler and waits; on ack it advances the
// offset and commits. So, per topic, one subscriber of the group across all
// instances holds the message at a time (the others wait on the lock, then
// retry on the serialization failure watermill treats as a deadlock), and
// a message is acked once. A crash, a lost connection or a cancelled
// subscription before the commit rolls the offset back (or leaves it) and
// another subscriber gets the message again: the handler's effect must be
// idempotent, and ours are (walletnotify: the ledger decides on the
// deposit's state, keyed by txid:vout; price ticks: by source, pair, time).
// The batch size is 1, so a crash redelivers one message, not a hundred.
//
// The trap: a nack does not end that transaction. watermill-sql sleeps
// ResendInterval and hands the same message to the handler again inside
// the same transaction, whose offset row stays locked. A handler that
// wrote through the transaction (sql.TxFromContext) before failing would
// see those writes committed together with its retry's (one effect twice),
// and a failed statement would abort the transaction so that every resend
// and finally the ack fail ("current transaction is aborted"), redelivering
// forever. We chose a savepoint over a non-transactional offsets adapter:
// the offsets row lock is what makes one consumer group share a topic
// exactly-once across instances, and it only holds inside a transaction.
// Every delivery runs in a savepoint of the subscriber's transaction
// (savepoints below): an ack releases it (the handler's writes commit with
// the offset, exactly once), a nack rolls back to it, so each resend starts
// from the state before the first attempt. Our handlers write elsewhere
// (the event store), so for them the savepoint is a guard of the contract,
// not a fix; what they do need is below.
//
// Costs and limits, by design of the default schema: the open transaction
// of a subscriber holds back pg_snapshot_xmin, and the subscribers only read
// messages of transactions older than it, so while one handler runs, the
// messages published after it began wait on every topic. Keep handlers
// short; AckDeadline bounds them (the subscriber gives the message up and
// it is redelivered). Message tables are not pruned yet.

// openPostgres opens the watermill-sql bus on the database url names.
func openPostgres(ctx context.Context, url string, opts Options) (*Bus, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: do not echo it.
		return nil, errors.New("open bus: cannot parse the Postgres URL")
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if err := pg.CreateSchema(ctx, cfg.ConnConfig); err != nil {
		return nil, fmt.Errorf("open bus on %s: %w", where, err)
	}
	// Each subscription holds a connection (its transaction) while its
	// handler runs, and a handler may publish (the poison queue): the pool
	// must have room for all of them at once, or the handlers wait forever
	// for a connection.
	cfg.MaxConns = max(cfg.MaxConns, int32(len(opts.Topics)+4))
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open bus on %s: %w", where, err)
	}
	schema := wsql.DefaultPostgreSQLSchema{SubscribeBatchSize: 1}
	offsets := wsql.DefaultPostgreSQLOffsetsAdapter{}
	if err := migrate(ctx, pool, schema, offsets, opts); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open bus on %s: %w", where, err)
	}
	logger := logging.Watermill(opts.Logger)
	db := serialized{wsql.BeginnerFromPgx(pool)}
	// Tables come from migrate only: AutoInitializeSchema and
	// InitializeSchema stay off.
	pub, err := wsql.NewPublisher(db, wsql.PublisherConfig{SchemaAdapter: schema}, logger)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open bus: %w", err)
	}
	deadline := opts.AckDeadline
	sub, err := wsql.NewSubscriber(db, wsql.SubscriberConfig{
		ConsumerGroup:  opts.ConsumerGroup,
		AckDeadline:    &deadline,
		PollInterval:   opts.PollInterval,
		ResendInterval: opts.PollInterval,
		RetryInterval:  opts.PollInterval,
		BackoffManager: quietOnShutdown{wsql.NewDefaultBackoffManager(opts.PollInterval, opts.PollInterval)},
		SchemaAdapter:  schema,
		OffsetsAdapter: offsets,
	}, logger)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open bus: %w", err)
	}
	return &Bus{kind: KindPostgres, topics: opts.Topics, pub: pub,
		sub: savepoints{sub: sub, log: opts.Logger},
		close: func() error {
			err := errors.Join(sub.Close(), pub.Close())
			pool.Close()
			return err
		}}, nil
}

// quietOnShutdown is watermill-sql's backoff without its error log for a
// query cut short by the subscription ending (the service stopping).
type quietOnShutdown struct{ wsql.BackoffManager }

func (q quietOnShutdown) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if errors.Is(err, context.Canceled) {
		return 0 // the consume loop sees the context done and returns
	}
	return q.BackoffManager.HandleError(logger, noMsg, err)
}

// migrateLock is the transaction-level advisory lock migrate holds, so
// that instances starting together create the tables one after the other
// (CREATE TABLE IF NOT EXISTS races otherwise).
const migrateLock = 0x636c6275 // "clbu"

// migrate creates the tables of every topic (messages, consumer-group
// offsets) and the group's zero offset, if missing, in one transaction
// under migrateLock: idempotent, run at every Open. The service owns these
// tables; the subscribers and publishers never create any.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema wsql.DefaultPostgreSQLSchema,
	offsets wsql.DefaultPostgreSQLOffsetsAdapter, opts Options) error {
	var queries []wsql.Query
	for _, topic := range opts.Topics {
		qs, err := schema.SchemaInitializingQueries(wsql.SchemaInitializingQueriesParams{Topic: topic})
		if err != nil {
			return fmt.Errorf("migrate bus topic %s: %w", topic, err)
		}
		queries = append(queries, qs...)
		if qs, err = offsets.SchemaInitializingQueries(wsql.OffsetsSchemaInitializingQueriesParams{Topic: topic}); err != nil {
			return fmt.Errorf("migrate bus topic %s: %w", topic, err)
		}
		queries = append(queries, qs...)
		if qs, err = offsets.BeforeSubscribingQueries(wsql.BeforeSubscribingQueriesParams{Topic: topic, ConsumerGroup: opts.ConsumerGroup}); err != nil {
			return fmt.Errorf("migrate bus topic %s: %w", topic, err)
		}
		queries = append(queries, qs...)
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLock); err != nil {
			return fmt.Errorf("migrate bus: %w", err)
		}
		for _, q := range queries {
			if _, err := tx.Exec(ctx, q.Query, q.Args...); err != nil {
				return fmt.Errorf("migrate bus: %w", err)
			}
		}
		return nil
	})
}

// savepoint names the savepoint each delivery runs in.
const savepoint = "bus_delivery"

// savepoints is watermill-sql's subscriber with every delivery of a
// message run inside a savepoint of the subscriber's transaction (see the
// comment at the top of this file): the handler gets a copy of the
// message; its ack releases the savepoint and then acks the original, its
// nack rolls back to the savepoint and then nacks the original. The
// subscriber's goroutine waits on the original meanwhile, so the
// transaction is used by one goroutine at a time.
type savepoints struct {
	sub *wsql.Subscriber
	log *slog.Logger
}

func (s savepoints) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	in, err := s.sub.Subscribe(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(chan *message.Message)
	go func() {
		defer close(out)
		for msg := range in {
			s.deliver(msg, out)
		}
	}()
	return out, nil
}

func (s savepoints) Close() error { return s.sub.Close() }

// deliver hands msg to the handler in a savepoint and passes its ack or
// nack on. msg's context ends when the subscriber gives the message up
// (ack deadline, closing): the copy is then abandoned unacked.
func (s savepoints) deliver(msg *message.Message, out chan<- *message.Message) {
	ctx := msg.Context()
	tx, ok := wsql.TxFromContext(ctx)
	if !ok { // not from watermill-sql's subscriber: nothing to guard
		select {
		case out <- msg:
		case <-ctx.Done():
		}
		return
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT "+savepoint); err != nil {
		s.log.Warn("bus savepoint failed", "message_uuid", msg.UUID, "error", err)
		msg.Nack()
		return
	}
	cp := msg.Copy()
	cp.SetContext(ctx)
	select {
	case out <- cp:
	case <-ctx.Done():
		return
	}
	select {
	case <-cp.Acked():
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); err != nil {
			s.log.Warn("bus savepoint release failed", "message_uuid", msg.UUID, "error", err)
			msg.Nack()
			return
		}
		msg.Ack()
	case <-cp.Nacked():
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+savepoint); err != nil {
			s.log.Warn("bus savepoint rollback failed", "message_uuid", msg.UUID, "error", err)
		} else if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); err != nil {
			s.log.Warn("bus savepoint release failed", "message_uuid", msg.UUID, "error", err)
		}
		msg.Nack()
	case <-ctx.Done():
	}
}

// serialized makes the subscriber's transactions safe for the two
// goroutines that use each: the subscriber's (the query, the ack, the
// commit or rollback) and the delivery's (the savepoints, a handler's
// writes). When a subscription ends (ack deadline, cancelled context,
// closing bus) watermill-sql commits or rolls back on its goroutine while
// the handler may still be using the transaction, and a pgx connection is
// not safe for concurrent use: each call takes the transaction's lock, a
// query's until its rows are read or closed.
type serialized struct{ wsql.Beginner }

// BeginTx begins without ctx's cancellation: watermill-sql's pgx adapter
// commits with the context the transaction began with, which is the
// subscription's, so a subscription ending would make the commit of a
// transaction that acked nothing fail, and log an error, at every
// shutdown. Statements still take their own contexts.
func (s serialized) BeginTx(ctx context.Context, opts *stdsql.TxOptions) (wsql.Tx, error) {
	tx, err := s.Beginner.BeginTx(context.WithoutCancel(ctx), opts)
	if err != nil {
		return nil, err
	}
	return &lockedTx{tx: tx}, nil
}

type lockedTx struct {
	mu sync.Mutex
	tx wsql.Tx
}

func (t *lockedTx) ExecContext(ctx context.Context, query string, args ...any) (wsql.Result, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *lockedTx) QueryContext(ctx context.Context, query string, args ...any) (wsql.Rows, error) {
	t.mu.Lock()
	rows, err := t.tx.QueryContext(ctx, query, args...)
	if err != nil {
		t.mu.Unlock()
		return nil, err
	}
	return &lockedRows{Rows: rows, unlock: sync.OnceFunc(t.mu.Unlock)}, nil
}

func (t *lockedTx) Commit() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tx.Commit()
}

func (t *lockedTx) Rollback() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tx.Rollback()
}

// lockedRows gives the transaction's lock back once read or closed.
type lockedRows struct {
	wsql.Rows
	unlock func()
}

func (r *lockedRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.unlock()
	return false
}

func (r *lockedRows) Close() error {
	err := r.Rows.Close()
	r.unlock()
	return err
}
