package api

import (
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/labstack/echo/v4"
)

// principal is the authenticated caller.
type principal struct {
	Username string
	Roles    []string
}

func (p *principal) admin() bool { return slices.Contains(p.Roles, identity.RoleAdmin) }

const principalKey = "principal"

func caller(c echo.Context) *principal { return c.Get(principalKey).(*principal) }

// authenticate requires a valid access token.
func (h *handlers) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		token, ok := strings.CutPrefix(c.Request().Header.Get(echo.HeaderAuthorization), "Bearer ")
		if !ok || token == "" {
			return errUnauthorized
		}
		claims, err := h.d.Issuer.Verify(token, auth.Access)
		if err != nil {
			return errUnauthorized
		}
		c.Set(principalKey, &principal{Username: claims.Subject, Roles: claims.Roles})
		return next(c)
	}
}

// requireAdmin allows admins only.
func requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !caller(c).admin() {
			return errForbidden
		}
		return next(c)
	}
}

// effective returns the caller's effective permissions on a wallet that
// allows perms: the wallet's own permissions intersected with the caller's
// grant (an admin is granted everything).
func effective[P ~string](p *principal, perms []P) []string {
	if !p.admin() {
		return nil // per-wallet grants arrive with the identity read model
	}
	out := make([]string, len(perms))
	for i, perm := range perms {
		out[i] = string(perm)
	}
	return out
}

const walletKey = "wallet"

// walletAccess looks up the wallet of the :wallet path parameter in the
// command side's state (authorization is a decision: it does not read read
// models) and requires perm on it. A wallet the caller has no permission on
// at all does not exist for the caller (404); one with other permissions
// answers 403. The wallet's IP allowlist is enforced on every wallet-scoped
// call.
func (h *handlers) walletAccess(perm ledger.Permission) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			w, err := h.d.Wallets.Info(c.Request().Context(), c.Param("wallet"))
			if err != nil {
				return err
			}
			eff := effective(caller(c), w.Permissions)
			if len(eff) == 0 && !caller(c).admin() {
				return errNotFound
			}
			if !allowedIP(w.IPAllowlist, c.Request().RemoteAddr) {
				return errIPNotAllowed
			}
			if perm != "" && !slices.Contains(eff, string(perm)) {
				return errForbidden
			}
			c.Set(walletKey, w)
			return next(c)
		}
	}
}

func walletOf(c echo.Context) ledger.Wallet { return c.Get(walletKey).(ledger.Wallet) }

// allowedIP reports whether the peer address is in the allowlist (an empty
// list allows all).
func allowedIP(allowlist []string, remoteAddr string) bool {
	if len(allowlist) == 0 {
		return true
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, entry := range allowlist {
		if p, err := netip.ParsePrefix(entry); err == nil && p.Contains(addr) {
			return true
		}
		if a, err := netip.ParseAddr(entry); err == nil && a.Unmap() == addr {
			return true
		}
	}
	return false
}
