package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"text/tabwriter"

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
