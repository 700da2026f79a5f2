package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/coinledger/coinledger/adapters/secret"
	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/http/ws"
)

// Config is the whole configuration, built from the YAML file named by
// COINLEDGER_CONFIG (or -config) and then COINLEDGER_* variables.
type Config struct {
	Listen     string `yaml:"listen"`      // COINLEDGER_LISTEN, default 127.0.0.1:8080
	DataDir    string `yaml:"data_dir"`    // COINLEDGER_DATA_DIR, default ./data
	EventStore URL    `yaml:"event_store"` // COINLEDGER_EVENT_STORE: sqlite:PATH (default DATA_DIR/events.db), esdb://... or postgres://...
	ReadModels URL    `yaml:"read_models"` // COINLEDGER_READ_MODELS: sqlite:PATH (default DATA_DIR/readmodels.db) or postgres://...
	// Bus carries walletnotify notifications and price ticks (COINLEDGER_BUS):
	// "memory" (in-process) or postgres://... (durable, shared by the
	// instances on it). Default: the read models' Postgres if they are on
	// one, else memory.
	Bus                URL    `yaml:"bus"`
	AdminPassword      Secret `yaml:"admin_password"`      // COINLEDGER_ADMIN_PASSWORD
	WalletnotifyListen string `yaml:"walletnotify_listen"` // COINLEDGER_WALLETNOTIFY_LISTEN, default 127.0.0.1:28882
	// HTTP holds the API listener's timeouts.
	HTTP HTTPConfig `yaml:"http"`
	// JWTSecret signs tokens (COINLEDGER_JWT_SECRET, at least 32 bytes). Empty:
	// a random key kept in DATA_DIR/jwt.key. Instances sharing stores must share it.
	JWTSecret Secret `yaml:"jwt_secret"`
	// JWTPreviousSecrets still verify tokens (they sign none): keep a
	// rotated-out secret here until its tokens have expired (4 h).
	JWTPreviousSecrets []Secret `yaml:"jwt_previous_secrets"`
	// SealKey seals the credential material of user events in the log
	// (COINLEDGER_SEAL_KEY, at least 32 bytes). Empty: a random key kept in
	// DATA_DIR/seal.key. Instances sharing stores must share it, and a store
	// is unusable for logins without it: back it up apart from the store.
	SealKey Secret `yaml:"seal_key"`
	// SealPreviousKeys still open what they sealed (they seal nothing new):
	// after a rotation, keep the old key here for good.
	SealPreviousKeys []Secret `yaml:"seal_previous_keys"`
	// BcryptCost is the cost of new password hashes (default 10; tests lower it).
	BcryptCost int `yaml:"bcrypt_cost"`
	// SnapshotEvery: a wallet's or user's state is snapshotted (in
	// DATA_DIR/snapshots.db, whatever the event store; user snapshots
	// sealed with the seal key) after every this many of its events, so a
	// cold load reads the snapshot and the tail (COINLEDGER_SNAPSHOT_EVERY;
	// 0: the default, 1000; -1: no snapshots).
	SnapshotEvery int `yaml:"snapshot_every"`
	// TrustedProxies are the addresses or CIDR ranges of reverse proxies
	// whose X-Forwarded-For is believed (COINLEDGER_TRUSTED_PROXIES, comma
	// separated). Empty: the client address is the connection's peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// Coins binds each coin to its chain backend; none: BTC on the
	// simulated null chain.
	Coins []CoinConfig `yaml:"coins"`
	// Walletnotify lists the notification channels besides the HTTP
	// listener at walletnotify_listen ("off" turns that one off).
	Walletnotify WalletnotifyConfig `yaml:"walletnotify"`
	// Notify configures alert notifications (SMTP, webhook signing).
	Notify NotifyConfig `yaml:"notify"`
	// PriceFeeds are polled or streamed into the price streams.
	PriceFeeds PriceFeedsConfig `yaml:"price_feeds"`
	// Websocket bounds the realtime endpoint /api/v1/ws.
	Websocket WebsocketConfig `yaml:"websocket"`
	// Audit configures signed checkpoints and proofs of liabilities.
	Audit AuditConfig `yaml:"audit"`
	// Wallets and Users are created (or brought in line) at every start.
	Wallets []WalletSeed `yaml:"wallets"`
	Users   []UserSeed   `yaml:"users"`
}

// UserSeed is a user the configuration declares (see users.Seed); its
// password hash never prints.
type UserSeed struct {
	Username     string              `yaml:"username"`
	Email        string              `yaml:"email"`
	PasswordHash Secret              `yaml:"password_hash"` // bcrypt or argon2id, from `coinledger users hash-password`
	Roles        []string            `yaml:"roles"`
	Wallets      map[string][]string `yaml:"wallets"` // wallet → permissions
}

func (u UserSeed) seed() users.Seed {
	return users.Seed{Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash.Reveal(), Roles: u.Roles,
		Wallets: u.Wallets}
}

