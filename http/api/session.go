package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/labstack/echo/v4"
)

var errBadCredentials = &apiError{status: http.StatusUnauthorized, code: "bad_credentials", detail: "unknown user or wrong password"}

// login exchanges a username and password for an access token and a
// refresh token that starts a new refresh family. Attempts are rate limited
// per username and per client address, before the password is checked.
func (h *handlers) login(c echo.Context) error {
	var req loginRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	ip, _ := h.d.ClientIP.Of(c.Request().RemoteAddr, c.Request().Header.Values("X-Forwarded-For"))
	// The address first: a caller refused for its address must not spend
	// (and lock out) the user's attempts.
	keys := []string{"ip:" + ip.String(), "user:" + req.Username}
	for _, k := range keys {
		if ok, retry := h.d.Limiter.Allow(k); !ok {
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+0.999)))
			return &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
				detail: "too many login attempts; retry later"}
		}
	}
	ctx := c.Request().Context()
	u, err := h.d.Users.Authenticate(ctx, req.Username, req.Password)
	if errors.Is(err, users.ErrBadCredentials) {
		for _, k := range keys {
			h.d.Limiter.Failure(k)
		}
		return errBadCredentials
	}
	if err != nil {
		return err
	}
	for _, k := range keys {
		h.d.Limiter.Success(k)
	}
	family, refreshID := auth.NewTokenID(), auth.NewTokenID()
	if err := h.d.Users.StartSession(ctx, h.meta(c, u.Username), u.Username, family, refreshID,
		time.Now().Add(h.d.Issuer.RefreshTTL)); err != nil {
		return err
	}
	return h.issue(c, u.Username, u.Roles, family, refreshID)
}

// token rotates a refresh token into a new pair. The presented token is
// spent; presenting a spent one revokes its whole family.
func (h *handlers) token(c echo.Context) error {
	var req tokenRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if req.GrantType != "refresh_token" {
		return invalidFields(fieldError{Field: "grant_type", Message: `must be "refresh_token"`})
	}
	claims, err := h.d.Issuer.Verify(req.RefreshToken, auth.Refresh)
	if err != nil || claims.Family == "" {
		return errUnauthorized
	}
	newID := auth.NewTokenID()
	err = h.d.Users.Rotate(c.Request().Context(), h.meta(c, claims.Subject), claims.Subject, claims.Family, claims.ID, newID,
		time.Now().Add(h.d.Issuer.RefreshTTL))
	if errors.Is(err, identity.ErrRefreshInvalid) || errors.Is(err, identity.ErrUserNotFound) {
		if errors.Is(err, identity.ErrRefreshReused) {
			h.d.Logger.Warn("refresh token reused: family revoked", "user", claims.Subject)
		}
		return errUnauthorized
	}
	if err != nil {
		return err
	}
	a, err := h.d.Users.TokenAccess(c.Request().Context(), claims.Subject, time.Now(), claims.Family)
	if err != nil {
		return errUnauthorized
	}
	return h.issue(c, a.Username, a.Roles, claims.Family, newID)
}

// logout revokes the caller's refresh family: its refresh token and every
// access token of the family stop working.
func (h *handlers) logout(c echo.Context) error {
	a := caller(c)
	if a.Family == "" {
		return badRequest("validation_failed", "this credential has no session to log out of")
	}
	if err := h.d.Users.Logout(c.Request().Context(), h.meta(c, a.Username), a.Username, a.Family); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) issue(c echo.Context, username string, roles []string, family, refreshID string) error {
	access, ttl, err := h.d.Issuer.Issue(auth.Access, username, roles, family, "")
	if err != nil {
		return err
	}
	refresh, _, err := h.d.Issuer.Issue(auth.Refresh, username, roles, family, refreshID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(ttl.Seconds())})
}

// meta is the metadata of events a request causes.
func (h *handlers) meta(c echo.Context, actor string) eventstore.Metadata {
	return eventstore.Metadata{Actor: "user:" + actor, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
}
