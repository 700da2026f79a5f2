package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/coinledger/coinledger/adapters/bus"
	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/app/expiry"
	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	pgstore "github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/projections"
)

// service is the wired application: stores, command services, projection
// runner and HTTP handler.
type service struct {
	store  eventstore.Store
	runner *projections.Runner
	// followers are the in-memory consumers of the log (projections.Follow)
	// the runner drives beside the read models.
	followers []projections.Projection
	handler   http.Handler
	closers   []func() error
	// workers run beside the HTTP server until the service stops (chain
	// syncers, walletnotify listeners, ...).
	workers []func(context.Context) error
	chains  *chainsync.Registry
	hooks   http.Handler // the block.io web-hook, if configured
	// shutdown runs when the HTTP server stops (closing websockets).
	shutdown []func(context.Context) error
}

// wiring options that only benchmarks change.
type wiring struct {
	store    eventstore.Store // an already open event store (else from cfg)
	maxBatch int              // wallet command batch cap (0: default)
}

// newService opens and wires everything cfg names.
func newService(ctx context.Context, cfg *Config, logger *slog.Logger, w wiring) (svc *service, err error) {
	svc = &service{store: w.store}
	defer func() {
		if err != nil {
			svc.close()
		}
	}()
	if svc.store == nil {
		var closeStore func() error
		err = openRetrying(ctx, logger, "event_store", func(ctx context.Context) (err error) {
			svc.store, closeStore, err = openEventStore(ctx, cfg.EventStore.Reveal())
			return err
		})
		if err != nil {
			return svc, err
		}
		svc.closers = append(svc.closers, closeStore)
	}
	var db projections.DB
	var closeDB func() error
	err = openRetrying(ctx, logger, "read_models", func(ctx context.Context) (err error) {
		db, closeDB, err = openReadModels(ctx, cfg.ReadModels.Reveal())
		return err
	})
	if err != nil {
		return svc, err
	}
	svc.closers = append(svc.closers, closeDB)

	// Wallet and user snapshots: a cache beside whatever event store; in
	// the Postgres event store's database, shared by every instance on it.
	var snaps eventstore.SnapshotStore
	if pg, ok := svc.store.(*pgstore.Store); ok && cfg.SnapshotEvery >= 0 {
		snaps = pg.Snapshots()
	} else if cfg.SnapshotEvery >= 0 {
		s, err := sqlite.OpenSnapshots(ctx, filepath.Join(cfg.DataDir, "snapshots.db"))
		if err != nil {
			return svc, err
		}
		svc.closers = append(svc.closers, s.Close)
		snaps = s
	}
	userSvc, err := usersService(cfg, svc.store, snaps, logger, svc.followAt)
	if err != nil {
		return svc, err
	}
	svc.closers = append(svc.closers, func() error { userSvc.WaitSnapshots(); return nil })
	passwordFile := filepath.Join(cfg.DataDir, adminPasswordFile)
	generated, err := userSvc.BootstrapAdmin(ctx, cfg.AdminPassword.Reveal(), func(p string) error {
		return keepAdminPassword(passwordFile, p)
	})
	if err != nil {
		return svc, fmt.Errorf("bootstrap admin: %w", err)
	}
	if generated != "" {
		// Only the path is printed: stdout is a persistent log under
		// Docker and systemd.
		logger.Warn("admin password generated; read it from the file, then delete the file", "file", passwordFile)
	}
	issuer, err := tokenIssuer(cfg)
	if err != nil {
		return svc, err
	}
	clientIP, err := auth.NewClientIP(cfg.TrustedProxies)
	if err != nil {
		return svc, fmt.Errorf("trusted_proxies: %w", err)
	}
	walletSvc := wallets.New(svc.store, wallets.Options{MaxBatch: w.maxBatch,
		Snapshots: snaps, SnapshotEvery: snapshotEvery(cfg), Logger: logger})
	svc.closers = append(svc.closers, func() error { walletSvc.Close(); return nil })
	if err := seed(ctx, cfg, walletSvc, userSvc); err != nil {
		return svc, err
	}
	// Holds end at their expires_at: the scheduler follows the log and
	// appends hold_expired through the wallet writers.
	holds := expiry.New(walletSvc, logger, expiry.Options{})
	holdsCaughtUp := svc.follow(holds)
	svc.workers = append(svc.workers, func(ctx context.Context) error { return holds.Run(ctx, holdsCaughtUp) })
	// The embedded default binds BTC to the simulated chain; /status
	// describes exactly what is wired here.
	b, err := openBus(ctx, cfg, logger)
	if err != nil {
		return svc, err
	}
	svc.closers = append(svc.closers, b.Close)
	idx := chainsync.NewIndex()
	chains := chainsync.NewRegistry(svc.store, walletSvc, idx, svc.follow(idx), logger)
	svc.chains = chains
	if err := svc.wireChains(cfg, chains, b, logger); err != nil {
		return svc, err
	}
	mkt, alertSvc, ob, err := svc.wireMarket(cfg, b, logger)
	if err != nil {
		return svc, err
	}
	auditDeps, err := svc.wireAudit(cfg, logger)
	if err != nil {
		return svc, err
	}
	// One runner follows the log for every read model and every in-memory
	// follower the wiring above registered.
	svc.runner = projections.NewRunner(db, svc.store, projections.Options{Logger: logger},
		append(readModels(), svc.followers...)...)
	a := api.New(api.Deps{Store: svc.store, StoreKind: storeKind(cfg.EventStore.Reveal()), DB: db, Runner: svc.runner, Wallets: walletSvc, Users: userSvc,
		Issuer: issuer, ClientIP: clientIP, Logins: auth.NewLoginGuard(auth.DefaultLoginPolicy(), time.Now), Chains: chains,
		Market: mkt, Alerts: alertSvc, Outbox: ob, Audit: auditDeps, Hooks: svc.hooks, Logger: logger, Version: version,
		Websocket: api.WebsocketLimits{MaxConnsPerUser: cfg.Websocket.MaxConnectionsPerUser,
			MaxBufferedEvents: cfg.Websocket.MaxBufferedEvents}})
	svc.handler, svc.shutdown = a, append(svc.shutdown, a.Shutdown)
	return svc, nil
}

