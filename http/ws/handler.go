package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/auth"
	"golang.org/x/sync/errgroup"
)

// Close codes of the protocol beyond RFC 6455's.
const (
	// StatusUnauthorized: no, a bad or an expired token.
	StatusUnauthorized websocket.StatusCode = 4401
	// StatusTooSlow: the client fell more than Config.MaxBehind events behind.
	StatusTooSlow websocket.StatusCode = 4408
	// StatusTooManyConnections: the user already holds
	// Config.MaxConnsPerUser connections (for a token sent in the first
	// message; a header token is refused with HTTP 429 before the upgrade).
	StatusTooManyConnections websocket.StatusCode = 4429
)

// Defaults of Config.
const (
	DefaultMaxBehind       = 10000
	DefaultMaxConnsPerUser = 8
)

const (
	readLimit      = 64 << 10
	writeTimeout   = 30 * time.Second
	maxBadMessages = 3
	maxOwnerCache  = 4096
)

// Principal is an authenticated caller.
type Principal struct {
	Username string
	// CanRead reports whether the caller may read wallet (the effective
	// read permission; true for admins). Nil: no wallet. Called from the
	// connection's subscription goroutine, once per matching wallet event.
	CanRead func(wallet string) bool
	// StillValid reports whether the credential the caller authenticated
	// with still works (not logged out, revoked, or its user disabled).
	// The connection asks every Config.RecheckEvery and when
	// Handler.Recheck names the user; false closes it with 4401. An error
	// (the check could not be made) is logged and the connection stays
	// until the next check. Nil: never rechecked.
	StillValid func(ctx context.Context) (bool, error)
}

// Config configures a Handler. Store and Authenticate are required.
type Config struct {
	Store eventstore.Store
	// Authenticate returns the caller a token belongs to and when the token
	// expires (zero: never); r is the upgrade request (its context, the
	// client's address). Any error refuses the token: HTTP 401 for the
	// header, close 4401 for the first message. It must not put the token
	// into its error.
	Authenticate func(r *http.Request, token string) (Principal, time.Time, error)
	// AlertOwner returns the owner of an alert, "" if there is no such
	// alert, for alert events that carry no owner (alerts.rearmed,
	// alerts.deleted). An error closes the connection with 1011. Default:
	// the owner of the alert stream's first event, read from Store.
	AlertOwner func(ctx context.Context, alertID string) (string, error)
	// Heartbeat is the interval of heartbeat messages (default 15 s).
	Heartbeat time.Duration
	// AuthTimeout bounds the wait for the first message's token (default 10 s).
	AuthTimeout time.Duration
	// MaxBehind is how many events may wait for one connection before it is
	// closed with 4408 (default DefaultMaxBehind). It must exceed the
	// largest batch Store.Subscribe delivers (SQLite: 4096), or catching up
	// always fails.
	MaxBehind int
	// MaxConnsPerUser caps the connections one user holds at a time
	// (default DefaultMaxConnsPerUser); one more is refused with HTTP 429
	// before the upgrade (header token) or closed with 4429 (first-message
	// token).
	MaxConnsPerUser int
	// RecheckEvery is how often a connection asks Principal.StillValid
	// (default 2 s): a revoked credential loses its sockets within it.
	RecheckEvery time.Duration
	// Logger gets store and AlertOwner failures at error level and refused
	// tokens at debug level, never a token (default: discard).
	Logger *slog.Logger
	// OriginPatterns are the hosts, besides the request's own, that browsers
	// may open the websocket from (see websocket.AcceptOptions).
	OriginPatterns []string
}

