package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/projections"
	"golang.org/x/sync/errgroup"
)

// serve runs the service until ctx is done.
func serve(ctx context.Context, logger *slog.Logger, args []string) error {
	cfg, _, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	logger.Info("starting", "version", version, "listen", cfg.Listen,
		"event_store", redactURL(cfg.EventStore), "read_models", redactURL(cfg.ReadModels))
	store, closeStore, err := openEventStore(ctx, cfg.EventStore)
	if err != nil {
		return err
	}
	defer closeStore()
	db, closeDB, err := openReadModels(ctx, cfg.ReadModels)
	if err != nil {
		return err
	}
	defer closeDB()
	runner := projections.NewRunner(db, store, projections.Options{}, readModels()...)

	handler := api.New(api.Deps{Store: store, Runner: runner, Logger: logger, Version: version})
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("listening", "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := runner.Run(gctx)
		if gctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("projections: %w", err)
	})
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	})
	err = g.Wait()
	logger.Info("stopped", "err", err)
	return err
}