// busMemory names the in-process bus in Config.Bus.
const busMemory = "memory"

// openBus opens the bus walletnotify notifications and price ticks travel
// on: watermill-sql on the Postgres cfg.Bus names, by default the read
// models' when they are on Postgres (durable, shared by every instance on
// it, whatever the event store), else the in-process gochannel. The ack deadline leaves the walletnotify
// router its retries and two minutes of handler time: it matters only for
// a live but stuck handler, as a dead instance's transaction ends with its
// connection and the message goes to another at once.
func openBus(ctx context.Context, cfg *Config, logger *slog.Logger) (*bus.Bus, error) {
	url := cfg.Bus.Reveal()
	if url == "" && isPostgresURL(cfg.ReadModels.Reveal()) {
		url = cfg.ReadModels.Reveal()
	}
	if url == busMemory {
		url = ""
	}
	b, err := bus.Open(ctx, url, bus.Options{Topics: append(walletnotify.Topics(), pricesTopic),
		AckDeadline: cfg.Walletnotify.Router.RetryBudget() + 2*time.Minute, Logger: logger})
	if err != nil {
		return nil, err
	}
	logger.Info("bus opened", "kind", b.Kind())
	return b, nil
}

// pubSub is what the wiring needs of the bus.
type pubSub interface {
	message.Publisher
	message.Subscriber
}

// wireAudit opens the checkpoint keyring (created at first start) and
// registers the checkpoint signer, which follows the log and signs by
// count and by time, and its prover of liabilities.
func (s *service) wireAudit(cfg *Config, logger *slog.Logger) (api.AuditDeps, error) {
	keys, err := auditKeys(cfg)
	if err != nil {
		return api.AuditDeps{}, err
	}
	signer := audit.NewSigner(s.store, audit.SignerOptions{Keys: keys, Every: cfg.Audit.CheckpointEvery,
		Interval: cfg.Audit.CheckpointInterval, Logger: logger})
	caughtUp := s.follow(signer)
	s.workers = append(s.workers, func(ctx context.Context) error { return signer.Run(ctx, caughtUp) })
	return api.AuditDeps{Signer: signer, Prover: audit.NewProver(s.store, keys, signer), Keys: keys}, nil
}

