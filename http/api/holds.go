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
	body, err := bind(c, &req)
	if err != nil {
		return err
	}
	key := ""
	if c.Request().Header.Get("Idempotency-Key") != "" {
		if key, err = idempotencyKey(c, caller(c).Username); err != nil {
			return err
		}
	}
	hash := requestHash(c, body)
	account := c.Param("account")
	now := time.Now().UTC()
	res, err := h.execute(c, walletOf(c).Name, key, func(s *ledger.State) (ledger.Command, error) {
		amount, err := money.ParsePositive(req.Amount, s.Coin())
		if err != nil {
			return nil, err
		}
		cmd := ledger.PlaceHold{ID: "hold-" + uuid.NewString(), Account: account, Amount: amount, Reason: req.Reason,
			Now: now, Idempotency: ledger.Idempotency{Key: key, RequestHash: hash}}
		if req.ExpiresAt != nil {
			cmd.ExpiresAt = req.ExpiresAt.UTC()
		}
		return cmd, nil
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
