package api

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
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
// refresh token that starts a new refresh family.
//
// Attempts pass the login guard (auth.LoginGuard) before the password is
// checked: per account and client address, per address, and an account
// backoff that holds back only addresses that failed on the account, so a
// stranger cannot lock a user out. The account is the one the password is
// checked against (a made-up username falling back to the wildcard user
// counts against it). Failed and refused logins are logged here, without
// the password. A disabled user with the right password gets 403
// user_disabled; with a wrong one, 401 bad_credentials like anyone.
func (h *handlers) login(c echo.Context) error {
	var req loginRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	u, retry, err := h.checkPassword(c, req.Username, req.Password)
	if retry > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds()+0.999)))
	}
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ip, _ := h.d.ClientIP.Of(c.Request().RemoteAddr, c.Request().Header.Values("X-Forwarded-For"))
	family, refreshID := auth.NewTokenID(), auth.NewTokenID()
	if err := h.d.Users.StartSession(ctx, h.meta(c, u.Username), u.Username, family, refreshID,
		time.Now().Add(h.d.Issuer.RefreshTTL)); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "login", slog.String("username", u.Username), slog.String("client_ip", ip.String()))
	return h.issue(c, u.Username, u.Roles, family, refreshID)
}

// checkPassword checks a username and password from the client of c's
// request through the login guard; on rate_limited, retry says when to
// retry. Refused logins are logged here, without the password.
func (h *handlers) checkPassword(c echo.Context, username, password string) (*identity.User, time.Duration, error) {
	ctx := c.Request().Context()
	ip, _ := h.d.ClientIP.Of(c.Request().RemoteAddr, c.Request().Header.Values("X-Forwarded-For"))
	target, err := h.d.Users.LoginTarget(ctx, username)
	if err != nil {
		return nil, 0, err
	}
	attempt, retry, ok := h.d.Logins.Begin(target.Account, ip.String())
	if !ok {
		h.loginRefused(c, username, ip, "rate_limited")
		return nil, retry, &apiError{status: http.StatusTooManyRequests, code: "rate_limited",
			detail: "too many login attempts; retry later"}
	}
	u, err := h.d.Users.Authenticate(ctx, username, password)
	switch {
	case errors.Is(err, users.ErrBadCredentials):
		attempt.Failed()
		h.loginRefused(c, username, ip, "bad_credentials")
		return nil, 0, errBadCredentials
	case errors.Is(err, identity.ErrUserDisabled):
		attempt.Succeeded()
		h.loginRefused(c, username, ip, "user_disabled")
		return nil, 0, err
	case err != nil:
		attempt.Abandoned()
		return nil, 0, err
	case u.Wildcard():
		attempt.Unproven()
	default:
		attempt.Succeeded()
	}
	return u, 0, nil
}

// loginRefused logs a refused login: the username as given (clipped),
// the client address and why (rate_limited is the lockout). Never the
// password.
func (h *handlers) loginRefused(c echo.Context, username string, ip netip.Addr, reason string) {
	if len(username) > 64 {
		username = username[:64] + "…"
	}
	h.security(c, slog.LevelWarn, "login_refused", slog.String("username", username), slog.String("client_ip", ip.String()),
		slog.String("reason", reason))
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
			h.security(c, slog.LevelWarn, "refresh_token_reused", slog.String("username", claims.Subject),
				slog.String("outcome", "session family revoked"))
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
	h.security(c, slog.LevelInfo, "logout")
	h.hub.Recheck(a.Username)
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
