package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/alerts"
	"github.com/coinledger/coinledger/projections/audit"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/prices"
	"github.com/coinledger/coinledger/projections/users"
	"github.com/coinledger/coinledger/projections/wallet"
)

// projectionsStatus prints every read model's checkpoint and lag: from the
// stores, or from the running server's /api/v1/status when it holds the
// embedded store.
func projectionsStatus(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, projectionsUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("projections status", *config)
	if err != nil {
		return err
	}
	var st []projections.Status
	store, db, closeStores, err := openStores(ctx, cfg)
	switch {
	case errors.Is(err, errStoreLocked):
		st, err = remoteReadModels(ctx, usingServer("projections status", rf.client(cfg.Listen, cfg.AdminPassword.Reveal())))
	case err != nil:
		return err
	default:
		defer closeStores()
		st, err = projections.NewRunner(db, store, projections.Options{}, readModels()...).Status(ctx)
	}
	if err != nil {
		return fmt.Errorf("projections status: %w", err)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PROJECTION\tPOSITION\tHEAD\tLAG")
	for _, s := range st {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", s.Name, s.Position, s.Head, s.Lag)
	}
	return w.Flush()
}

// readModels lists every projection the service runs.
func readModels() []projections.Projection {
	return []projections.Projection{audit.Heads{}, wallet.New(), custody.New(), users.New(), prices.New(), alerts.New()}
}

// serverStatus is what GET /api/v1/status says of the store and of what
// the runner follows, read models and followers alike.
type serverStatus struct {
	Store struct {
		Head uint64 `json:"head"`
	} `json:"store"`
	Projections []followedStatus `json:"projections"`
}

// followedStatus is one read model or follower in /api/v1/status.
type followedStatus struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"` // projections.KindReadModel or KindFollower
	Skippable bool   `json:"skippable"`
	Position  uint64 `json:"position"`
	Lag       uint64 `json:"lag"`
	Running   bool   `json:"running"`
	State     string `json:"state"`
	Error     string `json:"error"`
	ParkedAt  uint64 `json:"parked_at"`
	Failures  uint64 `json:"failures"`
}

// getStatus reads the server's /api/v1/status.
func getStatus(ctx context.Context, r *remote) (serverStatus, error) {
	var st serverStatus
	err := r.call(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// remoteReadModels is the read models' status as the server reports it,
// in the order and form of Runner.Status.
func remoteReadModels(ctx context.Context, r *remote) ([]projections.Status, error) {
	st, err := getStatus(ctx, r)
	if err != nil {
		return nil, err
	}
	var out []projections.Status
	for _, p := range st.Projections {
		if p.Kind == projections.KindReadModel {
			out = append(out, projections.Status{Name: p.Name, Position: p.Position, Head: st.Store.Head, Lag: p.Lag,
				Running: p.Running, State: projections.State(p.State), Error: p.Error, ParkedAt: p.ParkedAt, Failures: p.Failures})
		}
	}
	return out, nil
}

// auditVerify reads the whole log and verifies every stream's hash chain:
// from the store, or, when a running server holds the embedded store, from
// the server's export (verified here, not by the server).
func auditVerify(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	config := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	rf := addRemoteFlags(fs)
	if _, err := parseFlags(fs, auditUsage, args, 0); err != nil {
		return err
	}
	cfg, err := loadConfigFile("audit verify", *config)
	if err != nil {
		return err
	}
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	if errors.Is(err, errStoreLocked) {
		return auditVerifyRemote(ctx, usingServer("audit verify", rf.client(cfg.Listen, cfg.AdminPassword.Reveal())))
	}
	if err != nil {
		return err
	}
	defer closeStore()
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	v := eventstore.NewVerifier()
	var after, events atomic.Uint64
	stop := startProgress("verified", func() progressSample {
		s := progressSample{Events: events.Load(), Position: after.Load()}
		if head > 0 {
			s.Fraction = float64(s.Position) / float64(head)
		}
		return s
	})
	defer stop()
	start := time.Now()
	for {
		page, err := store.ReadAll(ctx, after.Load(), 4096)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if err := v.Verify(e); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		after.Store(page[len(page)-1].Position)
		events.Store(v.Events)
	}
	stop()
	fmt.Printf("ok: %d events in %d streams verified up to position %d in %s\n",
		v.Events, v.Streams(), after.Load(), time.Since(start).Round(time.Millisecond))
	return nil
}

const auditUsage = `usage: coinledger audit verify [-config FILE] [-url URL] [-token TOKEN]

Reads the whole log and verifies every stream's hash chain. While a running server
holds the embedded store, the log is read through the server's admin API (its NDJSON
export) and verified here.
` + remoteUsage

// auditVerifyRemote verifies the chains of the server's export of the
// whole log, as an import of it would (dump.Import without writing): every
// stream's chain, positions in order, the end line present.
func auditVerifyRemote(ctx context.Context, r *remote) error {
	resp, err := r.stream(ctx, "/events/export")
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer resp.Body.Close()
	var p dump.Progress
	stop := startProgress("verified", func() progressSample {
		return progressSample{Events: p.Events.Load(), Position: p.Position.Load()}
	})
	start := time.Now()
	_, end, err := dump.Import(ctx, nil, resp.Body, dump.ImportOptions{CheckOnly: true, Progress: &p})
	stop()
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fmt.Printf("ok: %d events verified up to position %d in %s\n",
		end.Events, end.LastPosition, time.Since(start).Round(time.Millisecond))
	return nil
}
