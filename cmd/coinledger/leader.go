package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/postgres"
)

// election is how this instance shares the singleton workers with the
// others on the same stores.
type election struct {
	elector projections.Elector
	// shared: the read models are in Postgres, shared by every instance:
	// the read-model projections are a role too, and the elector fences
	// their writes.
	shared bool
	// followers maps each role-bound follower (by name) to its role.
	followers map[string]string
	// wanted lists the roles this instance stands for, sorted.
	wanted []string
	// solo: no other instance can share the stores (projections.Solo).
	solo bool
}

// newElection elects on Postgres when several instances can share the
// event store (Postgres or EventStoreDB) and the service has a Postgres:
// the read models' (then shared), else the event store's (each instance
// keeps read models of its own; only the side-effect workers are
// singletons). Otherwise this process is the only one (the embedded store
// is locked by its process; EventStoreDB with SQLite read models has no
// Postgres to lock on): it leads every role at once, with no lock. The
// Postgres elector's connection loop joins the service's workers.
func (s *service) newElection(cfg *Config, logger *slog.Logger) (*election, error) {
	id := cfg.InstanceID
	if id == "" {
		id = generatedInstanceID()
	}
	e := &election{followers: map[string]string{}}
	url := ""
	switch rm, es := cfg.ReadModels.Reveal(), cfg.EventStore.Reveal(); {
	case storeKind(es) == "sqlite":
	case isPostgresURL(rm):
		url, e.shared = rm, true
	case isPostgresURL(es):
		url = es
	}
	if url == "" {
		e.elector, e.solo = projections.NewSolo(id, version), true
		return e, nil
	}
	pe, err := postgres.NewElector(url, id, version, postgres.ElectorOptions{Logger: logger})
	if err != nil {
		return nil, err
	}
	s.workers = append(s.workers, pe.Run)
	e.elector = pe
	logger.Info("leader election on postgres", "instance", id, "read_models_shared", e.shared)
	return e, nil
}

// generatedInstanceID is hostname-pid-random.
func generatedInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "coinledger"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// want records that this instance stands for role.
func (e *election) want(role string) {
	if !slices.Contains(e.wanted, role) {
		e.wanted = append(e.wanted, role)
		slices.Sort(e.wanted)
	}
}

// follower makes follower name run only on the leader of role.
func (e *election) follower(role, name string) {
	e.want(role)
	e.followers[name] = role
}

// start makes a single process the leader of every role it stands for, at
// once (its status lists them all).
func (e *election) start(ctx context.Context) {
	if !e.solo {
		return
	}
	for _, r := range e.wanted {
		_, _ = e.elector.Lead(ctx, r)
	}
}

// runnerOptions sets the runner's leadership options: the roles of its
// projections (the followers', and the read models' when they are shared).
// A single process runs them all as one, as if there were no roles, so the
// embedded default follows the log on one subscription as before.
func (e *election) runnerOptions(o *projections.Options, readModels []projections.Projection) {
	if e.solo {
		return
	}
	o.Elector, o.Roles, o.Shared = e.elector, e.roles(readModels), e.shared
}

func (e *election) roles(readModels []projections.Projection) map[string]string {
	out := make(map[string]string, len(e.followers)+len(readModels))
	for name, role := range e.followers {
		out[name] = role
	}
	if e.shared {
		e.want(projections.RoleProjections)
		for _, p := range readModels {
			out[p.Name()] = projections.RoleProjections
		}
	}
	return out
}

// led returns worker w made a singleton: it runs while this instance leads
// role, and is stopped (its context cancelled) when the leadership ends;
// then it waits to be elected again. A worker that fails while leading
// steps down, so that another instance may try.
func (e *election) led(role string, logger *slog.Logger, w func(context.Context) error) func(context.Context) error {
	e.want(role)
	return func(ctx context.Context) error {
		for {
			t, err := e.elector.Lead(ctx, role)
			if err != nil {
				return nil // ctx is done
			}
			tctx, cancel := t.Context(ctx)
			err = w(tctx)
			lost := tctx.Err() != nil
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			if !lost {
				logger.Warn("worker stepped down", "role", role, "epoch", t.Epoch, "err", err)
				e.elector.Resign(t)
			}
			select {
			case <-t.Done:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
