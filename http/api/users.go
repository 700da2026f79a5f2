package api

import (
	"log/slog"
	"net/http"
	"slices"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
	userview "github.com/coinledger/coinledger/projections/users"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/labstack/echo/v4"
)

// me describes the caller: roles and the wallets it can see with its
// effective permissions on each.
func (h *handlers) me(c echo.Context) error {
	a := caller(c)
	ws, err := wallet.ListWallets(c.Request().Context(), h.d.DB)
	if err != nil {
		return err
	}
	resp := meResponse{Username: a.Username, Roles: nonNil(a.Roles), Wallets: []walletAccess{}}
	for _, w := range ws {
		if eff := effective(a, w.Name, w.Permissions); len(eff) > 0 {
			resp.Wallets = append(resp.Wallets, walletAccess{Wallet: w.Name, Permissions: eff})
		}
	}
	return c.JSON(http.StatusOK, resp)
}

func (h *handlers) createUser(c echo.Context) error {
	var req createUserRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if !identity.ValidEmail(req.Email) {
		return invalidFields(fieldError{Field: "email", Message: "want a bare address like name@example.com"})
	}
	if err := h.d.Users.Register(c.Request().Context(), h.meta(c, caller(c).Username), req.Username, req.Email,
		req.Password, req.Roles); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "user_created", slog.String("username", req.Username), slog.Any("roles", req.Roles))
	return c.JSON(http.StatusCreated, userResponse{Username: req.Username, Email: req.Email, Roles: nonNil(req.Roles),
		Wallets: []walletAccess{}})
}

func (h *handlers) listUsers(c echo.Context) error {
	us, err := userview.List(c.Request().Context(), h.d.DB)
	if err != nil {
		return err
	}
	out := userList{Users: make([]userResponse, 0, len(us))}
	for _, u := range us {
		r := userResponse{Username: u.Username, Email: u.Email, Roles: nonNil(u.Roles), Disabled: u.Disabled, Wallets: []walletAccess{}}
		for _, g := range u.Grants {
			r.Wallets = append(r.Wallets, walletAccess{Wallet: g.Wallet, Permissions: g.Permissions})
		}
		out.Users = append(out.Users, r)
	}
	return c.JSON(http.StatusOK, out)
}

func validPermissions(perms []string) error {
	for _, p := range perms {
		if !slices.Contains(ledger.AllPermissions(), ledger.Permission(p)) {
			return invalidFields(fieldError{Field: "permissions", Message: "unknown permission " + p})
		}
	}
	return nil
}

func (h *handlers) grant(c echo.Context) error {
	var req grantRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if err := validPermissions(req.Permissions); err != nil {
		return err
	}
	if err := h.d.Users.Grant(c.Request().Context(), h.meta(c, caller(c).Username), c.Param("username"), c.Param("wallet"),
		req.Permissions); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "permissions_granted", slog.String("username", c.Param("username")),
		slog.String("wallet", c.Param("wallet")), slog.Any("permissions", req.Permissions))
	return c.JSON(http.StatusOK, walletAccess{Wallet: c.Param("wallet"), Permissions: nonNil(req.Permissions)})
}

func (h *handlers) revokeGrant(c echo.Context) error {
	if err := h.d.Users.Revoke(c.Request().Context(), h.meta(c, caller(c).Username), c.Param("username"), c.Param("wallet")); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "permissions_revoked", slog.String("username", c.Param("username")),
		slog.String("wallet", c.Param("wallet")))
	return c.NoContent(http.StatusNoContent)
}

func (h *handlers) revokeSessions(c echo.Context) error {
	if err := h.d.Users.RevokeSessions(c.Request().Context(), h.meta(c, caller(c).Username), c.Param("username")); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "sessions_revoked", slog.String("username", c.Param("username")))
	h.hub.Recheck(c.Param("username"))
	return c.NoContent(http.StatusNoContent)
}

// disableUser disables a user and ends every credential it holds at once:
// access and refresh tokens, API keys and websockets (users.Service.Disable).
// Disabling a disabled user changes nothing (204 again).
func (h *handlers) disableUser(c echo.Context) error {
	if err := h.d.Users.Disable(c.Request().Context(), h.meta(c, caller(c).Username), c.Param("username")); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "user_disabled", slog.String("username", c.Param("username")))
	h.hub.Recheck(c.Param("username"))
	return c.NoContent(http.StatusNoContent)
}

// enableUser lets a disabled user log in again; its old credentials stay
// revoked. Enabling an enabled user changes nothing (204 again).
func (h *handlers) enableUser(c echo.Context) error {
	if err := h.d.Users.Enable(c.Request().Context(), h.meta(c, caller(c).Username), c.Param("username")); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "user_enabled", slog.String("username", c.Param("username")))
	return c.NoContent(http.StatusNoContent)
}

// createAPIKey issues a key for the caller; it never exceeds the caller's
// own roles and grants. The secret is shown in this response only.
func (h *handlers) createAPIKey(c echo.Context) error {
	var req createAPIKeyRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	a := caller(c)
	if a.APIKey != "" {
		return &apiError{status: http.StatusForbidden, code: "permission_denied", detail: "an API key cannot issue API keys"}
	}
	grants := make([]identity.WalletGrant, 0, len(req.Wallets))
	for _, w := range req.Wallets {
		if err := validPermissions(w.Permissions); err != nil {
			return err
		}
		grants = append(grants, identity.WalletGrant{Wallet: w.Wallet, Permissions: w.Permissions})
	}
	k, secret, err := h.d.Users.IssueAPIKey(c.Request().Context(), h.meta(c, a.Username), a.Username, req.Name, req.Roles, grants)
	if err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "api_key_created", slog.String("key_id", k.ID), slog.String("name", k.Name),
		slog.Any("roles", k.Roles))
	wallets := make([]walletAccess, 0, len(k.Wallets))
	for _, w := range k.Wallets {
		wallets = append(wallets, walletAccess{Wallet: w.Wallet, Permissions: w.Permissions})
	}
	return c.JSON(http.StatusCreated, apiKeyCreated{ID: k.ID, Name: k.Name, Key: secret, Roles: nonNil(k.Roles),
		Wallets: wallets, CreatedAt: k.IssuedAt})
}

func (h *handlers) deleteAPIKey(c echo.Context) error {
	a := caller(c)
	if err := h.d.Users.RevokeAPIKey(c.Request().Context(), h.meta(c, a.Username), a.Username, c.Param("id")); err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "api_key_revoked", slog.String("key_id", c.Param("id")))
	h.hub.Recheck(a.Username)
	return c.NoContent(http.StatusNoContent)
}

// nonNil makes JSON lists [] instead of null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
