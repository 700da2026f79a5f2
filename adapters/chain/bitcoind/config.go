package bitcoind

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/btcsuite/btcd/chaincfg"

	"github.com/coinledger/coinledger/adapters/secret"
)

// Defaults of Config.
const (
	DefaultTimeout = 30 * time.Second
	// DefaultFeeRate is btcwallet's own fee rate (satoshis per 1000
	// virtual bytes), also the relay minimum of bitcoind and btcd.
	DefaultFeeRate = 1000
	// DefaultUnlockTimeout is how long an encrypted wallet stays unlocked
	// for one send at most (it is locked again right after).
	DefaultUnlockTimeout = 10 * time.Second
)

// networks maps Config.Network to the chain's parameters.
var networks = map[string]*chaincfg.Params{
	"mainnet":  &chaincfg.MainNetParams,
	"testnet3": &chaincfg.TestNet3Params,
	"regtest":  &chaincfg.RegressionNetParams,
	"simnet":   &chaincfg.SimNetParams,
	"signet":   &chaincfg.SigNetParams,
}

// Config says how to reach one node's wallet.
type Config struct {
	// URL of the node's JSON-RPC, http://user:pass@host:port; a path such
	// as /wallet/hot picks one of bitcoind's wallets. The credentials may
	// be left out when CookieFile is set.
	URL string `yaml:"url"`
	// CookieFile is bitcoind's .cookie file, read on every call (the node
	// writes a new one when it restarts). Used when URL has no password.
	CookieFile string `yaml:"cookie_file"`
	// Network the node runs: mainnet (the default), testnet3, regtest,
	// simnet or signet. Addresses are checked against it where the adapter
	// builds a transaction itself.
	Network string `yaml:"network"`
	// Timeout of one RPC call (default 30s). A send that times out after
	// reaching the node is chainsync.ErrAmbiguous. Other calls are retried
	// (by rpcclient) while the node cannot be reached, until Timeout.
	Timeout time.Duration `yaml:"timeout"`
	// FeeRate in satoshis per 1000 virtual bytes of the transactions the
	// adapter builds itself: subtract-fee sends on nodes whose sendtoaddress
	// cannot take the fee out of the amount (btcwallet). Default 1000.
	FeeRate int64 `yaml:"fee_rate"`
	// WalletPassphrase unlocks an encrypted wallet for each send
	// (walletpassphrase for UnlockTimeout, walletlock right after). Empty:
	// the wallet is not encrypted, or an operator keeps it unlocked. It
	// never prints, logs or marshals.
	WalletPassphrase secret.String `yaml:"wallet_passphrase"`
	// UnlockTimeout bounds how long the wallet stays unlocked should the
	// walletlock after a send not reach the node (default 10s, at most 1h).
	UnlockTimeout time.Duration `yaml:"unlock_timeout"`
}

// withDefaults fills in what was left empty.
func (c Config) withDefaults() Config {
	if c.Network == "" {
		c.Network = "mainnet"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.FeeRate == 0 {
		c.FeeRate = DefaultFeeRate
	}
	if c.UnlockTimeout == 0 {
		c.UnlockTimeout = DefaultUnlockTimeout
	}
	return c
}

// Validate reports every problem of the configuration at once (after
// defaults). Its messages never contain the password.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url is required"))
	} else if u, err := url.Parse(c.URL); err != nil { // err would quote the password
		errs = append(errs, errors.New("url is not a valid URL"))
	} else {
		if u.Scheme != "http" && u.Scheme != "https" {
			errs = append(errs, fmt.Errorf("url scheme %q: want http or https", u.Scheme))
		}
		if u.Host == "" {
			errs = append(errs, errors.New("url has no host"))
		}
		if _, ok := u.User.Password(); !ok && c.CookieFile == "" {
			errs = append(errs, errors.New("url has no password and cookie_file is empty"))
		}
	}
	if _, ok := networks[c.Network]; !ok {
		errs = append(errs, fmt.Errorf("network %q: want mainnet, testnet3, regtest, simnet or signet", c.Network))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s is negative", c.Timeout))
	}
	if c.FeeRate < 0 {
		errs = append(errs, fmt.Errorf("fee_rate %d is negative", c.FeeRate))
	}
	if c.UnlockTimeout < time.Second || c.UnlockTimeout > time.Hour {
		errs = append(errs, fmt.Errorf("unlock_timeout %s: want 1s to 1h", c.UnlockTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bitcoind config: %w", err)
	}
	return nil
}

// String describes the configuration with the password masked.
func (c Config) String() string {
	return fmt.Sprintf("bitcoind{url: %s, cookie_file: %q, network: %s, timeout: %s, fee_rate: %d}",
		c.redactedURL(), c.CookieFile, c.Network, c.Timeout, c.FeeRate)
}

// redactedURL is the URL with its password masked.
func (c Config) redactedURL() string {
	if u, err := url.Parse(c.URL); err == nil {
		return u.Redacted()
	}
	return "(invalid url)"
}

// MarshalYAML writes the configuration with the URL's password masked
// (coinledger config show).
func (c Config) MarshalYAML() (any, error) {
	type plain Config // without the method
	p := plain(c)
	p.URL = c.redactedURL()
	return p, nil
}

// GoString is String, so that %#v does not print the password either.
func (c Config) GoString() string { return c.String() }
