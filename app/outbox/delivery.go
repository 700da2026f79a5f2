package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/prices"
)

// Event type names of delivery streams. Never rename one.
const (
	TypeQueued              = "notify.queued"
	TypeAttempted           = "notify.attempted"
	TypeDelivered           = "notify.delivered"
	TypeGaveUp              = "notify.gave_up"
	TypeRedeliveryRequested = "notify.redelivery_requested"
)

// StreamPrefix starts the name of every delivery stream:
// "delivery-<alertID>.<seq>.<channel>" for an alert's firing,
// "delivery-<hookID>.<seq>.hook" for an integrator's webhook.
const StreamPrefix = "delivery-"

// ErrNotFound: no such delivery, or one of another user's alert or hook.
var ErrNotFound = errors.New("delivery not found")

// Channel is where a delivery goes.
type Channel string

// The channels the notifier delivers to: an alert's email and webhook, and
// an integrator's webhook (ChannelHook, queued by the hooks follower, its
// body built when queued). Websocket pushes are live only and have no
// outbox.
const (
	ChannelEmail   Channel = "email"
	ChannelWebhook Channel = "webhook"
	ChannelHook    Channel = "hook"
)

// channels in the order deliveries of one alert firing are queued and listed.
var channels = []Channel{ChannelEmail, ChannelWebhook}

// DeliveryID names the delivery of firing seq of alert to channel:
// "<alertID>.<seq>.<channel>". Alert ids have no dots, so it parses back.
func DeliveryID(alert alerts.ID, seq int, ch Channel) string {
	return string(alert) + "." + strconv.Itoa(seq) + "." + string(ch)
}

// HookDeliveryID names delivery seq (from 1, in the order of the log) of
// an integrator's webhook: "<hookID>.<seq>.hook".
func HookDeliveryID(hook string, seq int) string {
	return DeliveryID(alerts.ID(hook), seq, ChannelHook)
}

// parseDeliveryID splits a delivery id; ok is false for a malformed one.
// Alert and hook ids follow the same rule (alerts.ID.Valid).
func parseDeliveryID(id string) (source alerts.ID, seq int, ch Channel, ok bool) {
	parts := strings.Split(id, ".")
	if len(parts) != 3 {
		return "", 0, "", false
	}
	seq, err := strconv.Atoi(parts[1])
	source, ch = alerts.ID(parts[0]), Channel(parts[2])
	if err != nil || seq < 1 || strconv.Itoa(seq) != parts[1] || !source.Valid() ||
		(ch != ChannelEmail && ch != ChannelWebhook && ch != ChannelHook) {
		return "", 0, "", false
	}
	return source, seq, ch, true
}

// stream returns the stream of a delivery.
func stream(deliveryID string) string { return StreamPrefix + deliveryID }

// Event is a fact of a delivery stream.
type Event interface{ EventType() string }

// Queued: a firing of an alert is to be delivered to one channel, or an
// event of a wallet to an integrator's webhook (Channel ChannelHook: Hook,
// EventType and Body set, the alert fields empty). It holds everything the
// message needs but a hook's secret, so the notifier reads nothing else to
// send it.
type Queued struct {
	DeliveryID   string           `json:"delivery_id"`
	AlertID      alerts.ID        `json:"alert_id,omitzero"`
	Seq          int              `json:"seq"`
	Channel      Channel          `json:"channel"`
	To           string           `json:"to"` // email address or webhook URL
	Owner        string           `json:"owner"`
	Pair         prices.Pair      `json:"pair,omitzero"`
	Direction    alerts.Direction `json:"direction,omitzero"`
	Target       prices.Price     `json:"target,omitzero"`
	Price        prices.Price     `json:"price,omitzero"` // the triggering tick's
	TickPosition uint64           `json:"tick_position,omitzero"`
	TriggeredAt  time.Time        `json:"triggered_at,omitzero"` // the tick's time
	// TriggerPosition is the global position of the AlertTriggered.
	TriggerPosition uint64    `json:"trigger_position,omitzero"`
	At              time.Time `json:"at"`
	// Hook is the integrator's webhook (ChannelHook), Wallet its wallet,
	// Event the delivery's event name and Body the JSON it POSTs.
	Hook   string          `json:"hook,omitempty"`
	Wallet string          `json:"wallet,omitempty"`
	Event  string          `json:"event,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
}

// Attempted: attempt Attempt (from 1 over the delivery's life) was made
// at At. A failed one has Error and, unless the delivery gives up,
// NextAttempt. Status is the webhook's HTTP status, if one answered.
type Attempted struct {
	DeliveryID  string    `json:"delivery_id"`
	Attempt     int       `json:"attempt"`
	OK          bool      `json:"ok"`
	Error       string    `json:"error,omitempty"`
	Status      int       `json:"status,omitempty"`
	At          time.Time `json:"at"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
}

// Delivered: attempt Attempt succeeded.
type Delivered struct {
	DeliveryID string    `json:"delivery_id"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
}

// GaveUp: the delivery stopped after Attempts attempts, for Reason.
type GaveUp struct {
	DeliveryID string    `json:"delivery_id"`
	Attempts   int       `json:"attempts"`
	Reason     string    `json:"reason"`
	At         time.Time `json:"at"`
}

// RedeliveryRequested: By asked for the delivery to be sent again. The
// notifier tries it at once and, on failure, follows the retry schedule
// from its start.
type RedeliveryRequested struct {
	DeliveryID string    `json:"delivery_id"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
}

