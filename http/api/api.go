// Package api is coinledger's HTTP surface: the REST API under /api/v1 and
// the operational endpoints at the root (/healthz, /readyz).
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/app/market"
	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/http/metrics"
	"github.com/coinledger/coinledger/http/ws"
	"github.com/coinledger/coinledger/projections"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Deps is what the API needs from the rest of the service.
type Deps struct {
	Store eventstore.Store
	// StoreKind names the event store's kind (sqlite, esdb) in exports.
	StoreKind string
	DB        projections.DB
	Runner    *projections.Runner
	Wallets   *wallets.Service
	Users     *users.Service
	Issuer    *auth.Issuer
	ClientIP  *auth.ClientIP      // the caller's address, behind trusted proxies
	Logins    *auth.LoginGuard    // login attempts
	Chains    *chainsync.Registry // the coins' chain backends
	Market    *market.Service     // price ticks
	Alerts    *alerting.Service   // price alerts
	Outbox    *outbox.Notifier    // alert deliveries
	// Audit signs checkpoints and answers liability proofs (zero: the
	// endpoints that need it answer 503 signer_unavailable).
	Audit AuditDeps
	// Websocket limits the realtime endpoint (zero fields: ws defaults).
	Websocket WebsocketLimits
	// Hooks, when set, takes the notification POSTs of external services
	// under /hooks/ (the block.io web-hook); it authenticates them itself.
	Hooks   http.Handler
	Logger  *slog.Logger
	Version string
	// Now is the clock commands that depend on the time read (hold
	// expiry); nil means time.Now.
	Now func() time.Time
}

// WebsocketLimits bound the websocket endpoint's use of the server (see
// ws.Config; zero: its default).
type WebsocketLimits struct {
	MaxConnsPerUser   int           // concurrent connections per user (default 8)
	MaxBufferedEvents int           // events waiting for one connection before it is closed with 4408 (default 10000)
	RecheckEvery      time.Duration // how often a connection's credential is checked again (default 2 s)
}

// Backend describes a coin's chain backend for the status endpoint.
type Backend struct {
	Coin      string `json:"coin"`
	Kind      string `json:"kind"`
	Simulated bool   `json:"simulated"`
}

func (h *handlers) backends() []Backend {
	out := []Backend{}
	if h.d.Chains == nil {
		return out
	}
	for _, s := range h.d.Chains.Syncers() {
		out = append(out, Backend{Coin: s.Coin(), Kind: s.Kind(), Simulated: s.Kind() == "null"})
	}
	return out
}

// API is the HTTP handler; Shutdown closes what an http.Server's
// Shutdown does not (websocket connections).
type API struct {
	*echo.Echo
	hub *ws.Handler
}

// Shutdown closes the websocket connections and waits for them.
func (a *API) Shutdown(ctx context.Context) error { return a.hub.Shutdown(ctx) }

