package main

import (
	"errors"
	"flag"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coinledger/coinledger/app/users"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration, built from the YAML file named by
// COINLEDGER_CONFIG (or -config) and then COINLEDGER_* variables.
type Config struct {
	Listen             string `yaml:"listen"`              // COINLEDGER_LISTEN, default 127.0.0.1:8080
	DataDir            string `yaml:"data_dir"`            // COINLEDGER_DATA_DIR, default ./data
	EventStore         string `yaml:"event_store"`         // COINLEDGER_EVENT_STORE: sqlite:PATH (default DATA_DIR/events.db) or esdb://...
	ReadModels         string `yaml:"read_models"`         // COINLEDGER_READ_MODELS: sqlite:PATH (default DATA_DIR/readmodels.db) or postgres://...
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
	// BcryptCost is the cost of new password hashes (default 10; tests lower it).
	BcryptCost int `yaml:"bcrypt_cost"`
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
	// Wallets and Users are created (or brought in line) at every start.
	Wallets []WalletSeed `yaml:"wallets"`
	Users   []users.Seed `yaml:"users"`
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

// Secret is a configuration secret (see package secret).
type Secret = secret.String

// Reveal returns the secret's value.

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.EventStore == "" {
		c.EventStore = "sqlite:" + filepath.Join(c.DataDir, "events.db")
	}
	if c.ReadModels == "" {
		c.ReadModels = "sqlite:" + filepath.Join(c.DataDir, "readmodels.db")
	}
	if c.WalletnotifyListen == "" {
		c.WalletnotifyListen = "127.0.0.1:28882"
	}
	c.HTTP = c.HTTP.withDefaults()
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
	if !strings.HasPrefix(c.EventStore, "sqlite:") && !strings.HasPrefix(c.EventStore, "esdb://") &&
		!strings.HasPrefix(c.EventStore, "esdb+discover://") {
		errs = append(errs, fmt.Errorf("event_store: %q: want sqlite:PATH or esdb://...", c.EventStore))
	}
	if !strings.HasPrefix(c.ReadModels, "sqlite:") && !strings.HasPrefix(c.ReadModels, "postgres://") &&
		!strings.HasPrefix(c.ReadModels, "postgresql://") {
		errs = append(errs, fmt.Errorf("read_models: %q: want sqlite:PATH or postgres://...", c.ReadModels))
	}
	for i := range c.Coins {
		if err := c.Coins[i].validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("jwt_secret: want at least 32 bytes"))
	}
	if err := c.HTTP.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BcryptCost != 0 && (c.BcryptCost < 4 || c.BcryptCost > 31) {
		errs = append(errs, fmt.Errorf("bcrypt_cost: %d is outside 4..31", c.BcryptCost))
	}
	return errors.Join(errs...)
}

// loadConfig reads the configuration: flags -config and -listen, the YAML
// file, then the environment.
func loadConfig(name string, args []string) (*Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", os.Getenv("COINLEDGER_CONFIG"), "YAML configuration file")
	listen := fs.String("listen", "", "address to listen on (overrides COINLEDGER_LISTEN)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, usageError(err.Error())
	}
	var c Config
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			return nil, nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil {
			return nil, nil, fmt.Errorf("config %s: %w", *path, err)
		}
	}
	env := func(key string, dst *string) {
		if v, ok := os.LookupEnv(key); ok {
			*dst = v
		}
	}
	env("COINLEDGER_LISTEN", &c.Listen)
	env("COINLEDGER_DATA_DIR", &c.DataDir)
	env("COINLEDGER_EVENT_STORE", &c.EventStore)
	env("COINLEDGER_READ_MODELS", &c.ReadModels)
	env("COINLEDGER_WALLETNOTIFY_LISTEN", &c.WalletnotifyListen)
	if v, ok := os.LookupEnv("COINLEDGER_ADMIN_PASSWORD"); ok {
		c.AdminPassword = Secret(v)
	}
	if v, ok := os.LookupEnv("COINLEDGER_TRUSTED_PROXIES"); ok {
		c.TrustedProxies = nil
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				c.TrustedProxies = append(c.TrustedProxies, p)
			}
		}
	}
	if v, ok := os.LookupEnv("COINLEDGER_JWT_SECRET"); ok {
		c.JWTSecret = Secret(v)
	}
	if v, ok := os.LookupEnv("COINLEDGER_BCRYPT_COST"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, nil, fmt.Errorf("COINLEDGER_BCRYPT_COST: %q is not a number", v)
		}
		c.BcryptCost = n
	}
	if *listen != "" {
		c.Listen = *listen
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return &c, fs, nil
}
