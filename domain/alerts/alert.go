// Package alerts is the price-alert aggregate (stream alert-<id>) and the
// in-memory index the alert engine matches price ticks against.
//
// An alert belongs to its owner: it fires when the price of its pair is at
// or beyond a target in its direction (above: price >= target; below:
// price <= target), once for a one-shot alert, and again after re-arming
// for a re-arming one. Only the owner sees or deletes it; to anyone else it
// does not exist (ErrNotFound, never a "forbidden" that would confirm the
// id). Notifications are side effects of AlertTriggered, sent by the
// notifier through an outbox, never by this package.
//
// Pure: no clock, no I/O. Decide returns the events a command produces;
// Evolve applies an event to the state.
package alerts

import (
	"errors"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// Event type names as stored in the event store. Never rename one.
const (
	TypeAlertCreated   = "alerts.created"
	TypeAlertTriggered = "alerts.triggered"
	TypeAlertRearmed   = "alerts.rearmed"
	TypeAlertDeleted   = "alerts.deleted"
)

// TypePrefix starts the name of every event type of this package.
const TypePrefix = "alerts."

// StreamPrefix starts the name of every alert stream: "alert-<id>".
const StreamPrefix = "alert-"

// Limits on command input.
const (
	maxIDLen    = 64
	maxOwnerLen = 128
	maxURLLen   = 2048
	// MaxCooldown is the longest Rearm.Cooldown.
	MaxCooldown = 30 * 24 * time.Hour
)

// Errors. Decide wraps them with the operation and the alert id.
var (
	ErrValidation = errors.New("validation failed")
	// ErrNotFound: no such alert, or one the caller does not own. The two
	// are deliberately indistinguishable, message included.
	ErrNotFound = errors.New("alert not found")
	// ErrExists: Create with the id of an existing alert.
	ErrExists = errors.New("alert exists")
)

// ID identifies an alert: 1 to 64 of A-Z a-z 0-9 _ - (a UUID fits).
type ID string

// Stream returns the alert's stream name, "alert-<id>".
func (id ID) Stream() string { return StreamPrefix + string(id) }

// Valid reports whether id is a well-formed alert id.
func (id ID) Valid() bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Direction says on which side of the target an alert fires.
type Direction string

// The directions. Above fires at price >= target, Below at price <= target.
const (
	Above Direction = "above"
	Below Direction = "below"
)

// Valid reports whether d is Above or Below.
func (d Direction) Valid() bool { return d == Above || d == Below }

// Opposite returns Below for Above and Above for Below.
func (d Direction) Opposite() Direction {
	if d == Above {
		return Below
	}
	return Above
}

// Holds reports whether price is at or beyond target in direction d.
func (d Direction) Holds(price, target prices.Price) bool {
	switch d {
	case Above:
		return !price.Less(target)
	case Below:
		return !target.Less(price)
	}
	return false
}

// Status is where an alert is in its life.
type Status string

// The statuses: created → triggered → rearmed → triggered → ...; deleted
// from any of them. Created and rearmed alerts are armed: they fire.
const (
	StatusCreated   Status = "created"
	StatusTriggered Status = "triggered"
	StatusRearmed   Status = "rearmed"
	StatusDeleted   Status = "deleted"
)

// Channels are where the notifier sends a triggered alert. At least one is
// set. Email is a bare address ("a@example.com", no display name); Webhook
// an absolute http or https URL without credentials or fragment.
type Channels struct {
	Email     string `json:"email,omitempty"`
	Webhook   string `json:"webhook,omitempty"`
	Websocket bool   `json:"websocket,omitempty"`
}

// Rearm makes an alert fire again after it has fired. It re-arms once the
// price has gone back beyond the target by more than Hysteresis (above:
// price < target - Hysteresis; below: price > target + Hysteresis) and at
// least Cooldown has passed since it fired, both measured on the ticks. A
// price that oscillates around the target therefore fires once, not on
// every crossing.
type Rearm struct {
	Hysteresis prices.Price  `json:"hysteresis"`
	Cooldown   time.Duration `json:"cooldown_ns"`
}

// Event is a fact of an alert stream.
type Event interface{ EventType() string }

// AlertCreated: Owner set up an alert.
type AlertCreated struct {
	ID        ID           `json:"id"`
	Owner     string       `json:"owner"`
	Pair      prices.Pair  `json:"pair"`
	Direction Direction    `json:"direction"`
	Target    prices.Price `json:"target"`
	Channels  Channels     `json:"channels"`
	Rearm     *Rearm       `json:"rearm,omitempty"` // nil: one-shot
	At        time.Time    `json:"at"`
}

// AlertTriggered: the tick at TickPosition (global position of its
// PriceTicked) had Price, at or beyond Target. Price is the tick's price,
// never the target. Seq counts the firings of the alert from 1; the alert
// id and Seq make the notifier's outbox key. Owner and Channels are copied
// from the alert so that the notifier needs nothing but this event.
type AlertTriggered struct {
	ID           ID           `json:"id"`
	Owner        string       `json:"owner"`
	Pair         prices.Pair  `json:"pair"`
	Direction    Direction    `json:"direction"`
	Target       prices.Price `json:"target"`
	Price        prices.Price `json:"price"`
	TickPosition uint64       `json:"tick_position"`
	Seq          int          `json:"seq"`
	At           time.Time    `json:"at"`
	Channels     Channels     `json:"channels"`
}

// AlertRearmed: the tick at TickPosition, with Price, brought a fired
// re-arming alert back beyond its hysteresis after its cooldown.
type AlertRearmed struct {
	ID           ID           `json:"id"`
	Price        prices.Price `json:"price"`
	TickPosition uint64       `json:"tick_position"`
	At           time.Time    `json:"at"`
}

// AlertDeleted: the owner deleted the alert.
type AlertDeleted struct {
	ID ID        `json:"id"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func (AlertCreated) EventType() string   { return TypeAlertCreated }
func (AlertTriggered) EventType() string { return TypeAlertTriggered }
func (AlertRearmed) EventType() string   { return TypeAlertRearmed }
func (AlertDeleted) EventType() string   { return TypeAlertDeleted }

// Events returns one value of each event type, for codecs.
func Events() []Event {
	return []Event{AlertCreated{}, AlertTriggered{}, AlertRearmed{}, AlertDeleted{}}
}