func (c *Config) setDefaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.MaxBehind <= 0 {
		c.MaxBehind = DefaultMaxBehind
	}
	if c.MaxConnsPerUser <= 0 {
		c.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if c.RecheckEvery <= 0 {
		c.RecheckEvery = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AlertOwner == nil {
		c.AlertOwner = storeAlertOwner(c.Store)
	}
}

// Handler serves the websocket endpoint. It is an http.Handler; mount it at
// GET /api/v1/ws.
type Handler struct {
	cfg Config

	mu       sync.Mutex
	shutdown bool
	done     chan struct{} // closed by Shutdown
	conns    sync.WaitGroup
	users    map[string]map[*session]struct{} // the authenticated connections per user
}

// New returns a Handler. It panics if cfg lacks Store or Authenticate.
func New(cfg Config) *Handler {
	if cfg.Store == nil || cfg.Authenticate == nil {
		panic("ws.New: Config.Store and Config.Authenticate are required")
	}
	cfg.setDefaults()
	return &Handler{cfg: cfg, done: make(chan struct{}), users: map[string]map[*session]struct{}{}}
}

// ServeHTTP authenticates the header token if there is one, upgrades the
// connection and serves the protocol of the package comment until the
// connection ends. After Shutdown it answers 503.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var p *Principal
	var expiry time.Time
	if header := r.Header.Get("Authorization"); header != "" {
		var err error
		if p, expiry, err = h.authenticate(r, header); err != nil {
			h.cfg.Logger.Debug("websocket authentication failed", "err", err)
			writeUnauthorized(w, r)
			return
		}
	}
	if !h.enter() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.conns.Done()
	s := &session{h: h, req: r, out: newOutbox(h.cfg.MaxBehind), log: h.cfg.Logger, feed: feed{cfg: &h.cfg, owners: map[string]string{}},
		recheck: make(chan struct{}, 1)}
	defer h.leave(s)
	if p != nil && !h.admit(s, p.Username) {
		h.cfg.Logger.Warn("websocket refused: too many connections", "username", p.Username)
		writeTooMany(w, r, h.cfg.MaxConnsPerUser)
		return
	}
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.cfg.OriginPatterns})
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(readLimit)
	s.conn = conn
	s.run(r.Context(), p, expiry)
}

// admit counts s in as a connection of username, unless the user holds
// MaxConnsPerUser already.
func (h *Handler) admit(s *session, username string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.users[username]
	if len(set) >= h.cfg.MaxConnsPerUser {
		return false
	}
	if set == nil {
		set = map[*session]struct{}{}
		h.users[username] = set
	}
	set[s] = struct{}{}
	s.admittedAs = username
	return true
}

// Admit counts a websocket served beside the handler's (JSON-RPC's) in as
// one of username's connections, under the same MaxConnsPerUser, unless
// the user holds that many already; leave counts it out.
func (h *Handler) Admit(username string) (leave func(), ok bool) {
	s := &session{} // a key of h.users only: Recheck finds no channel to signal
	if !h.admit(s, username) {
		return nil, false
	}
	return func() { h.leave(s) }, true
}

// leave counts s out, if admit counted it in.
func (h *Handler) leave(s *session) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.admittedAs == "" {
		return
	}
	set := h.users[s.admittedAs]
	delete(set, s)
	if len(set) == 0 {
		delete(h.users, s.admittedAs)
	}
}

// Recheck makes every connection of username ask Principal.StillValid now,
// rather than at its next periodic check: call it when a credential of the
// user has been revoked (logout, session revocation, API key revocation,
// disabling). Connections of other instances notice within RecheckEvery.
func (h *Handler) Recheck(username string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.users[username] {
		select {
		case s.recheck <- struct{}{}:
		default:
		}
	}
}

// connsOf returns the number of authenticated connections of username.
func (h *Handler) connsOf(username string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users[username])
}

// Shutdown closes every connection with 1001 (going away), refuses new
// ones, and waits until their goroutines have returned or ctx is done.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if !h.shutdown {
		h.shutdown = true
		close(h.done)
	}
	h.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		h.conns.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("websocket shutdown: %w", ctx.Err())
	}
}

// ErrBadTopics: Follow was given no topic or an unknown one.
var ErrBadTopics = errors.New("bad topics")

// ErrRevoked: the credential of a Follow's principal stopped working.
var ErrRevoked = errors.New("credentials revoked")

