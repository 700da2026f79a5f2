package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/labstack/echo/v4"
)

// readYourWrites bounds how long a write waits for the read models to
// catch up with it before answering.
const readYourWrites = 5 * time.Second

// execute runs a wallet command for the caller and waits until the wallet
// read model has applied it, so the caller's next read sees it. A replayed
// idempotent request is marked with Idempotent-Replayed: true, whether the
// original succeeded or was refused (the refusal is answered again, with
// its status and code).
func (h *handlers) execute(c echo.Context, walletName, idemKey string, build wallets.Build) (wallets.Result, error) {
	meta := eventstore.Metadata{Actor: "user:" + caller(c).Username, IdempotencyKey: idemKey,
		CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	res, err := h.d.Wallets.Execute(c.Request().Context(), meta, walletName, build)
	if err != nil {
		var refused *ledger.RefusedError
		if errors.As(err, &refused) {
			c.Response().Header().Set("Idempotent-Replayed", "true")
		}
		return res, err
	}
	if res.Replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	h.readYourWrite(c, res.Position)
	return res, nil
}

// readYourWrite waits (bounded) until the read models have applied
// position (the wallet models unless others are named), so the caller's
// next read shows the write, and reports the position in the
// Event-Position header. A late read model is flagged, not an error: the
// write is durable.
func (h *handlers) readYourWrite(c echo.Context, position uint64, models ...string) {
	c.Response().Header().Set("Event-Position", strconv.FormatUint(position, 10))
	if len(models) == 0 {
		models = writeModels
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), readYourWrites)
	defer cancel()
	if err := h.waitForModels(ctx, position, models); err != nil {
		h.d.Logger.WarnContext(c.Request().Context(), "read model behind a write", "position", position, "err", err)
		c.Response().Header().Set("Read-Model-Behind", "true")
	}
}

// waitForPosition honours ?min_position= on reads: the read waits (bounded)
// until the read models have applied that position.
func (h *handlers) waitForPosition(c echo.Context, models ...string) error {
	v := c.QueryParam("min_position")
	if v == "" {
		return nil
	}
	pos, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return badRequest("validation_failed", "min_position must be a non-negative integer")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), readYourWrites)
	defer cancel()
	if len(models) == 0 {
		models = writeModels
	}
	if err := h.waitForModels(ctx, pos, models); err != nil {
		return &apiError{status: http.StatusServiceUnavailable, code: "read_model_behind",
			detail: "the read models have not reached min_position yet; retry"}
	}
	return nil
}

func format(a money.Asset, units int64) string { return money.New(a, units).String() }

func balanceOf(a money.Asset, b wallet.Balance) balance {
	return balance{Available: format(a, b.Available), Pending: format(a, b.Pending), Held: format(a, b.Held),
		Total: format(a, b.Total())}
}

// writeModels are the read models the wallet commands feed: a write is
// readable once all of them applied it.
var writeModels = []string{wallet.New().Name(), custody.New().Name()}

func (h *handlers) waitForModels(ctx context.Context, position uint64, models []string) error {
	for _, m := range models {
		if err := h.d.Runner.WaitFor(ctx, m, position); err != nil {
			return err
		}
	}
	return nil
}

// executeAmount runs a command that moves an amount: it binds req, runs
// checks on it (request validation before anything is queued), takes the
// caller-scoped Idempotency-Key (required when keyRequired, else
// optional), and builds the command inside the wallet's writer, where the
// amount string from amountOf is parsed in the wallet's coin.
func (h *handlers) executeAmount(c echo.Context, req any, keyRequired bool, amountOf func() string,
	build func(money.Amount, ledger.Idempotency) ledger.Command, checks ...func() error) (wallets.Result, error) {
	body, err := bind(c, req)
	if err != nil {
		return wallets.Result{}, err
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return wallets.Result{}, err
		}
	}
	key := ""
	if keyRequired || c.Request().Header.Get("Idempotency-Key") != "" {
		if key, err = idempotencyKey(c, caller(c).Username); err != nil {
			return wallets.Result{}, err
		}
	}
	idem := ledger.Idempotency{Key: key, RequestHash: requestHash(c, body)}
	return h.execute(c, walletOf(c).Name, key, func(s *ledger.State) (ledger.Command, error) {
		amount, err := money.ParsePositive(amountOf(), s.Coin())
		if err != nil {
			return nil, err
		}
		return build(amount, idem), nil
	})
}
