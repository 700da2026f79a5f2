package api

import (
	"errors"
	"net/http"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/labstack/echo/v4"
)

// login exchanges a username and password for an access and refresh token.
func (h *handlers) login(c echo.Context) error {
	var req loginRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	u, err := h.d.Users.Authenticate(c.Request().Context(), req.Username, req.Password)
	if errors.Is(err, users.ErrBadCredentials) {
		return &apiError{status: http.StatusUnauthorized, code: "bad_credentials", detail: "unknown user or wrong password"}
	}
	if err != nil {
		return err
	}
	return h.issue(c, u.Username, u.Roles, "")
}

// token rotates a refresh token into a new pair.
func (h *handlers) token(c echo.Context) error {
	var req tokenRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	if req.GrantType != "refresh_token" {
		return invalidFields(fieldError{Field: "grant_type", Message: `must be "refresh_token"`})
	}
	claims, err := h.d.Issuer.Verify(req.RefreshToken, auth.Refresh)
	if err != nil {
		return errUnauthorized
	}
	u, err := h.d.Users.Get(c.Request().Context(), claims.Subject)
	if err != nil {
		return errUnauthorized
	}
	return h.issue(c, u.Username, u.Roles, claims.Family)
}

func (h *handlers) issue(c echo.Context, username string, roles []string, family string) error {
	access, ttl, err := h.d.Issuer.Issue(auth.Access, username, roles, "")
	if err != nil {
		return err
	}
	if family == "" {
		family = username + "/" + c.Response().Header().Get(echo.HeaderXRequestID)
	}
	refresh, _, err := h.d.Issuer.Issue(auth.Refresh, username, roles, family)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, tokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresIn: int(ttl.Seconds())})
}

// me describes the caller.
func (h *handlers) me(c echo.Context) error {
	p := caller(c)
	ws, err := wallet.ListWallets(c.Request().Context(), h.d.DB)
	if err != nil {
		return err
	}
	resp := meResponse{Username: p.Username, Roles: nonNil(p.Roles), Wallets: []walletAccess{}}
	for _, w := range ws {
		if eff := effective(p, w.Permissions); len(eff) > 0 {
			resp.Wallets = append(resp.Wallets, walletAccess{Wallet: w.Name, Permissions: eff})
		}
	}
	return c.JSON(http.StatusOK, resp)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
