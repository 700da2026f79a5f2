package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// TestProjectionsRetryCallsServer: `coinledger projections retry NAME`
// reaches the running service's admin API (URL and token from flags or
// the environment, or an admin login): 202 for a parked read model, the
// problem's code for one that is not parked or does not exist, and a
// usage error without credentials.
func TestProjectionsRetryCallsServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := &Config{DataDir: t.TempDir(), AdminPassword: benchAdminPassword, BcryptCost: 4,
		SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
	cfg.setDefaults()
	svc, err := newService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), wiring{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.close()
	c, stop, err := startBenchService(ctx, svc, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	base := strings.TrimSuffix(c.base, "/api/v1")
	if err := c.login(); err != nil {
		t.Fatal(err)
	}
	// An event the wallet read model cannot decode parks it.
	bad, err := svc.store.Append(ctx, "wallet-w", eventstore.Any,
		eventstore.EventData{Type: ledger.TypeFundsTransferred, Data: []byte(`{"amount":"lots"}`)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.runner.WaitFor(ctx, "wallet", bad.Position); !errors.Is(err, projections.ErrParked) {
		t.Fatalf("WaitFor: %v, want ErrParked", err)
	}
	t.Setenv("COINLEDGER_ADMIN_PASSWORD", "")
	t.Setenv("COINLEDGER_TOKEN", "")
	t.Setenv("COINLEDGER_LISTEN", strings.TrimPrefix(base, "http://"))
	var ue usageError
	if err := run(ctx, []string{"projections", "retry", "wallet"}); !errors.As(err, &ue) {
		t.Errorf("without credentials: %v, want a usage error", err)
	}
	tests := []struct {
		name, env, envValue string
		args                []string
		want                string // "" for success
	}{
		{"token flag, URL flag", "", "", []string{"-url", base, "-token", c.token, "wallet"}, ""},
		{"token from COINLEDGER_TOKEN", "COINLEDGER_TOKEN", c.token, []string{"custody"}, "projection_not_parked"},
		{"admin login", "COINLEDGER_ADMIN_PASSWORD", cfg.AdminPassword.Reveal(), []string{"nope"}, "not_found"},
		{"bad token", "", "", []string{"-token", "nonsense", "wallet"}, "401"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, tc.envValue)
			}
			err := run(ctx, append([]string{"projections", "retry"}, tc.args...))
			if tc.want == "" && err != nil {
				t.Errorf("retry: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("retry: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
