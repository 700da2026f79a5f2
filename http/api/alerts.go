package api

import (
	"net/http"
	"time"

	"github.com/coinledger/coinledger/app/outbox"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	alertmodel "github.com/coinledger/coinledger/projections/alerts"
	"github.com/labstack/echo/v4"
)

type alertChannels struct {
	Email     string `json:"email,omitempty"`
	Webhook   string `json:"webhook,omitempty"`
	Websocket bool   `json:"websocket,omitempty"`
}

type alertRearm struct {
	Hysteresis string `json:"hysteresis,omitempty"`
	Cooldown   string `json:"cooldown,omitempty"`
}

type alertRequest struct {
	Pair      string        `json:"pair"`
	Direction string        `json:"direction"`
	Target    string        `json:"target"`
	Channels  alertChannels `json:"channels"`
	Rearm     *alertRearm   `json:"rearm,omitempty"`
}

type alert struct {
	ID           string        `json:"id"`
	Owner        string        `json:"owner"`
	Pair         string        `json:"pair"`
	Direction    string        `json:"direction"`
	Target       string        `json:"target"`
	Channels     alertChannels `json:"channels"`
	Rearm        *alertRearm   `json:"rearm,omitempty"`
	Status       string        `json:"status"`
	TriggerPrice string        `json:"trigger_price,omitempty"`
	TriggeredAt  *time.Time    `json:"triggered_at,omitempty"`
	Fired        int           `json:"fired"`
	CreatedAt    time.Time     `json:"created_at"`
	Position     uint64        `json:"position"`
}

type alertList struct {
	Alerts []alert `json:"alerts"`
}

// alertsModel is the alerts read model's projection name.
var alertsModel = alertmodel.New().Name()

// createAlert creates an alert owned by the caller.
func (h *handlers) createAlert(c echo.Context) error {
	var req alertRequest
	if _, err := bind(c, &req); err != nil {
		return err
	}
	cmd, err := alertCommand(req)
	if err != nil {
		return err
	}
	a := caller(c)
	cmd.Owner = a.Username
	meta := eventstore.Metadata{Actor: "user:" + a.Username, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID),
		IdempotencyKey: c.Request().Header.Get("Idempotency-Key")}
	ctx := c.Request().Context()
	id, pos, err := h.d.Alerts.Create(ctx, meta, cmd)
	if err != nil {
		return err
	}
	h.readYourWrite(c, pos, alertsModel)
	row, err := alertmodel.Get(ctx, h.d.DB, a.Username, id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/alerts/"+string(id))
	return c.JSON(http.StatusCreated, alertOf(row))
}

// alertCommand checks the request's shape; the domain checks the rest.
func alertCommand(req alertRequest) (alerts.Create, error) {
	var errs []fieldError
	pair, err := prices.ParsePair(req.Pair)
	if err != nil {
		errs = append(errs, fieldError{Field: "pair", Message: "want BASE-QUOTE, e.g. BTC-USD"})
	}
	target, err := prices.Parse(req.Target)
	if err != nil {
		errs = append(errs, fieldError{Field: "target", Message: "want a positive exact decimal, e.g. 64000.12"})
	}
	cmd := alerts.Create{Pair: pair, Direction: alerts.Direction(req.Direction), Target: target,
		Channels: alerts.Channels{Email: req.Channels.Email, Webhook: req.Channels.Webhook, Websocket: req.Channels.Websocket}}
	if !cmd.Direction.Valid() {
		errs = append(errs, fieldError{Field: "direction", Message: "want above or below"})
	}
	if e := req.Channels.Email; e != "" && alerts.CheckEmail(e) != nil {
		errs = append(errs, fieldError{Field: "channels.email", Message: "want a bare address such as a@example.com"})
	}
	if r := req.Rearm; r != nil {
		cmd.Rearm = &alerts.Rearm{}
		if r.Hysteresis != "" {
			if cmd.Rearm.Hysteresis, err = prices.Parse(r.Hysteresis); err != nil {
				errs = append(errs, fieldError{Field: "rearm.hysteresis", Message: "want an exact decimal"})
			}
		}
		if r.Cooldown != "" {
			if cmd.Rearm.Cooldown, err = time.ParseDuration(r.Cooldown); err != nil || cmd.Rearm.Cooldown < 0 {
				errs = append(errs, fieldError{Field: "rearm.cooldown", Message: "want a duration, e.g. 15m"})
			}
		}
	}
	if len(errs) > 0 {
		return cmd, invalidFields(errs...)
	}
	return cmd, nil
}

