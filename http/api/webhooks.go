package api

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/app/webhooks"
	"github.com/coinledger/coinledger/domain/hook"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/labstack/echo/v4"
)

type webhookRequest struct {
	URL      string   `json:"url"`
	Kinds    []string `json:"kinds"`
	Accounts []string `json:"accounts,omitempty"`
}

type webhookResponse struct {
	ID        string    `json:"id"`
	Wallet    string    `json:"wallet"`
	URL       string    `json:"url"`
	Kinds     []string  `json:"kinds"`
	Accounts  []string  `json:"accounts"`
	CreatedAt time.Time `json:"created_at"`
	// Secret signs the deliveries; only the answer to the registration
	// shows it.
	Secret string `json:"secret,omitempty"`
}

type webhookList struct {
	Webhooks []webhookResponse `json:"webhooks"`
}

func webhookOf(h hook.Hook) webhookResponse {
	kinds := make([]string, len(h.Kinds))
	for i, k := range h.Kinds {
		kinds[i] = string(k)
	}
	return webhookResponse{ID: string(h.ID), Wallet: h.Wallet, URL: h.URL, Kinds: kinds, Accounts: nonNil(h.Accounts),
		CreatedAt: h.At, Secret: h.Secret}
}

// createWebhook registers a hook on the wallet for the caller: 201 with
// the signing secret, shown this once.
func (h *handlers) createWebhook(c echo.Context) error {
	var req webhookRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	kinds := make([]hook.Kind, len(req.Kinds))
	for i, k := range req.Kinds {
		kinds[i] = hook.Kind(k)
	}
	a := caller(c)
	meta := eventstore.Metadata{Actor: "user:" + a.Username, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	w := walletOf(c).Name
	hk, pos, err := h.d.Webhooks.Register(c.Request().Context(), meta, webhooks.Registration{Wallet: w, Owner: a.Username,
		URL: req.URL, Kinds: kinds, Accounts: req.Accounts})
	if err != nil {
		return err
	}
	// Never the secret, nor the URL (its query may hold a token).
	h.security(c, slog.LevelInfo, "webhook_created", slog.String("wallet", w), slog.String("webhook", string(hk.ID)),
		slog.Any("kinds", hk.Kinds))
	h.readYourWrite(c, pos, webhooks.FollowerName)
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/wallets/"+w+"/webhooks/"+string(hk.ID))
	return c.JSON(http.StatusCreated, webhookOf(hk))
}

// listWebhooks lists the caller's hooks on the wallet.
func (h *handlers) listWebhooks(c echo.Context) error {
	if err := h.waitForPosition(c, webhooks.FollowerName); err != nil {
		return err
	}
	out := webhookList{Webhooks: []webhookResponse{}}
	for _, hk := range h.d.Webhooks.List(walletOf(c).Name, caller(c).Username) {
		out.Webhooks = append(out.Webhooks, webhookOf(hk))
	}
	return c.JSON(http.StatusOK, out)
}

// getWebhook shows one of the caller's hooks; anyone else's is 404.
func (h *handlers) getWebhook(c echo.Context) error {
	hk, err := h.d.Webhooks.Get(c.Request().Context(), walletOf(c).Name, hook.ID(c.Param("id")), caller(c).Username)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, webhookOf(hk))
}

// deleteWebhook deletes one of the caller's hooks; anyone else's is 404.
func (h *handlers) deleteWebhook(c echo.Context) error {
	a := caller(c)
	meta := eventstore.Metadata{Actor: "user:" + a.Username, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	pos, err := h.d.Webhooks.Delete(c.Request().Context(), meta, walletOf(c).Name, hook.ID(c.Param("id")), a.Username)
	if err != nil {
		return err
	}
	h.security(c, slog.LevelInfo, "webhook_deleted", slog.String("wallet", walletOf(c).Name), slog.String("webhook", c.Param("id")))
	h.readYourWrite(c, pos, webhooks.FollowerName)
	return c.NoContent(http.StatusNoContent)
}

// listWebhookDeliveries is the delivery log of one of the caller's hooks.
func (h *handlers) listWebhookDeliveries(c echo.Context) error {
	ctx := c.Request().Context()
	hk, err := h.d.Webhooks.Get(ctx, walletOf(c).Name, hook.ID(c.Param("id")), caller(c).Username)
	if err != nil {
		return err
	}
	ds, err := h.d.Outbox.HookDeliveries(ctx, string(hk.ID))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deliveriesOf(ds))
}

// redeliverWebhook sends a delivery of one of the caller's hooks again:
// 202, the notifier picks it up.
func (h *handlers) redeliverWebhook(c echo.Context) error {
	ctx := c.Request().Context()
	hk, err := h.d.Webhooks.Get(ctx, walletOf(c).Name, hook.ID(c.Param("id")), caller(c).Username)
	if err != nil {
		return err
	}
	id := c.Param("delivery")
	if !strings.HasPrefix(id, string(hk.ID)+".") {
		return outbox.ErrNotFound
	}
	if err := h.d.Outbox.Redeliver(ctx, id, caller(c).Username); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}
