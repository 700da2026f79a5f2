package api

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/custody"
	pricemodel "github.com/coinledger/coinledger/projections/prices"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/labstack/echo/v4"
)

// apiError is an error with its HTTP status and stable code, raised by
// handlers for problems of the request itself.
type apiError struct {
	status int
	code   string
	detail string
	fields []fieldError
}

func (e *apiError) Error() string { return e.code + ": " + e.detail }

func badRequest(code, format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: code, detail: fmt.Sprintf(format, args...)}
}

func invalidFields(fields ...fieldError) error {
	return &apiError{status: http.StatusBadRequest, code: "validation_failed", detail: "the request has invalid fields", fields: fields}
}

var (
	errUnauthorized = &apiError{status: http.StatusUnauthorized, code: "unauthorized", detail: "a valid bearer token is required"}
	errForbidden    = &apiError{status: http.StatusForbidden, code: "permission_denied", detail: "the caller lacks the permission for this operation"}
	errIPNotAllowed = &apiError{status: http.StatusForbidden, code: "ip_not_allowed", detail: "the wallet does not accept calls from this address"}
	errNotFound     = &apiError{status: http.StatusNotFound, code: "not_found", detail: "no such resource"}
)

// statusOf is the one table from domain outcomes to HTTP status and code.
// A row with a detail answers it instead of the error's text.
var statusOf = []struct {
	err    error
	status int
	code   string
	detail string
}{
	{ledger.ErrWalletNotFound, http.StatusNotFound, "not_found", ""},
	{ledger.ErrAccountNotFound, http.StatusNotFound, "not_found", ""},
	{wallet.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{identity.ErrUserNotFound, http.StatusNotFound, "not_found", ""},
	{identity.ErrUserDisabled, http.StatusForbidden, "user_disabled", ""},
	{ledger.ErrHoldNotFound, http.StatusNotFound, "hold_not_found", ""},
	{ledger.ErrDepositNotFound, http.StatusNotFound, "not_found", ""},
	{ledger.ErrWithdrawalNotFound, http.StatusNotFound, "not_found", ""},
	{ledger.ErrUnknownAddress, http.StatusNotFound, "not_found", ""},
	{custody.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{alerts.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{outbox.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{alerts.ErrExists, http.StatusConflict, "alert_exists", ""},
	{alerts.ErrValidation, http.StatusUnprocessableEntity, "validation_failed", ""},
	{alerting.ErrChannelUnavailable, http.StatusUnprocessableEntity, "channel_unavailable", ""},
	{egress.ErrForbidden, http.StatusUnprocessableEntity, "webhook_target_forbidden", ""},
	{pricemodel.ErrNotFound, http.StatusNotFound, "not_found", ""},
	{pricemodel.ErrInvalidQuery, http.StatusBadRequest, "validation_failed", ""},
	{pricemodel.ErrTooManyTicks, http.StatusUnprocessableEntity, "validation_failed", ""},
	{prices.ErrValidation, http.StatusUnprocessableEntity, "validation_failed", ""},
	{chainsync.ErrUnknownCoin, http.StatusConflict, "backend_not_configured", ""},
	{chainsync.ErrUnavailable, http.StatusServiceUnavailable, "backend_unavailable", ""},
	{ledger.ErrAddressExists, http.StatusConflict, "address_exists", ""},
	{ledger.ErrWithdrawalExists, http.StatusConflict, "withdrawal_exists", ""},
	{ledger.ErrWithdrawalState, http.StatusConflict, "withdrawal_state", ""},
	{ledger.ErrWalletExists, http.StatusConflict, "wallet_exists", ""},
	{projections.ErrUnknownProjection, http.StatusNotFound, "not_found", ""},
	{projections.ErrNotParked, http.StatusConflict, "projection_not_parked", "the read model or follower is not parked"},
	{projections.ErrNoShadow, http.StatusConflict, "rebuild_unsupported", "the read-model database cannot rebuild beside the live tables"},
	{projections.ErrNotSkippable, http.StatusConflict, "follower_not_skippable", "only a side-effect follower may skip an event"},
	{projections.ErrRebuilding, http.StatusConflict, "projection_rebuilding", "the read model is already being rebuilt"},
	{projections.ErrJobNotFound, http.StatusNotFound, "not_found", ""},
	{audit.ErrUnknownCheckpoint, http.StatusNotFound, "unknown_checkpoint", ""},
	{audit.ErrUnknownAccount, http.StatusNotFound, "unknown_account", ""},
	{audit.ErrSignerStopped, http.StatusServiceUnavailable, "signer_unavailable",
		"the checkpoint signer is not running or could not catch up with the log in time; retry"},
	{ledger.ErrAccountExists, http.StatusConflict, "account_exists", ""},
	{ledger.ErrHoldExists, http.StatusConflict, "hold_exists", ""},
	{identity.ErrUserExists, http.StatusConflict, "user_exists", ""},
	{ledger.ErrInsufficientFunds, http.StatusConflict, "insufficient_funds", ""},
	{ledger.ErrWalletLocked, http.StatusConflict, "wallet_locked", ""},
	{eventstore.ErrConflict, http.StatusConflict, "wrong_expected_version", ""},
	{ledger.ErrIdempotencyKeyReused, http.StatusUnprocessableEntity, "idempotency_key_reused", ""},
	{money.ErrInvalidAmount, http.StatusBadRequest, "invalid_amount", ""},
	{money.ErrAssetMismatch, http.StatusBadRequest, "invalid_amount", ""},
	{money.ErrOverflow, http.StatusBadRequest, "invalid_amount", ""},
	{money.ErrZero, http.StatusBadRequest, "invalid_amount", ""},
	{money.ErrNegative, http.StatusBadRequest, "invalid_amount", ""},
	{ledger.ErrValidation, http.StatusUnprocessableEntity, "validation_failed", ""},
	{identity.ErrValidation, http.StatusUnprocessableEntity, "validation_failed", ""},
	{auth.ErrInvalidToken, http.StatusUnauthorized, "unauthorized", ""},
	{identity.ErrExceedsOwner, http.StatusForbidden, "permission_denied", ""},
	{identity.ErrAPIKeyNotFound, http.StatusNotFound, "not_found", ""},
	{identity.ErrAPIKeyExists, http.StatusConflict, "api_key_exists", ""},
	{projections.ErrParked, http.StatusServiceUnavailable, "read_model_unavailable",
		"a read model or index this request needs is parked at an event that keeps failing; an operator must retry it"},
	{projections.ErrTransient, http.StatusServiceUnavailable, "read_model_unavailable",
		"the read-model database is unavailable; retry"},
	{eventstore.ErrStoreFailed, http.StatusServiceUnavailable, "store_failed",
		"the event store refuses writes after an I/O error; an operator must restart the service"},
	{eventstore.ErrUnavailable, http.StatusServiceUnavailable, "store_unavailable",
		"the event store could not be reached; retry with the same Idempotency-Key"},
}

// problemOf turns any error into a problem document; unknown errors are 500
// with a generic text (the caller logs the detail).
func problemOf(err error) (problem, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return problem{Status: ae.status, Code: ae.code, Detail: ae.detail, Errors: ae.fields}, true
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code := map[int]string{http.StatusNotFound: "not_found", http.StatusMethodNotAllowed: "method_not_allowed",
			http.StatusRequestEntityTooLarge: "body_too_large", http.StatusUnsupportedMediaType: "unsupported_media_type",
			http.StatusTooManyRequests: "rate_limited"}[he.Code]
		if code == "" {
			code = "http_error"
		}
		return problem{Status: he.Code, Code: code, Detail: fmt.Sprint(he.Message)}, true
	}
	for _, s := range statusOf {
		if errors.Is(err, s.err) {
			detail := s.detail
			if detail == "" {
				detail = err.Error()
			}
			return problem{Status: s.status, Code: s.code, Detail: detail}, true
		}
	}
	return problem{Status: http.StatusInternalServerError, Code: "internal", Detail: "internal error; it has been logged"}, false
}

// withholdBalances cuts the detail of insufficient_funds, whose text tells
// balances ("alice has 0.50000000 available, needs 0.70000000"), down to
// the outcome itself ("insufficient funds") unless the caller may read the
// wallet: a caller with transfer or withdraw but without read learns that
// the funds do not suffice, never how much there is.
func withholdBalances(c echo.Context, err error, p *problem) {
	if errors.Is(err, ledger.ErrInsufficientFunds) && !mayReadWallet(c) {
		p.Detail = ledger.ErrInsufficientFunds.Error()
	}
}

// mayReadWallet reports whether the caller holds the effective read
// permission on the wallet of a wallet-scoped request.
func mayReadWallet(c echo.Context) bool {
	a, ok := c.Get(accessKey).(users.Access)
	w, ok2 := c.Get(walletKey).(ledger.Wallet)
	return ok && ok2 && slices.Contains(effective(a, w.Name, w.Permissions), string(ledger.PermRead))
}

// errorHandler writes every error as application/problem+json.
func (h *handlers) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p, known := problemOf(err)
	withholdBalances(c, err, &p)
	if !known || p.Status >= 500 {
		h.d.Logger.ErrorContext(c.Request().Context(), "request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	p.Type = "https://coinledger.dev/problems/" + p.Code
	p.Title = http.StatusText(p.Status)
	p.Instance = c.Request().URL.Path
	if p.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method != http.MethodHead {
		_ = jsonEncode(c, p)
	}
}
