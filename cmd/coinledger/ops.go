package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/alerts"
	"github.com/coinledger/coinledger/projections/audit"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/prices"
	"github.com/coinledger/coinledger/projections/users"
	"github.com/coinledger/coinledger/projections/wallet"
)

// projectionsStatus prints every read model's checkpoint and lag.
func projectionsStatus(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig("projections status", args)
	if err != nil {
		return err
	}
	store, db, closeStores, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStores()
	st, err := projections.NewRunner(db, store, projections.Options{}, readModels()...).Status(ctx)
	if err != nil {
		return err
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

// auditVerify reads the whole log and verifies every stream's hash chain.
func auditVerify(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig("audit verify", args)
	if err != nil {
		return err
	}
	store, closeStore, err := openEventStore(ctx, cfg.EventStore.Reveal())
	if err != nil {
		return err
	}
	defer closeStore()
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	v := eventstore.NewVerifier()
	var after uint64
	start, last := time.Now(), time.Now()
	for {
		events, err := store.ReadAll(ctx, after, 4096)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			break
		}
		for _, e := range events {
			if err := v.Verify(e); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		after = events[len(events)-1].Position
		if time.Since(last) > time.Second {
			last = time.Now()
			rate := float64(v.Events) / time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "verified %d events (position %d of %d), %.0f events/s\n", v.Events, after, head, rate)
		}
	}
	fmt.Printf("ok: %d events in %d streams verified up to position %d in %s\n",
		v.Events, v.Streams(), after, time.Since(start).Round(time.Millisecond))
	return nil
}
