package api

import (
	"log/slog"
	"net/http"
	"slices"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/labstack/echo/v4"
)

func (h *handlers) createWallet(c echo.Context) error {
	var req createWalletRequest
	body, err := bind(c, &req)
	if err != nil {
		return err
	}
	coin, ok := money.Lookup(req.Coin)
	if !ok {
		return invalidFields(fieldError{Field: "coin", Message: "unknown coin " + req.Coin})
	}
	perms := make([]ledger.Permission, len(req.Permissions))
	for i, p := range req.Permissions {
		if !slices.Contains(ledger.AllPermissions(), ledger.Permission(p)) {
			return invalidFields(fieldError{Field: "permissions", Message: "unknown permission " + p})
		}
		perms[i] = ledger.Permission(p)
	}
	hash := requestHash(c, body)
	_, err = h.execute(c, req.Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.OpenWallet{Name: req.Name, Coin: coin, Permissions: perms, IPAllowlist: req.IPAllowlist,
			Confirmations: req.Confirmations, Idempotency: ledger.Idempotency{RequestHash: hash}}, nil
	})
	if err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "wallet_created", slog.String("wallet", req.Name), slog.Any("permissions", req.Permissions),
		slog.Any("ip_allowlist", req.IPAllowlist))
	w, err := wallet.GetWallet(c.Request().Context(), h.d.DB, req.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, h.walletResponse(caller(c), w))
}

func (h *handlers) walletResponse(a users.Access, w wallet.Wallet) walletResponse {
	return walletResponse{Name: w.Name, Coin: w.Coin, Decimals: w.Exponent, Permissions: nonNil(w.Permissions),
		IPAllowlist: nonNil(w.IPAllowlist), Confirmations: w.Confirmations, Locked: w.Locked,
		Effective: nonNil(effective(a, w.Name, w.Permissions)), Position: w.Position}
}

func (h *handlers) listWallets(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	ws, err := wallet.ListWallets(c.Request().Context(), h.d.DB)
	if err != nil {
		return err
	}
	out := walletList{Wallets: []walletResponse{}}
	for _, w := range ws {
		if len(effective(caller(c), w.Name, w.Permissions)) > 0 {
			out.Wallets = append(out.Wallets, h.walletResponse(caller(c), w))
		}
	}
	return c.JSON(http.StatusOK, out)
}

func (h *handlers) getWallet(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w, err := wallet.GetWallet(c.Request().Context(), h.d.DB, walletOf(c).Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, h.walletResponse(caller(c), w))
}

func (h *handlers) lockWallet(c echo.Context) error   { return h.setLock(c, true) }
func (h *handlers) unlockWallet(c echo.Context) error { return h.setLock(c, false) }

func (h *handlers) setLock(c echo.Context, lock bool) error {
	var req lockRequest
	if c.Request().ContentLength != 0 {
		if _, err := bind(c, &req); err != nil {
			return err
		}
	}
	res, err := h.execute(c, walletOf(c).Name, "", func(*ledger.State) (ledger.Command, error) {
		if lock {
			return ledger.LockWallet{Reason: req.Reason}, nil
		}
		return ledger.UnlockWallet{Reason: req.Reason}, nil
	})
	if err != nil {
		return err
	}
	event := "wallet_unlocked"
	if lock {
		event = "wallet_locked"
	}
	h.security(c, slog.LevelInfo, event, slog.String("wallet", walletOf(c).Name))
	return c.JSON(http.StatusOK, positionResponse{Position: res.Position})
}
