package api

import (
	"net/http"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

func (h *handlers) createTransfer(c echo.Context) error {
	var req transferRequest
	now := h.now()
	res, err := h.executeAmount(c, &req, true, func() string { return req.Amount },
		func(amount money.Amount, idem ledger.Idempotency) ledger.Command {
			return ledger.Transfer{ID: "tr-" + uuid.NewString(), From: req.From, To: req.To, Amount: amount, Memo: req.Memo,
				Now: now, Idempotency: idem}
		})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, transferCreated{ID: res.ID, Position: res.Position})
}

func (h *handlers) getTransfer(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	t, err := wallet.GetTransfer(c.Request().Context(), h.d.DB, w.Name, c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, transferResponse{ID: t.ID, Wallet: w.Name, From: t.From, To: t.To,
		Amount: format(w.Coin, t.Amount), Memo: t.Memo, Position: t.Position, Time: t.Time})
}
