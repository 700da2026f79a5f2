// Package blockio is a chainsync.Backend over block.io's REST API v2 for one
// wallet (one API key, one network: BTC, BTCTEST, LTC, LTCTEST, DOGE,
// DOGETEST).
//
// Every call is a POST of a JSON object to BaseURL+method carrying the API
// key in the body (never in the URL, so transport errors cannot leak it);
// block.io answers {"status":"success","data":{...}} or
// {"status":"fail","data":{"error_message":"..."}}. Amounts are decimal
// strings; they are parsed exactly to minor units (8 decimals), never
// through float64.
//
// What block.io lacks, and how the backend makes up for it:
//
//   - Height: block.io has no call for the best block. Height is derived
//     from the wallet's newest confirmed transaction: block_no +
//     confirmations - 1 of get_raw_transaction (confirmations count up to
//     block.io's tip). Before the wallet has a confirmed transaction
//     Height fails with ErrNoHeight.
//   - SinceBlock: block.io has no listsinceblock. It is emulated with
//     get_transactions (type received and sent, newest first, paged with
//     before_tx). LastBlock is the hash of the newest block holding a
//     wallet transaction, not of the tip: a real block hash that may lag
//     the tip, so the next call lists at least everything new (a
//     transaction may be listed twice; notifications are idempotent).
//     Paging stops at the first page without a new transaction; a
//     transaction that waited in the mempool long enough to be listed on a
//     later page is left to the notification sources and to the ledger's
//     polling of pending transactions.
//   - Which outputs are the wallet's: get_raw_transaction lists every
//     output, so the backend keeps the wallet's addresses (from
//     get_my_addresses and NewAddress) to pick them. A transaction with an
//     input from the wallet is the wallet's send: it reports its network
//     fee and no received outputs (its change is not income), as bitcoind
//     does.
//   - Double spends: block.io does not report conflicts, so Confirmations
//     is never negative.
//
// Sends follow block.io's current withdrawal flow: prepare_transaction
// (block.io picks inputs and builds the unsigned transaction), a Signer
// signs it client-side with the wallet's key (the PIN decrypts it), and
// submit_transaction broadcasts it. The prepared transaction is checked
// before it is signed: exactly one output pays the requested amount to the
// requested address, change goes back to the wallet, nothing goes to
// block.io (an output of category "blockio-fee" makes the send fail with
// ErrRejected: the ledger has no account for it). Subtracting the fee is
// emulated: get_network_fee_estimate gives the first guess and the send is
// prepared again (up to three times) until amount sent + fee = amount.
//
// The default Signer, PINSigner, does what block.io's own client libraries
// do: it derives an AES key from the PIN (PBKDF2-HMAC-SHA256), decrypts
// the wallet's passphrase (AES-256-ECB, CBC or GCM, as the user key says),
// takes its SHA-256 as the private key, rebuilds the transaction from the
// prepared inputs and outputs (it must have the txid block.io expects) and
// signs each input for the wallet's key (ECDSA over secp256k1, RFC 6979,
// low R and low S); block.io adds its own signature and broadcasts.
//
// Errors: a failure before submit_transaction was written is
// chainsync.ErrUnavailable (block.io unreachable, 5xx, rate limit, API key or
// IP refused, no PIN, a wrong one: ErrWrongPIN) or chainsync.ErrRejected
// (block.io refused to prepare the send: invalid address, insufficient
// balance, below the minimum; or the signer refused the prepared
// transaction: addresses that do not match their keys, another txid);
// anything that goes wrong once submit_transaction was written, including
// a "fail" answer, is chainsync.ErrAmbiguous: the transaction may be on the
// network. get_raw_transaction refused with HTTP 404 or a message saying
// the transaction is unknown ("not found", "does not exist", "invalid
// txid"...) is chainsync.ErrTxNotFound; any other refusal of it is
// chainsync.ErrUnavailable, since "not found" makes the ledger reverse
// deposits.
package blockio

import (
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/app/chainsync"
)

