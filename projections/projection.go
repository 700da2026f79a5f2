package projections

import (
	"context"

	"github.com/coinledger/coinledger/eventstore"
)

// Projection folds events into read-model tables.
//
// Name identifies the projection: it keys its checkpoint and its migrations,
// so it must be unique within a database and must never change.
//
// Migrations returns the projection's schema steps for a dialect (see
// DB.Migrate); every dialect must get the same number of steps.
//
// Apply gets a batch of events in global order, all after the projection's
// checkpoint, inside the transaction that also advances the checkpoint past
// the last of them. It sees every event type and ignores those it does not
// know. It should fold the batch in memory and write once per touched row.
// Apply must be deterministic and free of side effects outside tx: on an
// error the transaction rolls back and the same events are applied again
// after a restart. It must not retain events after returning.
type Projection interface {
	Name() string
	Migrations(d Dialect) []string
	Apply(ctx context.Context, tx Tx, events []eventstore.Event) error
}

// Selective is an optional capability of a Projection that reads only some
// of the log: Wants reports whether an event may change its read model. A
// batch without a wanted event is not applied: the projection's position
// advances in memory (so WaitFor returns at once) and its stored
// checkpoint moves with the next applied batch, after CheckpointInterval
// skipped events, when the log has been quiet for a second, or when Run
// stops; a restart after a crash re-reads the events skipped since and
// skips them again. Wants must be cheap (it sees every event) and
// consistent with Apply.
type Selective interface {
	Wants(e eventstore.Event) bool
}

// CheckpointInterval bounds how many skipped events a Selective
// projection's stored checkpoint may lag behind its position.
const CheckpointInterval = 10_000
