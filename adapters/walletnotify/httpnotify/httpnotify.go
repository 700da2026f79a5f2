// Package httpnotify is the HTTP listener a node's walletnotify script
// posts to:
//
//	walletnotify=curl --data txid=%s http://127.0.0.1:28882/
//	walletnotify=curl --data txid=%s http://127.0.0.1:28882/LTC
//
// POST / is for the configured default coin, POST /{coin} for any
// configured coin. The txid comes as form field txid
// (application/x-www-form-urlencoded or multipart/form-data) or query
// parameter ?txid=. It is its own small net/http listener, apart from the
// API, and it should listen on loopback (or behind an SSH tunnel): a
// notification credits nothing by itself, but anyone who can post can make
// the ledger query the node.
//
// Responses, all JSON:
//
//	202 {"txid":"…","coin":"BTC"}            queued
//	400 {"code":"invalid_txid","message":…}  txid missing or not 64 hex digits
//	400 {"code":"invalid_request",…}         body that does not parse
//	404 {"code":"unknown_coin",…}
//	405 {"code":"method_not_allowed",…}      anything but POST
//	413 {"code":"body_too_large",…}          body over 64 KiB
//	503 {"code":"unavailable",…}             the sink refused it
package httpnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// MaxBodyBytes is the largest request body accepted.
const MaxBodyBytes = 64 << 10

// DefaultListen is the listen address when Config.Listen is empty.
const DefaultListen = "127.0.0.1:28882"

// Config configures a Server. It can be embedded in the service's YAML
// configuration.
type Config struct {
	// Listen is host:port (default 127.0.0.1:28882).
	Listen string `yaml:"listen"`
	// Coins are the coins accepted on POST /{coin} (matched without regard
	// to case; the sink gets the spelling given here).
	Coins []string `yaml:"coins"`
	// DefaultCoin is the coin of POST / (empty: POST / answers 404). It need
	// not be repeated in Coins.
	DefaultCoin string `yaml:"default_coin"`
	// Logger receives a line per request outcome (nil: discarded).
	Logger *slog.Logger `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
		}
	}
	for i, coin := range append([]string{c.DefaultCoin}, c.Coins...) {
		if (i > 0 && coin == "") || coin != strings.TrimSpace(coin) || strings.ContainsAny(coin, "/?#%") {
			errs = append(errs, fmt.Errorf("coins: %q is not a usable coin code", coin))
		}
	}
	if c.DefaultCoin == "" && len(c.Coins) == 0 {
		errs = append(errs, errors.New("coins: neither default_coin nor coins is set"))
	}
	return errors.Join(errs...)
}

// Server takes walletnotify posts and hands them to a sink.
type Server struct {
	cfg   Config
	sink  walletnotify.Sink
	coins map[string]string // lower-case → configured spelling
	log   *slog.Logger

	mu   sync.Mutex
	addr string
}

// New returns a server for cfg that hands notifications to sink. It does no
// I/O; see Serve.
func New(cfg Config, sink walletnotify.Sink) *Server {
	cfg.setDefaults()
	coins := make(map[string]string)
	for _, c := range append([]string{cfg.DefaultCoin}, cfg.Coins...) {
		if c != "" {
			coins[strings.ToLower(c)] = c
		}
	}
	return &Server{cfg: cfg, sink: sink, coins: coins, log: cfg.Logger}
}

// Addr is the address the server listens on once Serve has started
// listening (with port 0 resolved), "" before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Serve listens on Config.Listen and serves until ctx is done, then shuts
// down gracefully (requests in flight get up to 5 s). It returns nil after
// a shutdown caused by ctx, and an error if the configuration is invalid,
// it cannot listen or the server fails. Call it once.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("httpnotify config: %w", err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("httpnotify listen %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.log.Info("walletnotify http listening", "addr", ln.Addr().String(), "default_coin", s.cfg.DefaultCoin)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("httpnotify serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	<-served // http.ErrServerClosed
	s.log.Info("walletnotify http stopped", "addr", ln.Addr().String())
	return nil
}

// Handler returns the HTTP handler (what Serve serves), for tests or to
// mount elsewhere.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// problem is the JSON body of an error response.
type problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// accepted is the JSON body of a 202.
type accepted struct {
	TxID string `json:"txid"`
	Coin string `json:"coin"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var coin string
	if name == "" {
		coin = s.cfg.DefaultCoin
	} else if !strings.Contains(name, "/") {
		coin = s.coins[strings.ToLower(name)]
	}
	if coin == "" {
		writeJSON(w, http.StatusNotFound, problem{"unknown_coin", "no such coin: post to /{coin} for a configured coin"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, problem{"method_not_allowed", "use POST"})
		return
	}
	raw, err := txidFrom(w, r)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) || errors.Is(err, multipart.ErrMessageTooLarge) {
			writeJSON(w, http.StatusRequestEntityTooLarge, problem{"body_too_large", fmt.Sprintf("body over %d bytes", MaxBodyBytes)})
			return
		}
		s.log.Warn("walletnotify http bad request", "coin", coin, "remote", r.RemoteAddr, "error", err)
		writeJSON(w, http.StatusBadRequest, problem{"invalid_request", "cannot parse the body: send txid=… as a form"})
		return
	}
	if raw == "" {
		writeJSON(w, http.StatusBadRequest, problem{"invalid_txid", "missing txid: send txid=… as a form field or query parameter"})
		return
	}
	txid, err := walletnotify.ParseTxID(raw)
	if err != nil {
		s.log.Warn("walletnotify http invalid txid", "coin", coin, "remote", r.RemoteAddr, "error", err)
		writeJSON(w, http.StatusBadRequest, problem{"invalid_txid", "txid must be 64 hex digits"})
		return
	}
	n := walletnotify.Notification{Coin: coin, TxID: txid, Source: "http"}
	if err := s.sink(r.Context(), n); err != nil {
		s.log.Error("walletnotify http sink failed", "coin", coin, "txid", txid, "error", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{"unavailable", "notification not queued, try again"})
		return
	}
	s.log.Info("walletnotify received", "source", "http", "coin", coin, "txid", txid)
	writeJSON(w, http.StatusAccepted, accepted{TxID: txid, Coin: coin})
}

// txidFrom returns the txid field of the body (form or multipart form) or
// else of the query, "" if there is none. Bodies of other types are read
// (to enforce the size limit) and ignored.
func txidFrom(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.ContentLength > MaxBodyBytes {
		return "", &http.MaxBytesError{Limit: MaxBodyBytes}
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return "", fmt.Errorf("parse form: %w", err)
		}
	case "multipart/form-data":
		err := r.ParseMultipartForm(MaxBodyBytes)
		if r.MultipartForm != nil {
			defer r.MultipartForm.RemoveAll()
		}
		if err != nil {
			return "", fmt.Errorf("parse multipart form: %w", err)
		}
	default:
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return "", fmt.Errorf("read body: %w", err)
		}
	}
	// PostForm holds the fields of either form type.
	if v := r.PostForm["txid"]; len(v) > 0 {
		return v[0], nil
	}
	return r.URL.Query().Get("txid"), nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