func (Queued) EventType() string              { return TypeQueued }
func (Attempted) EventType() string           { return TypeAttempted }
func (Delivered) EventType() string           { return TypeDelivered }
func (GaveUp) EventType() string              { return TypeGaveUp }
func (RedeliveryRequested) EventType() string { return TypeRedeliveryRequested }

// Events returns one value of each event type, for codecs.
func Events() []Event {
	return []Event{Queued{}, Attempted{}, Delivered{}, GaveUp{}, RedeliveryRequested{}}
}

// Status is where a delivery is.
type Status string

// The statuses: pending (queued or redelivery requested, attempts to come)
// → delivered or gave_up; a redelivery request makes either pending again.
const (
	StatusPending   Status = "pending"
	StatusDelivered Status = "delivered"
	StatusGaveUp    Status = "gave_up"
)

// Delivery is the state of a delivery stream: what it sends, where it is,
// and its log of attempts.
type Delivery struct {
	Queued       Queued // what is sent, to whom
	Status       Status
	Attempts     []Attempted
	Redeliveries []RedeliveryRequested
	// NextAttempt is when a pending delivery is due (zero: now).
	NextAttempt time.Time
	DeliveredAt time.Time
	GaveUpAt    time.Time
	Reason      string // why it gave up

	failed int // failed attempts since queued or redelivery requested
}

// exists reports whether the delivery was queued.
func (d *Delivery) exists() bool { return d.Status != "" }

func newDelivery() *Delivery { return &Delivery{} }

// evolve applies ev to d and returns it; it changes d in place.
func evolve(d *Delivery, ev Event) *Delivery {
	switch ev := ev.(type) {
	case Queued:
		*d = Delivery{Queued: ev, Status: StatusPending}
	case Attempted:
		d.Attempts = append(d.Attempts, ev)
		if !ev.OK {
			d.failed++
			d.NextAttempt = ev.NextAttempt
		}
	case Delivered:
		d.Status, d.DeliveredAt, d.NextAttempt = StatusDelivered, ev.At, time.Time{}
	case GaveUp:
		d.Status, d.GaveUpAt, d.Reason, d.NextAttempt = StatusGaveUp, ev.At, ev.Reason, time.Time{}
	case RedeliveryRequested:
		d.Redeliveries = append(d.Redeliveries, ev)
		d.Status, d.failed, d.NextAttempt, d.Reason = StatusPending, 0, time.Time{}, ""
	}
	return d
}

// outcome is the result of one send.
type outcome struct {
	err       error
	status    int // HTTP status of a webhook, 0 if none
	permanent bool
	at        time.Time
}

// maxErrorLen bounds the error text stored with an attempt.
const maxErrorLen = 512

// recordAttempt decides the events that record a send with result o on d:
// the attempt, then delivered, gave_up or nothing (a retry is due at
// NextAttempt). It runs on the freshly loaded stream, so a redelivery
// requested while the send was under way is taken into account.
func recordAttempt(d *Delivery, o outcome, backoff func(int) (time.Duration, bool)) ([]Event, error) {
	if !d.exists() {
		return nil, fmt.Errorf("record attempt: %w", ErrNotFound)
	}
	n := len(d.Attempts) + 1
	id := d.Queued.DeliveryID
	a := Attempted{DeliveryID: id, Attempt: n, OK: o.err == nil, Status: o.status, At: o.at}
	if o.err == nil {
		if d.Status == StatusDelivered {
			return []Event{a}, nil
		}
		return []Event{a, Delivered{DeliveryID: id, Attempt: n, At: o.at}}, nil
	}
	a.Error = clip(o.err.Error(), maxErrorLen)
	if d.Status != StatusPending { // settled meanwhile: just log the attempt
		return []Event{a}, nil
	}
	failed := d.failed + 1
	if o.permanent {
		return []Event{a, GaveUp{DeliveryID: id, Attempts: n, Reason: "permanent failure: " + a.Error, At: o.at}}, nil
	}
	wait, retry := backoff(failed)
	if !retry {
		return []Event{a, GaveUp{DeliveryID: id, Attempts: n,
			Reason: fmt.Sprintf("%d attempts failed; last: %s", failed, a.Error), At: o.at}}, nil
	}
	a.NextAttempt = o.at.Add(wait)
	return []Event{a}, nil
}

// DefaultBackoff is the retry schedule: after the first failed attempt
// wait 10 s, after the second 1 min, then 10 min, and give up after the
// 6th attempt (about 32 minutes after the first).
func DefaultBackoff(failed int) (time.Duration, bool) {
	switch {
	case failed <= 0:
		return 0, true
	case failed == 1:
		return 10 * time.Second, true
	case failed == 2:
		return time.Minute, true
	case failed < DefaultMaxAttempts:
		return 10 * time.Minute, true
	}
	return 0, false
}

// DefaultMaxAttempts is how many attempts DefaultBackoff allows.
const DefaultMaxAttempts = 6

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
