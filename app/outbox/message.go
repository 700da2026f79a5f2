package outbox

import (
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
)

// EventAlertTriggered is the event type of alert webhooks.
const EventAlertTriggered = "alert.triggered"

// condition words a direction: "at or above".
func condition(d alerts.Direction) string {
	if d == alerts.Below {
		return "at or below"
	}
	return "at or above"
}

// message builds the email of a delivery.
func message(q Queued, from string) Mail {
	at := q.TriggeredAt.UTC().Format(time.RFC3339)
	subject := fmt.Sprintf("Price alert: %s is %s (target %s %s)", q.Pair, q.Price, condition(q.Direction), q.Target)
	var b strings.Builder
	fmt.Fprintf(&b, "Your price alert %s has triggered.\n\n", q.AlertID)
	fmt.Fprintf(&b, "Pair:       %s\n", q.Pair)
	fmt.Fprintf(&b, "Price:      %s (the price that triggered the alert)\n", q.Price)
	fmt.Fprintf(&b, "Condition:  %s %s (%s)\n", condition(q.Direction), q.Target, q.Direction)
	fmt.Fprintf(&b, "Target:     %s\n", q.Target)
	fmt.Fprintf(&b, "Time:       %s\n", at)
	fmt.Fprintf(&b, "Firing:     #%d\n", q.Seq)
	fmt.Fprintf(&b, "\nDelivery %s. Should this message arrive twice, the copies carry the same Message-ID.\n", q.DeliveryID)
	return Mail{From: from, To: q.To, Subject: subject, Text: b.String(), MessageID: messageID(q.DeliveryID, from)}
}

// messageID is "<deliveryID@domain>", the domain taken from the sender's
// address (or "coinledger"). Every attempt of a delivery uses the same one,
// so that receivers can drop a duplicate.
func messageID(deliveryID, from string) string {
	domain := "coinledger"
	if a, err := mail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return "<" + deliveryID + "@" + domain + ">"
}

// WebhookPayload is the JSON body of an alert webhook.
type WebhookPayload struct {
	DeliveryID   string       `json:"delivery_id"`
	Event        string       `json:"event"` // "alert.triggered"
	Alert        WebhookAlert `json:"alert"`
	Price        prices.Price `json:"price"` // the triggering tick's price
	TickPosition uint64       `json:"tick_position"`
	At           time.Time    `json:"at"` // the tick's time
}

// WebhookAlert is the alert in a webhook body.
type WebhookAlert struct {
	ID        alerts.ID        `json:"id"`
	Pair      prices.Pair      `json:"pair"`
	Direction alerts.Direction `json:"direction"`
	Target    prices.Price     `json:"target"`
	Seq       int              `json:"seq"` // which firing of the alert
}

// webhook builds the webhook request of a delivery.
func webhook(q Queued, secret []byte) (Webhook, error) {
	body, err := json.Marshal(WebhookPayload{
		DeliveryID: q.DeliveryID, Event: EventAlertTriggered,
		Alert: WebhookAlert{ID: q.AlertID, Pair: q.Pair, Direction: q.Direction, Target: q.Target, Seq: q.Seq},
		Price: q.Price, TickPosition: q.TickPosition, At: q.TriggeredAt.UTC(),
	})
	if err != nil {
		return Webhook{}, fmt.Errorf("webhook body of %s: %w", q.DeliveryID, err)
	}
	return Webhook{URL: q.To, Secret: secret, DeliveryID: q.DeliveryID, EventType: EventAlertTriggered, Body: body}, nil
}