// WalletSeed is a wallet the configuration declares. A wallet that exists
// already is left as it is.
type WalletSeed struct {
	Name          string   `yaml:"name"`
	Coin          string   `yaml:"coin"`
	Permissions   []string `yaml:"permissions"`
	IPAllowlist   []string `yaml:"ip_allowlist"`
	Confirmations int      `yaml:"confirmations"`
}

// WebsocketConfig bounds what websocket clients may hold on the server.
type WebsocketConfig struct {
	// MaxConnectionsPerUser caps the websockets one user holds at a time
	// (COINLEDGER_WS_MAX_CONNECTIONS_PER_USER, default 8); one more is
	// refused with 429 (header token) or closed with 4429.
	MaxConnectionsPerUser int `yaml:"max_connections_per_user"`
	// MaxBufferedEvents is how many events may wait for one slow
	// connection before it is closed with 4408
	// (COINLEDGER_WS_MAX_BUFFERED_EVENTS, default 10000; more than 4096, the
	// largest batch the embedded store delivers).
	MaxBufferedEvents int `yaml:"max_buffered_events"`
}

// AuditConfig configures the checkpoint signer.
type AuditConfig struct {
	// KeyFile holds the Ed25519 checkpoint signing key, the public halves
	// of rotated-out keys and the secret liability salts derive from
	// (COINLEDGER_AUDIT_KEY_FILE; default DATA_DIR/audit-keys.json),
	// created with mode 0600 at first start. Instances sharing stores must
	// share it; back it up apart from the store.
	KeyFile string `yaml:"key_file"`
	// CheckpointEvery is how many events (checkpoints not counted) pass
	// between two checkpoints (COINLEDGER_CHECKPOINT_EVERY; 0: the default,
	// 10,000; -1: never by count).
	CheckpointEvery int `yaml:"checkpoint_every"`
	// CheckpointInterval: when events arrived since the last checkpoint,
	// one is made this often (COINLEDGER_CHECKPOINT_INTERVAL; 0: the
	// default, 10m; negative: never by time).
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
}

// minBufferedEvents: a connection must be able to take one whole batch of
// the embedded store's subscription (4096 events) and then some.
const minBufferedEvents = 4097

// Secret is a configuration secret (see package secret).
type Secret = secret.String

// URL is a connection URL that may carry credentials (see package secret).
type URL = secret.URL

// Reveal returns the secret's value.

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.EventStore == "" {
		c.EventStore = URL("sqlite:" + filepath.Join(c.DataDir, "events.db"))
	}
	if c.ReadModels == "" {
		c.ReadModels = URL("sqlite:" + filepath.Join(c.DataDir, "readmodels.db"))
	}
	if c.WalletnotifyListen == "" {
		c.WalletnotifyListen = "127.0.0.1:28882"
	}
	if c.Websocket.MaxConnectionsPerUser == 0 {
		c.Websocket.MaxConnectionsPerUser = ws.DefaultMaxConnsPerUser
	}
	if c.Websocket.MaxBufferedEvents == 0 {
		c.Websocket.MaxBufferedEvents = ws.DefaultMaxBehind
	}
	c.HTTP = c.HTTP.withDefaults()
	if c.Audit.KeyFile == "" {
		c.Audit.KeyFile = filepath.Join(c.DataDir, "audit-keys.json")
	}
}

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var errs []error
	for name, addr := range map[string]string{"listen": c.Listen, "walletnotify_listen": c.WalletnotifyListen} {
		if name == "walletnotify_listen" && addr == "off" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not host:port", name, addr))
		}
	}
	if es := c.EventStore.Reveal(); !strings.HasPrefix(es, "sqlite:") && !strings.HasPrefix(es, "esdb://") &&
		!strings.HasPrefix(es, "esdb+discover://") && !isPostgresURL(es) {
		errs = append(errs, fmt.Errorf("event_store: %q: want sqlite:PATH, esdb://... or postgres://...", c.EventStore.String()))
	}
	if b := c.Bus.Reveal(); b != "" && b != busMemory && !isPostgresURL(b) {
		errs = append(errs, fmt.Errorf("bus: %q: want %s or postgres://...", c.Bus.String(), busMemory))
	}
	if rm := c.ReadModels.Reveal(); !strings.HasPrefix(rm, "sqlite:") && !isPostgresURL(rm) {
		errs = append(errs, fmt.Errorf("read_models: %q: want sqlite:PATH or postgres://...", c.ReadModels.String()))
	}
	for i := range c.Coins {
		if err := c.Coins[i].validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("jwt_secret: want at least 32 bytes"))
	}
	if _, err := c.Notify.Webhooks.policy(); err != nil {
		errs = append(errs, err)
	}
	if c.SealKey != "" && len(c.SealKey) < 32 {
		errs = append(errs, errors.New("seal_key: want at least 32 bytes"))
	}
	if err := c.HTTP.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := auth.NewClientIP(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("trusted_proxies: %w", err))
	}
	if c.BcryptCost != 0 && (c.BcryptCost < 4 || c.BcryptCost > 31) {
		errs = append(errs, fmt.Errorf("bcrypt_cost: %d is outside 4..31", c.BcryptCost))
	}
	if c.Audit.CheckpointEvery < -1 {
		errs = append(errs, fmt.Errorf("audit.checkpoint_every: %d: want -1 (off), 0 (default) or a positive count", c.Audit.CheckpointEvery))
	}
	if c.SnapshotEvery < -1 {
		errs = append(errs, fmt.Errorf("snapshot_every: %d: want -1 (off), 0 (default) or a positive count", c.SnapshotEvery))
	}
	if c.Websocket.MaxConnectionsPerUser < 1 {
		errs = append(errs, fmt.Errorf("websocket.max_connections_per_user: %d: want at least 1", c.Websocket.MaxConnectionsPerUser))
	}
	if c.Websocket.MaxBufferedEvents < minBufferedEvents {
		errs = append(errs, fmt.Errorf("websocket.max_buffered_events: %d: want at least %d", c.Websocket.MaxBufferedEvents, minBufferedEvents))
	}
	return errors.Join(errs...)
}

