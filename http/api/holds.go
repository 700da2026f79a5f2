package api

import (
	"net/http"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

func (h *handlers) placeHold(c echo.Context) error {
	var req holdRequest
	account := c.Param("account")
	now := time.Now().UTC()
	res, err := h.executeAmount(c, &req, false, func() string { return req.Amount },
		func(amount money.Amount, idem ledger.Idempotency) ledger.Command {
			cmd := ledger.PlaceHold{ID: "hold-" + uuid.NewString(), Account: account, Amount: amount, Reason: req.Reason,
				Now: now, Idempotency: idem}
			if req.ExpiresAt != nil {
				cmd.ExpiresAt = req.ExpiresAt.UTC()
			}
			return cmd
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
	res, err := h.execute(c, walletOf(c).Name, "", func(*ledger.State) (ledger.Command, error) {
		return ledger.ReleaseHold{ID: id, Reason: req.Reason}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, positionResponse{Position: res.Position})
}