// New builds the HTTP handler.
func New(d Deps) *API {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	h := &handlers{d: d}
	m := metrics.New(d.Version, scrape{d.Store, d.Runner})
	hub := ws.New(ws.Config{Store: d.Store, Authenticate: h.wsPrincipal, Logger: d.Logger,
		MaxConnsPerUser: d.Websocket.MaxConnsPerUser, MaxBehind: d.Websocket.MaxBufferedEvents,
		RecheckEvery: d.Websocket.RecheckEvery})
	h.hub = hub
	e.HTTPErrorHandler = h.errorHandler
	e.Use(m.Middleware())
	e.Use(requestID)
	e.Use(h.accessLog)
	e.Use(middleware.Recover())
	e.Use(middleware.BodyLimit("1M"))
	RegisterDocs(e)
	e.GET("/healthz", h.healthz)
	e.GET("/readyz", h.readyz)
	e.GET("/metrics", echo.WrapHandler(m.Handler()))
	if d.Hooks != nil {
		e.Any("/hooks/*", echo.WrapHandler(d.Hooks))
	}

	h.mountRPC(e)

	v1 := e.Group("/api/v1")
	v1.POST("/auth/login", h.login)
	v1.POST("/auth/token", h.token)
	// Public keys are public: whoever holds a checkpoint or a proof may
	// fetch them to verify it.
	v1.GET("/audit/public-key", h.publicKeys)

	// The ws package speaks the protocol and authenticates by header or
	// first message; wsPrincipal checks credentials and wallet
	// permissions (IP allowlists too) as for every other endpoint.
	v1.GET("/ws", echo.WrapHandler(hub))
	in := v1.Group("", h.authenticate)
	in.GET("/status", h.status)
	in.POST("/projections/:name/retry", h.retryProjection, requireAdmin)
	in.POST("/followers/:name/retry", h.retryProjection, requireAdmin)
	in.POST("/followers/:name/skip", h.skipFollowerEvent, requireAdmin)
	in.GET("/projections", h.listReadModels, requireAdmin)
	in.POST("/projections/:name/rebuild", h.rebuildProjection, requireAdmin)
	in.GET("/projections/jobs", h.listRebuildJobs, requireAdmin)
	in.GET("/projections/jobs/:id", h.getRebuildJob, requireAdmin)
	in.GET("/me", h.me)
	in.POST("/auth/logout", h.logout)
	in.POST("/api-keys", h.createAPIKey)
	in.DELETE("/api-keys/:id", h.deleteAPIKey)
	in.POST("/users", h.createUser, requireAdmin)
	in.GET("/users", h.listUsers, requireAdmin)
	in.PUT("/users/:username/wallets/:wallet", h.grant, requireAdmin)
	in.DELETE("/users/:username/wallets/:wallet", h.revokeGrant, requireAdmin)
	in.POST("/users/:username/revoke-sessions", h.revokeSessions, requireAdmin)
	in.POST("/users/:username/disable", h.disableUser, requireAdmin)
	in.POST("/users/:username/enable", h.enableUser, requireAdmin)
	in.POST("/prices", h.pushPrice, requireRole(identity.RolePriceFeeder))
	in.GET("/prices/:pair", h.getPrice)
	in.GET("/prices/:pair/history", h.priceHistory)
	in.POST("/alerts", h.createAlert)
	in.GET("/alerts", h.listAlerts)
	in.DELETE("/alerts/:id", h.deleteAlert)
	in.GET("/alerts/:id/deliveries", h.listDeliveries)
	in.POST("/alerts/:id/deliveries/:delivery/redeliver", h.redeliver)
	in.GET("/events", h.listEvents, requireRole(identity.RoleAuditor))
	in.GET("/events/stream", h.streamEvents, requireRole(identity.RoleAuditor))
	in.GET("/events/export", h.exportEvents, requireAdmin)
	in.GET("/streams/:stream", h.getStream, requireRole(identity.RoleAuditor))
	in.GET("/audit/checkpoints", h.listCheckpoints, requireRole(identity.RoleAuditor))
	in.POST("/audit/checkpoints", h.createCheckpoint, requireRole(identity.RoleAuditor))
	in.GET("/wallets", h.listWallets)
	in.POST("/wallets", h.createWallet, requireAdmin)

	w := in.Group("/wallets/:wallet")
	w.GET("", h.getWallet, h.walletAccess(ledger.PermRead))
	w.POST("/lock", h.lockWallet, h.walletAccess(ledger.PermLock))
	w.POST("/unlock", h.unlockWallet, h.walletAccess(ledger.PermLock))
	w.POST("/accounts", h.createAccount, h.walletAccess(ledger.PermTransfer))
	w.GET("/accounts", h.listAccounts, h.walletAccess(ledger.PermRead))
	w.GET("/accounts/:account", h.getAccount, h.walletAccess(ledger.PermRead))
	w.GET("/accounts/:account/entries", h.entries, h.walletAccess(ledger.PermRead))
	w.GET("/accounts/:account/balance", h.balanceAt, h.walletAccess(ledger.PermRead))
	w.GET("/accounts/:account/liability-proof", h.liabilityProof, h.walletAccess(ledger.PermRead))
	w.POST("/accounts/:account/imports", h.importBalance, h.walletAccess(""), requireAdmin)
	w.POST("/accounts/:account/holds", h.placeHold, h.walletAccess(ledger.PermFreeze))
	w.GET("/holds/:id", h.getHold, h.walletAccess(ledger.PermRead))
	w.POST("/holds/:id/release", h.releaseHold, h.walletAccess(ledger.PermFreeze))
	w.POST("/transfers", h.createTransfer, h.walletAccess(ledger.PermTransfer))
	w.GET("/transfers/:id", h.getTransfer, h.walletAccess(ledger.PermRead))
	w.POST("/accounts/:account/addresses", h.createAddress, h.walletAccess(ledger.PermAddress))
	w.GET("/deposits", h.listDeposits, h.walletAccess(ledger.PermRead))
	w.POST("/withdrawals", h.createWithdrawal, h.walletAccess(ledger.PermWithdraw))
	w.GET("/withdrawals/:id", h.getWithdrawal, h.walletAccess(ledger.PermRead))
	w.POST("/withdrawals/:id/resolve", h.resolveWithdrawal, h.walletAccess(""), requireAdmin)
	w.POST("/rescan", h.rescan, h.walletAccess(ledger.PermRescan))
	w.GET("/rescans/:id", h.getRescan, h.walletAccess(ledger.PermRead))
	w.POST("/simulate/deposit", h.simulateDeposit, h.walletAccess(""), requireAdmin)
	w.POST("/simulate/blocks", h.simulateBlocks, h.walletAccess(""), requireAdmin)
	return &API{Echo: e, hub: hub}
}

