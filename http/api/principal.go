package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/labstack/echo/v4"
)

const accessKey = "access"

// caller is the authenticated caller's access, as its user stream decides now.
func caller(c echo.Context) users.Access { return c.Get(accessKey).(users.Access) }

// authenticate requires a valid access token or API key in the
// Authorization header, and checks it against the user's current state
// (disabled users, revoked sessions and logged-out families are refused at
// once, on every instance).
func (h *handlers) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if a, ok := c.Request().Context().Value(rpcAccessKey{}).(users.Access); ok {
			c.Set(accessKey, a) // a JSON-RPC call's, worked out from its credential
			withLogAttrs(c, slog.String("user", a.Username))
			return next(c)
		}
		token, ok := auth.ParseBearer(c.Request().Header.Get(echo.HeaderAuthorization))
		if !ok {
			return errUnauthorized
		}
		a, _, err := h.access(c.Request().Context(), token)
		if err != nil {
			return err
		}
		c.Set(accessKey, a)
		withLogAttrs(c, slog.String("user", a.Username))
		return next(c)
	}
}

// access checks an access token or API key and returns the caller's
// access and when the credential expires (zero: an API key, until revoked).
// A bad credential is errUnauthorized.
func (h *handlers) access(ctx context.Context, token string) (users.Access, time.Time, error) {
	var a users.Access
	var expires time.Time
	var err error
	if strings.HasPrefix(token, users.APIKeyPrefix) {
		a, err = h.d.Users.KeyAccess(ctx, token)
	} else {
		var claims *auth.Claims
		if claims, err = h.d.Issuer.Verify(token, auth.Access); err == nil {
			a, err = h.d.Users.TokenAccess(ctx, claims.Subject, claims.IssuedAt.Time, claims.Family)
			if claims.ExpiresAt != nil {
				expires = claims.ExpiresAt.Time
			}
		}
	}
	switch {
	case errors.Is(err, users.ErrBadCredentials), errors.Is(err, auth.ErrInvalidToken):
		return a, expires, errUnauthorized
	case err != nil:
		return a, expires, err
	}
	return a, expires, nil
}

// requireAdmin allows admins only.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !caller(c).Admin() {
			return errForbidden
		}
		return next(c)
	}
}

// effective returns the caller's effective permissions on a wallet that
// allows perms: the wallet's own permissions intersected with the caller's
// grant on it (an admin is granted everything the wallet allows).
func effective[P ~string](a users.Access, wallet string, perms []P) []string {
	out := make([]string, 0, len(perms))
	grant := a.Grants[wallet]
	for _, p := range perms {
		if a.Admin() || slices.Contains(grant, string(p)) {
			out = append(out, string(p))
		}
	}
	return out
}

const walletKey = "wallet"

// walletAccess looks up the wallet of the :wallet path parameter in the
// command side's state (authorization is a decision: it does not read read
// models) and requires perm on it. A wallet the caller has no permission on
// at all does not exist for the caller (404); one with other permissions
// answers 403. The wallet's IP allowlist is enforced on every wallet-scoped
// call, before anything else is revealed.
func (h *handlers) walletAccess(perm ledger.Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			w, err := h.checkWallet(c.Request().Context(), caller(c), c.Param("wallet"), perm, c.Request())
			if err != nil {
				return err
			}
			c.Set(walletKey, w)
			return next(c)
		}
	}
}

// checkWallet returns wallet if a may use perm on it from the client of r
// (any permission when perm is empty): errNotFound when a has no
// permission on it at all (its existence is not revealed),
// errIPNotAllowed outside its IP allowlist, errForbidden without perm.
func (h *handlers) checkWallet(ctx context.Context, a users.Access, name string, perm ledger.Permission, r *http.Request) (ledger.Wallet, error) {
	if !a.Admin() && len(a.Grants[name]) == 0 {
		return ledger.Wallet{}, errNotFound
	}
	w, err := h.d.Wallets.Info(ctx, name)
	if err != nil {
		return ledger.Wallet{}, err
	}
	eff := effective(a, w.Name, w.Permissions)
	if len(eff) == 0 {
		return ledger.Wallet{}, errNotFound
	}
	if len(w.IPAllowlist) > 0 {
		ip, err := h.d.ClientIP.Of(r.RemoteAddr, r.Header.Values("X-Forwarded-For"))
		if err != nil || !auth.Allowed(w.IPAllowlist, ip) {
			return ledger.Wallet{}, errIPNotAllowed
		}
	}
	if perm != "" && !slices.Contains(eff, string(perm)) {
		return ledger.Wallet{}, errForbidden
	}
	return w, nil
}

func walletOf(c echo.Context) ledger.Wallet { return c.Get(walletKey).(ledger.Wallet) }
