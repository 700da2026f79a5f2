// Package wallets is the command side of the wallet ledger: it turns
// requests into domain commands, runs them through a per-wallet batching
// writer and reports where their events landed.
package wallets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
)

// Service executes wallet commands.
type Service struct {
	store   eventstore.Store
	batcher *eventstore.Batcher[*ledger.State, ledger.Event]
}

// Options tune a Service; the zero value is the production default.
type Options struct {
	// MaxBatch caps the commands one append to a wallet carries (default
	// 512; 1 disables batching, for baselines).
	MaxBatch int
	// Snapshots, if set, keeps snapshots of wallet states: a cold load
	// (first command after start or after an idle writer retired) reads
	// the latest snapshot and the events after it instead of the whole
	// stream.
	Snapshots eventstore.SnapshotStore
	// SnapshotEvery: a wallet is snapshotted after an append that crosses
	// a multiple of this many events (default eventstore.DefaultSnapshotEvery).
	SnapshotEvery uint64
	// Logger reports snapshots ignored or not saved (default slog.Default()).
	Logger *slog.Logger
	// SharedStore: other processes (instances) append to the wallets'
	// streams too; a refusal is then checked against the stream as stored
	// (eventstore.Batcher.SetShared).
	SharedStore bool
}

// snapshotter returns the snapshot support of wallet states (the ledger's
// encoding, schema ledger.SnapshotSchema) that opts ask for.
func snapshotter(opts Options) eventstore.Snapshotter[*ledger.State] {
	return eventstore.Snapshotter[*ledger.State]{Store: opts.Snapshots, Schema: ledger.SnapshotSchema,
		Encode: ledger.EncodeSnapshot, Decode: ledger.DecodeSnapshot, Clone: (*ledger.State).Clone,
		Every: opts.SnapshotEvery, Logger: opts.Logger}
}

// New returns a service over store. Close stops its writers.
func New(store eventstore.Store, opts Options) *Service {
	agg := eventstore.Aggregate[*ledger.State, ledger.Event]{Initial: ledger.NewState, Evolve: ledger.Evolve}
	b := eventstore.NewBatcher(store, eventstore.NewCodecOf(ledger.Events()...), agg)
	if opts.MaxBatch > 0 {
		b.SetMaxBatch(opts.MaxBatch)
	}
	if opts.Snapshots != nil {
		b.SetSnapshotter(snapshotter(opts))
	}
	b.SetShared(opts.SharedStore)
	return &Service{store: store, batcher: b}
}

// BatchStats counts the appends of the wallets' writers, their commands
// and events (metrics: commands per append).
func (s *Service) BatchStats() eventstore.BatcherStats { return s.batcher.Stats() }

// Close stops the per-wallet writers after the commands already queued.
func (s *Service) Close() { s.batcher.Close() }

// Result is what a command produced.
type Result struct {
	// ID of what the command created or acted on (transfer, hold, ...).
	ID string
	// Position of the command's last event in the global log: wait for a
	// read model to reach it to read your write.
	Position uint64
	// Replayed: the idempotency key was seen before with the same request;
	// nothing new was written and ID and Position are the original's.
	Replayed bool
}

// Build turns the wallet's current state into the command to decide. It
// runs inside the wallet's writer, so it sees every earlier command's
// effect (the coin to parse amounts in, for one). It must not keep s.
type Build func(s *ledger.State) (ledger.Command, error)

// Execute runs the command that build makes for wallet. The wallet must
// exist (ledger.ErrWalletNotFound otherwise); OpenWallet is the exception.
//
// The first outcome of a command with an idempotency key is its outcome
// for good. A key already executed with the same request hash is answered
// with the original result (Replayed). A keyed command the ledger refuses
// for a business reason (ledger.Refusal: insufficient funds, a locked
// wallet, ...) has the refusal appended as a ledger.CommandRefused event
// before Execute returns the refusal error, so that a later replay, on
// this instance or another, after a restart, and whatever changed in the
// wallet meanwhile, returns the same refusal as a *ledger.RefusedError.
// Should that append fail, its error is returned instead: the refusal
// must not be answered before it is durable. Validation errors are not
// recorded.
func (s *Service) Execute(ctx context.Context, meta eventstore.Metadata, wallet string, build Build) (Result, error) {
	var replay *ledger.Result
	var id string
	var refusal error
	out, err := s.batcher.Do(ctx, ledger.Stream(wallet), meta, func(st *ledger.State) ([]ledger.Event, error) {
		replay, id, refusal = nil, "", nil
		cmd, err := build(st)
		if err != nil {
			return nil, err
		}
		if _, opening := cmd.(ledger.OpenWallet); !opening && !st.Opened() {
			return nil, fmt.Errorf("wallet %s: %w", wallet, ledger.ErrWalletNotFound)
		}
		idem := ledger.IdempotencyOf(cmd)
		if r, seen, err := st.Replay(idem.Key, idem.RequestHash); seen {
			if err == nil {
				replay = &r
			}
			return nil, err
		}
		id = ledger.SubjectOf(cmd)
		events, err := ledger.Decide(st, cmd)
		if ev, ok := ledger.Refusal(cmd, err); ok {
			refusal = err
			return []ledger.Event{ev}, nil
		}
		return events, err
	})
	if err != nil {
		return Result{}, err
	}
	if refusal != nil {
		return Result{}, refusal
	}
	if replay != nil {
		return s.replayed(ctx, wallet, *replay)
	}
	return Result{ID: id, Position: out.Result.Position}, nil
}

// replayed answers a repeated command with the original's id and position.
func (s *Service) replayed(ctx context.Context, wallet string, r ledger.Result) (Result, error) {
	events, err := s.store.ReadStream(ctx, ledger.Stream(wallet), r.Revision, 1)
	if err != nil {
		return Result{}, fmt.Errorf("replay %s@%d: %w", ledger.Stream(wallet), r.Revision, err)
	}
	if len(events) == 0 {
		return Result{}, fmt.Errorf("replay %s@%d: %w", ledger.Stream(wallet), r.Revision, errors.New("original event missing"))
	}
	return Result{ID: r.ID, Position: events[0].Position, Replayed: true}, nil
}

// Info returns the wallet's settings (coin, permissions, allowlist, lock)
// as the wallet's writer holds them: the state commands are decided on,
// current to the last append, without a read-model query.
func (s *Service) Info(ctx context.Context, wallet string) (ledger.Wallet, error) {
	var w ledger.Wallet
	err := s.View(ctx, wallet, func(st *ledger.State) error {
		w = st.Wallet()
		return nil
	})
	return w, err
}

// View runs fn on the wallet's state as its writer holds it (current to
// the last append), between commands; fn must not keep the state. A wallet
// that does not exist is ledger.ErrWalletNotFound.
func (s *Service) View(ctx context.Context, wallet string, fn func(*ledger.State) error) error {
	_, err := s.batcher.Do(ctx, ledger.Stream(wallet), eventstore.Metadata{}, func(st *ledger.State) ([]ledger.Event, error) {
		if !st.Opened() {
			return nil, fmt.Errorf("wallet %s: %w", wallet, ledger.ErrWalletNotFound)
		}
		return nil, fn(st)
	})
	return err
}
