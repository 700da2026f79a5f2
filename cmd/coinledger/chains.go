package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/bitcoind"
	"github.com/coinledger/coinledger/adapters/chain/blockio"
	"github.com/coinledger/coinledger/adapters/chain/null"
	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/blockionotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/httpnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/pipe"
	"github.com/coinledger/coinledger/adapters/walletnotify/redisnotify"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// CoinConfig binds a coin to its chain backend.
type CoinConfig struct {
	Coin    string `yaml:"coin"`
	Backend string `yaml:"backend"` // null (simulated), bitcoind, blockio
	// PollInterval: how often the node's block height is polled and
	// requested withdrawals are looked for (default 5 s, 1 s for null).
	PollInterval time.Duration   `yaml:"poll_interval"`
	Bitcoind     bitcoind.Config `yaml:"bitcoind"`
	Blockio      blockio.Config  `yaml:"blockio"`
}

// WalletnotifyConfig lists the walletnotify channels besides the HTTP
// listener (walletnotify_listen).
type WalletnotifyConfig struct {
	Pipes []pipe.Config        `yaml:"pipes"`
	Redis []redisnotify.Config `yaml:"redis"`
	// BlockioWebsockets subscribe to block.io's notifications for the
	// addresses of the coin's wallets.
	BlockioWebsockets []blockionotify.WebsocketConfig `yaml:"blockio_websockets"`
	// BlockioWebhook takes block.io's notification POSTs on the API
	// listener at /hooks/blockio/<token>.
	BlockioWebhook *blockionotify.WebhookConfig `yaml:"blockio_webhook"`
	Router         walletnotify.RouterOptions   `yaml:"router"`
}

// Backend kinds.
const (
	backendNull     = "null"
	backendBitcoind = "bitcoind"
	backendBlockio  = "blockio"
)

func (c *CoinConfig) validate() error {
	if _, ok := money.Lookup(c.Coin); !ok {
		return fmt.Errorf("coins: unknown coin %q", c.Coin)
	}
	switch c.Backend {
	case backendNull:
	case backendBitcoind:
		if err := c.Bitcoind.Validate(); err != nil {
			return fmt.Errorf("coins %s: bitcoind: %w", c.Coin, err)
		}
	case backendBlockio:
		if err := c.Blockio.Validate(); err != nil {
			return fmt.Errorf("coins %s: blockio: %w", c.Coin, err)
		}
	default:
		return fmt.Errorf("coins %s: backend %q: want null, bitcoind or blockio", c.Coin, c.Backend)
	}
	return nil
}

// coins returns the configured coins; none configured means BTC on the
// simulated null chain (the embedded default).
func (c *Config) coins() []CoinConfig {
	if len(c.Coins) == 0 {
		return []CoinConfig{{Coin: "BTC", Backend: backendNull}}
	}
	return c.Coins
}

// wireChains opens each coin's backend, binds it to a syncer, and starts
// the walletnotify channels feeding one watermill topic whose router asks
// the coin's syncer about each txid.
func (svc *service) wireChains(cfg *Config, reg *chainsync.Registry, ps pubSub, logger *slog.Logger) error {
	var coins []string
	for _, cc := range cfg.coins() {
		b, err := openBackend(cc)
		if err != nil {
			return err
		}
		if cc.Backend == backendNull {
			logger.Warn("coin " + cc.Coin + " is bound to the SIMULATED null backend: no real chain; deposits and blocks only through the admin simulate endpoints; the simulated chain is kept in memory")
			if cc.PollInterval == 0 {
				cc.PollInterval = time.Second
			}
		}
		reg.Add(cc.Coin, b, chainsync.Options{Kind: cc.Backend, PollInterval: cc.PollInterval})
		coins = append(coins, cc.Coin)
	}
	svc.workers = append(svc.workers, func(ctx context.Context) error { reg.Run(ctx); return nil })

	opts := cfg.Walletnotify.Router
	opts.Logger = logger
	router, err := walletnotify.NewRouter(ps, ps, notifyHandler(reg), opts)
	if err != nil {
		return fmt.Errorf("walletnotify router: %w", err)
	}
	svc.workers = append(svc.workers, router.Run)
	sink := walletnotify.Publish(ps)
	if cfg.WalletnotifyListen != "off" {
		srv := httpnotify.New(httpnotify.Config{Listen: cfg.WalletnotifyListen, Coins: coins, DefaultCoin: coins[0], Logger: logger}, sink)
		svc.workers = append(svc.workers, srv.Serve)
	}
	for _, pc := range cfg.Walletnotify.Pipes {
		pc.Logger = logger
		svc.workers = append(svc.workers, pipe.New(pc, sink).Run)
	}
	for _, rc := range cfg.Walletnotify.Redis {
		rc.Logger = logger
		svc.workers = append(svc.workers, redisnotify.New(rc, sink).Run)
	}
	for _, wc := range cfg.Walletnotify.BlockioWebsockets {
		s, err := reg.Syncer(wc.Coin)
		if err != nil {
			return fmt.Errorf("walletnotify blockio websocket: %w", err)
		}
		ws, err := blockionotify.NewWebsocket(wc, sink, s.Addresses, logger)
		if err != nil {
			return fmt.Errorf("walletnotify blockio websocket: %w", err)
		}
		svc.workers = append(svc.workers, ws.Run)
	}
	if wc := cfg.Walletnotify.BlockioWebhook; wc != nil {
		h, err := blockionotify.NewWebhook(*wc, sink, logger)
		if err != nil {
			return fmt.Errorf("walletnotify blockio webhook: %w", err)
		}
		svc.hooks = h
	}
	return nil
}

func openBackend(cc CoinConfig) (chainsync.Backend, error) {
	switch cc.Backend {
	case backendBitcoind:
		b, err := bitcoind.Open(cc.Bitcoind)
		if err != nil {
			return nil, fmt.Errorf("coin %s: %w", cc.Coin, err)
		}
		return b, nil
	case backendBlockio:
		// Withdrawals are signed here with the wallet's key, decrypted
		// with the configured PIN (blockio.PINSigner).
		b, err := blockio.New(cc.Blockio, nil)
		if err != nil {
			return nil, fmt.Errorf("coin %s: %w", cc.Coin, err)
		}
		return b, nil
	default:
		return null.New(cc.Coin), nil
	}
}

// notifyHandler handles a walletnotify: the coin's syncer asks its node.
// An unknown coin, or what the ledger refuses as invalid, can never
// succeed (poisoned at once); anything else (the node or the store
// unavailable) is retried by the router, then poisoned.
func notifyHandler(reg *chainsync.Registry) walletnotify.Handler {
	return func(ctx context.Context, n walletnotify.Notification) error {
		s, err := reg.Syncer(strings.ToUpper(n.Coin))
		if err != nil {
			return walletnotify.Permanent(err)
		}
		_, err = s.Notify(ctx, n.TxID)
		if errors.Is(err, ledger.ErrValidation) {
			return walletnotify.Permanent(err)
		}
		return err
	}
}