// DefaultBaseURL is block.io's API v2.
const DefaultBaseURL = "https://block.io/api/v2/"

// DefaultTimeout bounds one API call when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Networks block.io serves (Config.Network).
var Networks = []string{"BTC", "BTCTEST", "LTC", "LTCTEST", "DOGE", "DOGETEST"}

var (
	// ErrInvalidConfig: Config.Validate found a problem.
	ErrInvalidConfig = errors.New("blockio: invalid config")
	// ErrMalformed: block.io answered something this package cannot read.
	ErrMalformed = errors.New("blockio: malformed response")
	// ErrNoHeight: the wallet has no confirmed transaction yet, and
	// block.io offers no other way to learn the best block. It wraps
	// chainsync.ErrUnavailable.
	ErrNoHeight = fmt.Errorf("%w: blockio: no confirmed wallet transaction to derive the height from", chainsync.ErrUnavailable)
)

// Secret is a credential (package secret): it never prints, logs or
// marshals its value.
type Secret = secret.String

// Reveal returns the secret's value.

// Config configures a Backend.
type Config struct {
	// APIKey is the network's API key (block.io has one per network).
	APIKey Secret `yaml:"api_key"`
	// PIN is the secret PIN that decrypts the wallet's key; the Backend
	// only hands it to its Signer.
	PIN Secret `yaml:"pin"`
	// Network is block.io's network code, e.g. BTC or DOGETEST (any case).
	Network string `yaml:"network"`
	// BaseURL of the API (default DefaultBaseURL). https, or http to a
	// loopback address (tests).
	BaseURL string `yaml:"base_url"`
	// Timeout bounds each API call (default DefaultTimeout).
	Timeout time.Duration `yaml:"timeout"`
	// HTTPClient sends the requests (default: a client that does not
	// follow redirects). Its own Timeout, if any, also applies.
	HTTPClient *http.Client `yaml:"-" json:"-"`
}

func (c *Config) setDefaults() {
	c.Network = strings.ToUpper(strings.TrimSpace(c.Network))
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	if !strings.HasSuffix(c.BaseURL, "/") {
		c.BaseURL += "/"
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate sets the defaults and reports every problem at once (each
// wrapping ErrInvalidConfig).
func (c *Config) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if strings.TrimSpace(c.APIKey.Reveal()) == "" {
		bad("api_key is required")
	}
	if !slices.Contains(Networks, c.Network) {
		bad("network %q is not one of %s", c.Network, strings.Join(Networks, ", "))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || u.Host == "" {
		bad("base_url %q is not an absolute URL", c.BaseURL)
	} else if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		bad("base_url must not carry user info, a query or a fragment")
	} else if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		bad("base_url must be https (http only to a loopback address)")
	}
	if c.Timeout < 0 {
		bad("timeout %s is negative", c.Timeout)
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Backend is a chainsync.Backend over block.io. Safe for concurrent use.
type Backend struct {
	cfg    Config
	client *http.Client
	signer Signer
	now    func() time.Time

	// loadMu serialises reloads of the wallet's addresses.
	loadMu sync.Mutex

	mu             sync.Mutex
	addrs          map[string]bool // the wallet's addresses known so far
	addrsLoaded    bool
	addrsRefreshed time.Time
	blocks         map[string]int64 // block hash → height, learned from get_raw_transaction
}

var _ chainsync.Backend = (*Backend)(nil)

// New returns a Backend for cfg (validated, see Config.Validate) that signs
// withdrawals with signer (nil: PINSigner, which decrypts the wallet's key
// with cfg.PIN; without a PIN, Send fails with chainsync.ErrUnavailable). It
// does no I/O.
func New(cfg Config, signer Signer) (*Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if signer == nil {
		signer = PINSigner{}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Backend{
		cfg:    cfg,
		client: client,
		signer: signer,
		now:    time.Now,
		addrs:  map[string]bool{},
		blocks: map[string]int64{},
	}, nil
}

// Network returns the block.io network code the backend serves.
func (b *Backend) Network() string { return b.cfg.Network }