// configUsage is the usage of a command that takes only the configuration
// flags (serve, config show).
func configUsage(name string) string {
	return "usage: coinledger " + name + ` [-config FILE] [-listen ADDR]

The configuration is the YAML file (-config, else COINLEDGER_CONFIG), then the
COINLEDGER_* variables (README.md lists them all), then -listen.
`
}

// loadConfig reads the configuration: flags -config and -listen, the YAML
// file, then the environment.
func loadConfig(name string, args []string) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	listen := fs.String("listen", "", "address to listen on (overrides COINLEDGER_LISTEN)")
	if _, err := parseFlags(fs, configUsage(name), args, 0); err != nil {
		return nil, nil, err
	}
	var c Config
	// Every problem is reported at once, with its key, before anything
	// is opened or written: the file, each variable, then the values.
	var errs []error
	if *path != "" {
		if err := decodeConfigFile(*path, &c); err != nil {
			errs = append(errs, err)
		}
	}
	env(&c.Listen, "COINLEDGER_LISTEN")
	env(&c.DataDir, "COINLEDGER_DATA_DIR")
	env(&c.EventStore, "COINLEDGER_EVENT_STORE")
	env(&c.ReadModels, "COINLEDGER_READ_MODELS")
	env(&c.Bus, "COINLEDGER_BUS")
	env(&c.WalletnotifyListen, "COINLEDGER_WALLETNOTIFY_LISTEN")
	env(&c.AdminPassword, "COINLEDGER_ADMIN_PASSWORD")
	env(&c.JWTSecret, "COINLEDGER_JWT_SECRET")
	env(&c.SealKey, "COINLEDGER_SEAL_KEY")
	env(&c.Audit.KeyFile, "COINLEDGER_AUDIT_KEY_FILE")
	if v, ok := os.LookupEnv("COINLEDGER_CHECKPOINT_INTERVAL"); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("COINLEDGER_CHECKPOINT_INTERVAL: %q is not a duration (e.g. 10m)", v))
		}
		c.Audit.CheckpointInterval = d
	}
	if v, ok := os.LookupEnv("COINLEDGER_TRUSTED_PROXIES"); ok {
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	for _, v := range []struct {
		key string
		dst *int
	}{
		{"COINLEDGER_BCRYPT_COST", &c.BcryptCost},
		{"COINLEDGER_SNAPSHOT_EVERY", &c.SnapshotEvery},
		{"COINLEDGER_CHECKPOINT_EVERY", &c.Audit.CheckpointEvery},
		{"COINLEDGER_WS_MAX_CONNECTIONS_PER_USER", &c.Websocket.MaxConnectionsPerUser},
		{"COINLEDGER_WS_MAX_BUFFERED_EVENTS", &c.Websocket.MaxBufferedEvents},
	} {
		if s, ok := os.LookupEnv(v.key); ok {
			n, err := strconv.Atoi(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not a number", v.key, s))
				continue
			}
			*v.dst = n
		}
	}
	if *listen != "" {
		c.Listen = *listen
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return &c, fs, nil
}

// decodeConfigFile reads the YAML configuration file at path into c;
// unknown keys are errors, an empty file (or one of comments only) is
// an empty configuration.
func decodeConfigFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// env sets *dst to the environment variable key when it is set (even to
// "").
func env[T ~string](dst *T, key string) {
	if v, ok := os.LookupEnv(key); ok {
		*dst = T(v)
	}
}

// loadConfigFile loads the configuration for a command that takes the
// configuration file as a -config flag of its own: path ("" for none).
func loadConfigFile(name, path string) (*Config, error) {
	var args []string
	if path != "" {
		args = []string{"-config", path}
	}
	cfg, _, err := loadConfig(name, args)
	return cfg, err
}
