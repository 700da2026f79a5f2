package api

import (
	"net/http"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

func (h *handlers) placeHold(c echo.Context) error {
	var req holdRequest
	account := c.Param("account")
	now := h.now()
	res, err := h.executeAmount(c, &req, false, func() string { return req.Amount },
		func(amount money.Amount, idem ledger.Idempotency) ledger.Command {
			cmd := ledger.PlaceHold{ID: "hold-" + uuid.NewString(), Account: account, Amount: amount, Reason: req.Reason,
				Now: now, Idempotency: idem}
			if req.ExpiresAt != nil {
				cmd.ExpiresAt = req.ExpiresAt.UTC()
			}
			return cmd
		},
		func() error {
			if req.ExpiresAt == nil {
				return nil
			}
			if req.ExpiresAt.IsZero() { // sent, but the domain reads zero as "never"
				return invalidFields(fieldError{Field: "expires_at", Message: "expires_at: the zero time is before the year 2000"})
			}
			if err := ledger.CheckHoldExpiry(*req.ExpiresAt, now); err != nil {
				return invalidFields(fieldError{Field: "expires_at", Message: err.Error()})
			}
			return nil
		})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, holdCreated{ID: res.ID, Position: res.Position})
}

func (h *handlers) releaseHold(c echo.Context) error {
	var req releaseRequest
	if c.Request().ContentLength != 0 {
		if _, err := bind(c, &req); err != nil {
			return err
		}
	}
	id := c.Param("id")
	now := h.now()
	res, err := h.execute(c, walletOf(c).Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.ReleaseHold{ID: id, Reason: req.Reason, Now: now}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, positionResponse{Position: res.Position})
}

// getHold answers a hold, active or ended; a hold past its expiry reads as
// expired even before the ledger records it.
func (h *handlers) getHold(c echo.Context) error {
	if err := h.waitForPosition(c); err != nil {
		return err
	}
	w := walletOf(c)
	hd, err := wallet.GetHoldAt(c.Request().Context(), h.d.DB, w.Name, c.Param("id"), h.now())
	if err != nil {
		return err
	}
	r := holdResponse{ID: hd.ID, Wallet: w.Name, Account: hd.Account, Amount: format(w.Coin, hd.Amount), Reason: hd.Reason,
		Status: hd.Status, Position: hd.Position}
	if !hd.ExpiresAt.IsZero() {
		r.ExpiresAt = &hd.ExpiresAt
	}
	return c.JSON(http.StatusOK, r)
}