func alertOf(a alertmodel.Alert) alert {
	out := alert{ID: string(a.ID), Owner: a.Owner, Pair: a.Pair.String(), Direction: string(a.Direction), Target: a.Target.String(),
		Channels: alertChannels{Email: a.Channels.Email, Webhook: a.Channels.Webhook, Websocket: a.Channels.Websocket},
		Status:   string(a.Status), Fired: a.Fired, CreatedAt: a.CreatedAt, Position: a.Position}
	if a.Rearm != nil {
		out.Rearm = &alertRearm{Hysteresis: a.Rearm.Hysteresis.String(), Cooldown: a.Rearm.Cooldown.String()}
	}
	if a.Fired > 0 {
		out.TriggerPrice = a.TriggerPrice.String()
		out.TriggeredAt = &a.TriggeredAt
	}
	return out
}

// listAlerts lists the caller's own alerts; nobody sees anyone else's.
func (h *handlers) listAlerts(c echo.Context) error {
	if err := h.waitForPosition(c, alertsModel); err != nil {
		return err
	}
	status := c.QueryParam("status")
	switch alerts.Status(status) {
	case "", alerts.StatusCreated, alerts.StatusTriggered, alerts.StatusRearmed, alerts.StatusDeleted:
	default:
		return invalidFields(fieldError{Field: "status", Message: "want created, triggered, rearmed or deleted"})
	}
	rows, err := alertmodel.List(c.Request().Context(), h.d.DB, caller(c).Username, status)
	if err != nil {
		return err
	}
	out := alertList{Alerts: make([]alert, len(rows))}
	for i, r := range rows {
		out.Alerts[i] = alertOf(r)
	}
	return c.JSON(http.StatusOK, out)
}

// deleteAlert deletes one of the caller's alerts; anyone else's answers
// 404 exactly like a missing one.
func (h *handlers) deleteAlert(c echo.Context) error {
	a := caller(c)
	meta := eventstore.Metadata{Actor: "user:" + a.Username, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	pos, err := h.d.Alerts.Delete(c.Request().Context(), meta, alerts.ID(c.Param("id")), a.Username)
	if err != nil {
		return err
	}
	h.readYourWrite(c, pos, alertsModel)
	return c.NoContent(http.StatusNoContent)
}

type deliveryAttempt struct {
	Attempt int       `json:"attempt"`
	OK      bool      `json:"ok"`
	Status  int       `json:"status,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

type delivery struct {
	ID           string            `json:"id"`
	Seq          int               `json:"seq"`
	Channel      string            `json:"channel"`
	To           string            `json:"to"`
	Price        string            `json:"price,omitempty"` // an alert's: the triggering price
	Event        string            `json:"event,omitempty"` // a hook's: the event delivered
	Status       string            `json:"status"`
	Attempts     []deliveryAttempt `json:"attempts"`
	Redeliveries int               `json:"redeliveries"`
	NextAttempt  *time.Time        `json:"next_attempt,omitempty"`
	DeliveredAt  *time.Time        `json:"delivered_at,omitempty"`
	GaveUpAt     *time.Time        `json:"gave_up_at,omitempty"`
	Reason       string            `json:"reason,omitempty"`
}

type deliveryList struct {
	Deliveries []delivery `json:"deliveries"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// listDeliveries is the delivery log of one of the caller's alerts.
func (h *handlers) listDeliveries(c echo.Context) error {
	ctx := c.Request().Context()
	id := alerts.ID(c.Param("id"))
	if _, err := alertmodel.Get(ctx, h.d.DB, caller(c).Username, id); err != nil {
		return err
	}
	ds, err := h.d.Outbox.Deliveries(ctx, string(id))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, deliveriesOf(ds))
}

// deliveriesOf is a delivery log as the API shows it (alerts' and hooks').
func deliveriesOf(ds []outbox.Delivery) deliveryList {
	out := deliveryList{Deliveries: make([]delivery, 0, len(ds))}
	for _, d := range ds {
		q := d.Queued
		r := delivery{ID: q.DeliveryID, Seq: q.Seq, Channel: string(q.Channel), To: q.To, Event: q.Event,
			Status: string(d.Status), Attempts: make([]deliveryAttempt, len(d.Attempts)), Redeliveries: len(d.Redeliveries),
			NextAttempt: timePtr(d.NextAttempt), DeliveredAt: timePtr(d.DeliveredAt), GaveUpAt: timePtr(d.GaveUpAt), Reason: d.Reason}
		if q.Channel != outbox.ChannelHook {
			r.Price = q.Price.String()
		}
		for i, a := range d.Attempts {
			r.Attempts[i] = deliveryAttempt{Attempt: a.Attempt, OK: a.OK, Status: a.Status, Error: a.Error, At: a.At}
		}
		out.Deliveries = append(out.Deliveries, r)
	}
	return out
}

// redeliver sends a delivery of one of the caller's alerts again: 202, the
// notifier picks it up.
func (h *handlers) redeliver(c echo.Context) error {
	a := caller(c)
	if err := h.d.Outbox.Redeliver(c.Request().Context(), c.Param("delivery"), a.Username); err != nil {
		return err
	}
	return c.NoContent(http.StatusAccepted)
}
