package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// TestValidateWebhookAllowCIDRs: notify.webhooks.allow_cidrs takes CIDR
// ranges and single addresses; anything else is a configuration error
// naming the key.
func TestValidateWebhookAllowCIDRs(t *testing.T) {
	for _, tt := range []struct {
		cidrs []string
		ok    bool
	}{
		{nil, true},
		{[]string{"10.1.0.0/16", "127.0.0.0/8", "::1/128", "192.168.1.7"}, true},
		{[]string{"10.1.0.0/33"}, false},
		{[]string{"internal.example.com"}, false},
		{[]string{"10.0.0.0/8", ""}, false},
	} {
		c := Config{Notify: NotifyConfig{Webhooks: WebhooksConfig{AllowCIDRs: tt.cidrs}}}
		c.setDefaults()
		err := c.Validate()
		if tt.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "notify.webhooks.allow_cidrs")) {
			t.Errorf("allow_cidrs %q: %v, want ok %v", tt.cidrs, err, tt.ok)
		}
	}
}

// TestServiceSnapshotsWalletsAndUsers: the service keeps wallet and user
// snapshots in DATA_DIR/snapshots.db (snapshot_every 1: the seeded
// wallet's opening and the admin's registration are snapshotted, the
// admin's sealed); snapshot_every -1 turns them off and below is invalid.
func TestServiceSnapshotsWalletsAndUsers(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, every := range []int{1, -1} {
		cfg := &Config{DataDir: t.TempDir(), AdminPassword: "bench-admin-password", BcryptCost: 4, SnapshotEvery: every,
			Wallets: []WalletSeed{{Name: "main", Coin: "BTC"}}}
		cfg.setDefaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		svc, err := newService(ctx, cfg, logger, wiring{})
		if err != nil {
			t.Fatal(err)
		}
		svc.close()
		path := filepath.Join(cfg.DataDir, "snapshots.db")
		if every < 0 {
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("snapshot_every -1: %s exists (%v)", path, err)
			}
			continue
		}
		snaps, err := sqlite.OpenSnapshots(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		snap, ok, err := snaps.Load(ctx, ledger.Stream("main"))
		if err != nil || !ok || snap.Schema != ledger.SnapshotSchema {
			t.Fatalf("snapshot of the seeded wallet: %+v, %v, %v", snap, ok, err)
		}
		snap, ok, err = snaps.Load(ctx, identity.Stream("admin"))
		snaps.Close()
		if err != nil || !ok || snap.Schema != identity.SnapshotSchema || strings.Contains(string(snap.Data), "$2a$") {
			t.Fatalf("snapshot of the admin: %q, %v, %v; want one, sealed", snap.Data, ok, err)
		}
	}
	c := Config{SnapshotEvery: -2}
	c.setDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "snapshot_every") {
		t.Fatalf("snapshot_every -2: %v", err)
	}
}

// TestAuditConfig: the checkpoint settings come from the environment,
// default to DATA_DIR/audit-keys.json, and bad values are errors naming
// the variable or key.
func TestAuditConfig(t *testing.T) {
	t.Setenv("COINLEDGER_CONFIG", "")
	t.Setenv("COINLEDGER_DATA_DIR", "/srv/ledger")
	t.Setenv("COINLEDGER_CHECKPOINT_EVERY", "500")
	t.Setenv("COINLEDGER_CHECKPOINT_INTERVAL", "30s")
	cfg, _, err := loadConfig("test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audit.KeyFile != "/srv/ledger/audit-keys.json" || cfg.Audit.CheckpointEvery != 500 || cfg.Audit.CheckpointInterval.String() != "30s" {
		t.Fatalf("audit config %+v", cfg.Audit)
	}
	for key, bad := range map[string]string{"COINLEDGER_CHECKPOINT_INTERVAL": "ten minutes", "COINLEDGER_CHECKPOINT_EVERY": "-2"} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, bad)
			_, _, err := loadConfig("test", nil)
			if err == nil || !strings.Contains(err.Error(), map[string]string{"COINLEDGER_CHECKPOINT_INTERVAL": key, "COINLEDGER_CHECKPOINT_EVERY": "audit.checkpoint_every"}[key]) {
				t.Fatalf("%s=%q: %v", key, bad, err)
			}
		})
	}
}

// TestConfigReportsEveryProblemAtOnce: bad values in the file and in
// several variables are all reported in one error, each with its key,
// before anything is opened; an empty file is an empty configuration.
func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	for _, k := range envVars {
		if k != "COINLEDGER_CONFIG" {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yml")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COINLEDGER_CONFIG", empty)
	if _, _, err := loadConfig("serve", nil); err != nil {
		t.Fatalf("an empty configuration file: %v", err)
	}

	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("listen: nowhere\nbcrypt_cost: 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COINLEDGER_CONFIG", bad)
	t.Setenv("COINLEDGER_SNAPSHOT_EVERY", "often")
	t.Setenv("COINLEDGER_CHECKPOINT_INTERVAL", "soon")
	t.Setenv("COINLEDGER_TRUSTED_PROXIES", "10.0.0.0/33")
	t.Setenv("COINLEDGER_DATA_DIR", filepath.Join(dir, "data"))
	_, _, err := loadConfig("serve", nil)
	if err == nil {
		t.Fatal("a bad configuration was accepted")
	}
	for _, want := range []string{`listen: "nowhere"`, "bcrypt_cost: 99", `COINLEDGER_SNAPSHOT_EVERY: "often"`,
		`COINLEDGER_CHECKPOINT_INTERVAL: "soon"`, "trusted_proxies: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not report %s:\n%v", want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("the data directory was created for a bad configuration: %v", err)
	}
}
