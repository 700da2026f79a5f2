package blockionotify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// WebhookPathPrefix is where the service mounts the web hook: block.io is
// given the URL <public base>/hooks/blockio/<token>.
const WebhookPathPrefix = "/hooks/blockio/"

// SignatureHeader carries "sha256=" + hex HMAC-SHA256(HMACKey, body) when
// WebhookConfig.HMACKey is set (see the package documentation).
const SignatureHeader = "Coinledger-Signature"

// MinTokenBytes is how much randomness a web hook token must carry.
const MinTokenBytes = 32

// Defaults of WebhookConfig.
const (
	DefaultDedupeWindow = 10 * time.Minute
	DefaultMaxBody      = 64 << 10
)

// dedupeSweep: the remembered events are swept for expired ones every so
// many new ones.
const dedupeSweep = 256

// WebhookConfig configures a Webhook.
type WebhookConfig struct {
	// Coin is the coin code the notifications carry, e.g. BTC.
	Coin string `yaml:"coin"`
	// Network is block.io's network code (default: Coin).
	Network string `yaml:"network"`
	// Token is the secret last segment of the hook's URL: at least
	// MinTokenBytes bytes, hex or base64url encoded (NewToken makes one).
	Token Secret `yaml:"token"`
	// HMACKey, when set, makes SignatureHeader mandatory (only for a relay
	// that signs; block.io cannot). At least 16 bytes.
	HMACKey Secret `yaml:"hmac_key"`
	// DedupeWindow: a delivery of an event passed on less than this long
	// ago is answered 200 and dropped (default DefaultDedupeWindow;
	// negative: no deduplication).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// MaxBody bounds a request body in bytes (default DefaultMaxBody).
	MaxBody int64 `yaml:"max_body"`
}

func (c *WebhookConfig) setDefaults() {
	c.Coin = strings.TrimSpace(c.Coin)
	if c.Network == "" {
		c.Network = c.Coin
	}
	c.Network = strings.ToUpper(strings.TrimSpace(c.Network))
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
}

// Validate sets the defaults and reports every problem at once (each
// wrapping ErrInvalidConfig).
func (c *WebhookConfig) Validate() error {
	c.setDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: webhook "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if c.Coin == "" {
		bad("coin is required")
	}
	if n := tokenBytes(c.Token.Reveal()); n < MinTokenBytes {
		bad("token must encode at least %d random bytes in hex or base64url (see NewToken)", MinTokenBytes)
	}
	if k := c.HMACKey.Reveal(); k != "" && len(k) < 16 {
		bad("hmac_key must be at least 16 bytes")
	}
	if c.MaxBody < 1024 {
		bad("max_body %d is below 1024", c.MaxBody)
	}
	return errors.Join(errs...)
}

// tokenBytes is how many bytes token encodes (0 if it is neither hex nor
// base64url).
func tokenBytes(token string) int {
	if b, err := hex.DecodeString(token); err == nil {
		return len(b)
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding} {
		if b, err := enc.DecodeString(token); err == nil {
			return len(b)
		}
	}
	return 0
}

// NewToken returns a fresh web hook token: MinTokenBytes random bytes,
// base64url encoded.
func NewToken() (string, error) {
	b := make([]byte, MinTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("blockionotify token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Sign returns the SignatureHeader value for body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Webhook is the http.Handler block.io posts notifications to. Safe for
// concurrent use.
type Webhook struct {
	cfg       WebhookConfig
	sink      walletnotify.Sink
	log       *slog.Logger
	tokenHash [sha256.Size]byte
	now       func() time.Time

	mu      sync.Mutex
	seen    map[string]time.Time // event key → when it was passed on (or is being)
	inserts int
}

// NewWebhook returns the handler for cfg (validated), passing
// notifications to sink. logger may be nil. It does no I/O.
func NewWebhook(cfg WebhookConfig, sink walletnotify.Sink, logger *slog.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, fmt.Errorf("%w: webhook needs a sink", ErrInvalidConfig)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Webhook{
		cfg:       cfg,
		sink:      sink,
		log:       logger.With("source", SourceWebhook, "coin", cfg.Coin),
		tokenHash: sha256.Sum256([]byte(cfg.Token.Reveal())),
		now:       time.Now,
		seen:      map[string]time.Time{},
	}, nil
}

// ServeHTTP takes one notification. The token is the {token} path value
// when the route has one, else the last segment of the path; a wrong one
// is answered like an unknown path (404) whatever the method.
func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if token == "" {
		token = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	got := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(got[:], h.tokenHash[:]) != 1 {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			reply(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		reply(w, http.StatusBadRequest, "unreadable body")
		return
	}
	if key := h.cfg.HMACKey.Reveal(); key != "" {
		want := Sign([]byte(key), body)
		if !hmac.Equal([]byte(r.Header.Get(SignatureHeader)), []byte(want)) {
			h.log.Warn("blockio webhook signature mismatch", "remote", r.RemoteAddr)
			reply(w, http.StatusUnauthorized, "bad signature")
			return
		}
	}
	n, err := decode(body)
	if err != nil {
		h.log.Warn("blockio webhook notification malformed", "err", err, "remote", r.RemoteAddr)
		reply(w, http.StatusBadRequest, "malformed notification")
		return
	}
	if n.kind != kindTx {
		reply(w, http.StatusOK, "ok") // block.io's ping on creation, block notifications
		return
	}
	if !networkOK(n.network, h.cfg.Network) {
		h.log.Warn("blockio webhook notification of another network dropped", "network", n.network, "txid", n.txid)
		reply(w, http.StatusOK, "ok")
		return
	}
	if !h.reserve(n.key) {
		reply(w, http.StatusOK, "ok") // a retried delivery of an event passed on already
		return
	}
	if err := h.sink(r.Context(), walletnotify.Notification{Coin: h.cfg.Coin, TxID: n.txid, Source: SourceWebhook}); err != nil {
		h.release(n.key)
		h.log.Warn("blockio webhook notification not taken", "txid", n.txid, "err", err)
		reply(w, http.StatusServiceUnavailable, "try again later")
		return
	}
	reply(w, http.StatusOK, "ok")
}

func reply(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	io.WriteString(w, text+"\n")
}

// reserve records key as passed on and reports true, unless it was within
// the window (false).
func (h *Webhook) reserve(key string) bool {
	if h.cfg.DedupeWindow < 0 {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if at, ok := h.seen[key]; ok && now.Sub(at) < h.cfg.DedupeWindow {
		return false
	}
	h.seen[key] = now
	if h.inserts++; h.inserts%dedupeSweep == 0 {
		for k, at := range h.seen {
			if now.Sub(at) >= h.cfg.DedupeWindow {
				delete(h.seen, k)
			}
		}
	}
	return true
}

// release forgets key (the sink did not take it: a retry must get
// through).
func (h *Webhook) release(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.seen, key)
}
