package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/auth"
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

	userSvc := users.New(store, cfg.BcryptCost)
	generated, err := userSvc.BootstrapAdmin(ctx, cfg.AdminPassword.Reveal())
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	if generated != "" {
		// Shown once, on the terminal only: only its hash is stored.
		fmt.Printf("\n  admin password (shown once, store it now): %s\n\n", generated)
	}
	issuer, err := tokenIssuer(cfg)
	if err != nil {
		return err
	}
	walletSvc := wallets.New(store)
	defer walletSvc.Close()
	backends := []api.Backend{{Coin: "BTC", Kind: "null", Simulated: true}}
	logger.Warn("coin BTC is bound to the SIMULATED null backend: no real chain, deposits only through the admin simulate endpoints")

	handler := api.New(api.Deps{Store: store, DB: db, Runner: runner, Wallets: walletSvc, Users: userSvc,
		Issuer: issuer, Logger: logger, Version: version, Backends: backends})
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

// tokenIssuer signs with the configured secret or with a random key kept
// in the data directory, created at first start.
func tokenIssuer(cfg *Config) (*auth.Issuer, error) {
	secret := []byte(cfg.JWTSecret.Reveal())
	if len(secret) == 0 {
		path := filepath.Join(cfg.DataDir, "jwt.key")
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			var key [32]byte
			rand.Read(key[:])
			b = []byte(hex.EncodeToString(key[:]))
			if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
				return nil, err
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return nil, fmt.Errorf("write token key: %w", err)
			}
		case err != nil:
			return nil, fmt.Errorf("read token key: %w", err)
		}
		secret = []byte(strings.TrimSpace(string(b)))
	}
	return auth.NewIssuer(auth.Key{ID: "k1", Secret: secret})
}