// Follow sends p the event messages of topics (the websocket's "event"
// messages, see the package comment) after position from (nil: after the
// log's head), the stored ones first and then new ones as they happen, in
// increasing position and with the websocket's audiences, until ctx is
// done or send fails (its error is returned). It calls started with the
// position it follows after before sending anything. No topic or an
// unknown one is an error wrapping ErrBadTopics, before started. As a
// connection does, it asks p.StillValid every Config.RecheckEvery and
// returns ErrRevoked once the credential no longer works. JSON-RPC
// subscriptions follow the log through it.
func (h *Handler) Follow(ctx context.Context, p Principal, topics []string, from *uint64,
	started func(after uint64), send func(msg []byte) error) error {
	topics, bad := checkTopics(topics)
	if bad != nil {
		return fmt.Errorf("%w: %s", ErrBadTopics, bad.Message)
	}
	var after uint64
	if from != nil {
		after = *from
	} else {
		head, err := h.cfg.Store.Head(ctx)
		if err != nil {
			return fmt.Errorf("follow: %w", err)
		}
		after = head
	}
	started(after)
	ctx, cancel := context.WithCancelCause(ctx)
	var g errgroup.Group
	defer func() {
		cancel(nil)
		_ = g.Wait()
	}()
	if p.StillValid != nil {
		g.Go(func() error {
			t := time.NewTicker(h.cfg.RecheckEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					if ok, err := p.StillValid(ctx); err == nil && !ok {
						cancel(ErrRevoked)
						return nil
					}
				}
			}
		})
	}
	f := &feed{cfg: &h.cfg, user: p, owners: map[string]string{}}
	err := h.cfg.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		items, err := f.messages(ctx, topics, events)
		if err != nil {
			return err
		}
		for _, it := range items {
			if err := send(it.msg); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(context.Cause(ctx), ErrRevoked) {
		return ErrRevoked
	}
	return err
}

// Done is closed when Shutdown begins: other websockets served beside the
// handler's (JSON-RPC's) close then too.
func (h *Handler) Done() <-chan struct{} { return h.done }

// enter counts a connection in, unless Shutdown has begun.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return false
	}
	h.conns.Add(1)
	return true
}

// authenticate checks an Authorization header's bearer token.
func (h *Handler) authenticate(r *http.Request, header string) (*Principal, time.Time, error) {
	token, ok := auth.ParseBearer(header)
	if !ok {
		return nil, time.Time{}, fmt.Errorf("authorization header: not a bearer token")
	}
	return h.authenticateToken(r, token)
}

// authenticateToken checks a token and its expiry.
func (h *Handler) authenticateToken(r *http.Request, token string) (*Principal, time.Time, error) {
	if token == "" {
		return nil, time.Time{}, fmt.Errorf("empty token")
	}
	p, expiry, err := h.cfg.Authenticate(r, token)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !expiry.IsZero() && !time.Now().Before(expiry) {
		return nil, time.Time{}, fmt.Errorf("token of %s expired at %s", p.Username, expiry.Format(time.RFC3339))
	}
	return &p, expiry, nil
}

// writeUnauthorized answers 401 with a problem document like the REST API's.
func writeUnauthorized(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
}

// writeTooMany answers 429 with a problem document: the user holds max
// connections already.
func writeTooMany(w http.ResponseWriter, r *http.Request, max int) {
	writeProblem(w, r, http.StatusTooManyRequests, "too_many_connections",
		fmt.Sprintf("the user holds %d websocket connections already, the most allowed", max))
}

// writeProblem answers status with a problem document shaped like the REST
// API's.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "https://coinledger.dev/problems/" + code, "title": http.StatusText(status),
		"status": status, "code": code, "detail": detail, "instance": r.URL.Path,
	})
}

// storeAlertOwner returns the owner recorded in the first event of an
// alert's stream, "" for an alert without events.
func storeAlertOwner(store eventstore.Store) func(context.Context, string) (string, error) {
	return func(ctx context.Context, id string) (string, error) {
		stream := alerts.ID(id).Stream()
		events, err := store.ReadStream(ctx, stream, 0, 1)
		if err != nil {
			return "", fmt.Errorf("read owner of %s: %w", stream, err)
		}
		if len(events) == 0 {
			return "", nil
		}
		return ownerOf(events[0].Data), nil
	}
}

// ownerOf returns the owner member of an alert event's data, "" if none.
func ownerOf(data json.RawMessage) string {
	var v struct {
		Owner string `json:"owner"`
	}
	if json.Unmarshal(data, &v) != nil {
		return ""
	}
	return v.Owner
}