type handlers struct {
	d   Deps
	hub *ws.Handler
}

// now returns the current time from the injected clock, in UTC.
func (h *handlers) now() time.Time {
	if h.d.Now != nil {
		return h.d.Now().UTC()
	}
	return time.Now().UTC()
}

// scrape is what a metrics scrape reads: the store's head and the read
// models' status.
type scrape struct {
	eventstore.Store
	*projections.Runner
}

func (s scrape) Head(ctx context.Context) (uint64, error) { return s.Store.Head(ctx) }

func (h *handlers) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the event store answers and accepts appends and
// every read model and follower is running, has caught up to the head the
// store had at start, and none is parked; 503 otherwise, naming
// the read model (the error is in /api/v1/status, behind authentication).
func (h *handlers) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := eventstore.Failure(h.d.Store); err != nil {
		h.d.Logger.ErrorContext(ctx, "readiness: event store failed", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "event store failed: restart the service"})
	}
	if _, err := h.d.Store.Head(ctx); err != nil {
		h.d.Logger.WarnContext(ctx, "readiness: event store", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "event store unavailable"})
	}
	st, err := h.d.Runner.Status(ctx)
	if err != nil {
		h.d.Logger.WarnContext(ctx, "readiness: projections", "err", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "read models unavailable"})
	}
	for _, s := range st {
		if !s.Running {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "projection " + s.Name + " not running"})
		}
		if s.State == projections.StateParked {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{
				"status": "projection " + s.Name + " parked at " + strconv.FormatUint(s.ParkedAt, 10)})
		}
		if !s.Ready {
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "projection " + s.Name + " catching up"})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

type projectionStatus struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Ready     bool   `json:"ready"`
	Skippable bool   `json:"skippable"`
	Position  uint64 `json:"position"`
	Lag       uint64 `json:"lag"`
	Running   bool   `json:"running"`
	State     string `json:"state"`
	Error     string `json:"error,omitempty"`
	ParkedAt  uint64 `json:"parked_at,omitempty"`
	Failures  uint64 `json:"failures"`
}

// retryProjection un-parks a read model (admin): 202, it resumes from its
// checkpoint.
func (h *handlers) retryProjection(c echo.Context) error {
	if err := h.d.Runner.Retry(c.Param("name")); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}

// skipFollowerEvent gives up on the event a side-effect follower is
// parked at (admin): the skip is recorded in the log; 202 with its position.
func (h *handlers) skipFollowerEvent(c echo.Context) error {
	pos, err := h.d.Runner.Skip(c.Request().Context(), c.Param("name"), "user:"+caller(c).Username)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]uint64{"skipped_position": pos})
}

// status is the heartbeat: version, store head, lag per read model, backends.
func (h *handlers) status(c echo.Context) error {
	ctx := c.Request().Context()
	head, err := h.d.Store.Head(ctx)
	if err != nil {
		return err
	}
	st, err := h.d.Runner.Status(ctx)
	if err != nil {
		return err
	}
	ps := make([]projectionStatus, len(st))
	for i, s := range st {
		ps[i] = projectionStatus{Name: s.Name, Kind: s.Kind, Ready: s.Ready, Skippable: s.Skippable, Position: s.Position, Lag: s.Lag, Running: s.Running,
			State: string(s.State), Error: s.Error, ParkedAt: s.ParkedAt, Failures: s.Failures}
	}
	return c.JSON(http.StatusOK, map[string]any{
		"version":     h.d.Version,
		"store":       map[string]any{"head": head, "failed": eventstore.Failure(h.d.Store) != nil},
		"projections": ps,
		"backends":    h.backends(),
		"time":        time.Now().UTC(),
	})
}
