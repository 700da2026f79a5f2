package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
)

// serve runs the service until ctx is done.
func serve(ctx context.Context, logger *slog.Logger, args []string) error {
	cfg, _, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	unknown, closest := unknownEnv(os.Environ())
	for _, name := range unknown {
		logger.Warn("unknown environment variable ignored", "name", name, "did_you_mean", closest[name])
	}
	logger.Info("starting", "version", version, "listen", cfg.Listen,
		"event_store", cfg.EventStore, "read_models", cfg.ReadModels)
	return serveWith(ctx, logger, cfg, wiring{})
}

// serveWith builds the service of cfg with w, listens on cfg.Listen and
// runs it until ctx is done.
func serveWith(ctx context.Context, logger *slog.Logger, cfg *Config, w wiring) error {
	svc, err := newService(ctx, cfg, logger, w)
	if err != nil {
		return err
	}
	defer svc.close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	base := serverURL(ln.Addr().String())
	logger.Info("listening", "addr", ln.Addr().String(), "api", base+"/api/v1", "docs", base+"/docs",
		"data_dir", absPath(cfg.DataDir), "login", "POST /api/v1/auth/login as admin, password "+adminPasswordSource(cfg))
	err = runService(ctx, svc, ln, cfg.HTTP)
	logger.Info("stopped", "err", err)
	return err
}

// runService serves HTTP on ln with the timeouts of hc and runs the
// projections until ctx is done or either fails.
func runService(ctx context.Context, svc *service, ln net.Listener, hc HTTPConfig) error {
	srv := hc.server(svc.handler)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := svc.runner.Run(gctx)
		if gctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("projections: %w", err)
	})
	for _, w := range svc.workers {
		g.Go(func() error {
			if err := w(gctx); err != nil && gctx.Err() == nil {
				return err
			}
			return nil
		})
	}
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
		for _, f := range svc.shutdown {
			_ = f(shutdown) // best effort: the server closes the rest
		}
		return srv.Shutdown(shutdown)
	})
	return g.Wait()
}

// adminPasswordSource says where the admin's password comes from, for
// the start-up line: never the password itself.
func adminPasswordSource(cfg *Config) string {
	if cfg.AdminPassword.Reveal() != "" {
		return "from COINLEDGER_ADMIN_PASSWORD"
	}
	file := filepath.Join(absPath(cfg.DataDir), adminPasswordFile)
	if _, err := os.Stat(file); err == nil {
		return "in " + file + " (read it, then delete the file)"
	}
	return "as generated at first start (its file was deleted)"
}

// absPath is path made absolute, or path if that fails.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