// follow registers f with the runner and returns a function that waits
// until f has handled every event appended so far (for lookups that must
// see the latest appends).
func (s *service) follow(f projections.Follower) func(context.Context) error {
	s.followers = append(s.followers, projections.Follow(f))
	name := f.Name()
	return func(ctx context.Context) error { return s.runner.CaughtUp(ctx, name) }
}

// followAt is follow with the other port: a function that waits until f
// has handled the log up to a position.
func (s *service) followAt(f projections.Follower) func(context.Context, uint64) error {
	s.followers = append(s.followers, projections.Follow(f))
	name := f.Name()
	return func(ctx context.Context, pos uint64) error { return s.runner.WaitFor(ctx, name, pos) }
}

// close releases everything, last opened first.
func (s *service) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// tokenIssuer signs with the configured secret or with a random key kept
// in the data directory, created at first start.
func tokenIssuer(cfg *Config) (*auth.Issuer, error) {
	secret, err := keyFile(cfg, "jwt.key", cfg.JWTSecret)
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	keys := []auth.Key{auth.KeyOf(secret)}
	for _, prev := range cfg.JWTPreviousSecrets {
		keys = append(keys, auth.KeyOf([]byte(prev.Reveal())))
	}
	return auth.NewIssuer(keys...)
}

// snapshotEvery is the snapshot interval cfg asks for (0: the default).
func snapshotEvery(cfg *Config) uint64 { return uint64(max(cfg.SnapshotEvery, 0)) }

// usersService returns the users service over store, sealing credentials
// with the configured key or with one kept in the data directory, created
// at first start, and keeping user snapshots in snaps (nil: none). follow
// registers its user directory with the runner (nil: none is fed, for
// commands that authenticate no API key).
func usersService(cfg *Config, store eventstore.Store, snaps eventstore.SnapshotStore, logger *slog.Logger,
	follow func(projections.Follower) func(context.Context, uint64) error) (*users.Service, error) {
	secret, err := keyFile(cfg, "seal.key", cfg.SealKey)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	secrets := [][]byte{secret}
	for _, prev := range cfg.SealPreviousKeys {
		secrets = append(secrets, []byte(prev.Reveal()))
	}
	keyring, err := seal.New(secrets...)
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	opts := users.Options{BcryptCost: cfg.BcryptCost, Keyring: keyring,
		Snapshots: snaps, SnapshotEvery: snapshotEvery(cfg), Logger: logger}
	if follow != nil {
		opts.Directory = users.NewDirectory(keyring)
		opts.DirectoryAt = follow(opts.Directory)
		// The embedded store is locked by this process: every user event
		// is written here. Another store may have other writers.
		opts.SharedStore = storeKind(cfg.EventStore.Reveal()) != "sqlite"
	}
	return users.NewWithOptions(store, opts), nil
}

// seed creates the wallets and users the configuration declares; run at
// every start, it appends only what is missing or differs.
func seed(ctx context.Context, cfg *Config, ws *wallets.Service, us *users.Service) error {
	meta := eventstore.Metadata{Actor: "system:config"}
	for _, w := range cfg.Wallets {
		coin, ok := money.Lookup(w.Coin)
		if !ok {
			return fmt.Errorf("config wallet %s: unknown coin %q", w.Name, w.Coin)
		}
		perms := make([]ledger.Permission, len(w.Permissions))
		for i, p := range w.Permissions {
			perms[i] = ledger.Permission(p)
		}
		_, err := ws.Execute(ctx, meta, w.Name, func(*ledger.State) (ledger.Command, error) {
			return ledger.OpenWallet{Name: w.Name, Coin: coin, Permissions: perms, IPAllowlist: w.IPAllowlist,
				Confirmations: w.Confirmations}, nil
		})
		if err != nil && !errors.Is(err, ledger.ErrWalletExists) {
			return fmt.Errorf("config wallet %s: %w", w.Name, err)
		}
	}
	for _, u := range cfg.Users {
		if err := us.Apply(ctx, meta, u.seed()); err != nil {
			return fmt.Errorf("config: %w", err)
		}
	}
	return nil
}
