package alerts

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/prices"
)

// Command is an instruction to one alert, handled by Decide. The set is
// closed: Create, Trigger and Delete.
type Command interface{ command() }

// Create sets up an alert. ID names the stream ("alert-"+ID) and is chosen
// by the server, never by the client. Owner is the user the alert belongs
// to (1 to 128 bytes of UTF-8 without control characters). Target must be
// positive. Rearm nil makes a one-shot alert; otherwise Rearm.Cooldown is
// 0..MaxCooldown, and the re-arm level must exist (above: Hysteresis <
// Target; below: Target+Hysteresis < prices.Max()). At, the time of the
// request, is optional.
type Create struct {
	ID        ID
	Owner     string
	Pair      prices.Pair
	Direction Direction
	Target    prices.Price
	Channels  Channels
	Rearm     *Rearm
	At        time.Time
}

// Trigger reports a recorded price tick of the alert's pair to the alert:
// Price and At are the tick's, TickPosition the global position of its
// PriceTicked event (from 1). Pair, when set, must be the alert's pair (a
// guard against engine bugs); the zero Pair skips the check.
//
// It decides AlertTriggered when the alert is armed and Price is at or
// beyond the target; AlertRearmed when it has fired, re-arms, Price is back
// beyond the hysteresis and the cooldown has passed since it fired; and
// nothing otherwise. A tick at or before the position of the last tick that
// changed the alert decides nothing, so replaying ticks is harmless.
type Trigger struct {
	Price        prices.Price
	TickPosition uint64
	At           time.Time
	Pair         prices.Pair
}

// Delete deletes the alert for By, who must be its owner: to anyone else
// the alert does not exist (ErrNotFound). Deleting a deleted alert decides
// nothing. At is optional.
type Delete struct {
	By string
	At time.Time
}

func (Create) command()  {}
func (Trigger) command() {}
func (Delete) command()  {}

// Alert is the state of an alert stream. A zero Alert (Status "") is an
// alert that does not exist. The fields are read-only outside Evolve.
type Alert struct {
	ID        ID
	Owner     string
	Pair      prices.Pair
	Direction Direction
	Target    prices.Price
	Channels  Channels
	Rearm     *Rearm // nil: one-shot
	CreatedAt time.Time

	Status      Status
	Fired       int          // number of AlertTriggered events
	LastPrice   prices.Price // price of the latest trigger or re-arm
	TriggeredAt time.Time    // tick time of the latest trigger
	LastTick    uint64       // position of the latest tick that changed the alert
	DeletedAt   time.Time
}

// New returns the state of an alert stream with no events.
func New() *Alert { return &Alert{} }

// Exists reports whether the alert was created (it may be deleted since).
func (a *Alert) Exists() bool { return a.Status != "" }

// Armed reports whether the alert fires on a tick at or beyond its target.
func (a *Alert) Armed() bool { return a.Status == StatusCreated || a.Status == StatusRearmed }

// VisibleTo reports whether user may see the alert: only its owner may. A
// query for an alert the caller may not see answers as for a missing one.
func (a *Alert) VisibleTo(user string) bool { return a.Exists() && user != "" && a.Owner == user }

// Watch returns the condition the engine's Index should hold for the
// alert, if any: for an armed alert its direction and target (a tick
// meeting it triggers the alert); for a fired re-arming alert the opposite
// direction and the re-arm level (a tick meeting it re-arms the alert once
// the cooldown has passed; until then Trigger decides nothing and the
// engine retries on later ticks). A fired one-shot alert, a deleted alert
// and a missing one have no watch: the engine removes them from the index.
func (a *Alert) Watch() (Entry, bool) {
	switch {
	case a.Armed():
		return Entry{ID: a.ID, Pair: a.Pair, Direction: a.Direction, Target: a.Target}, true
	case a.Status == StatusTriggered && a.Rearm != nil:
		if level, ok := rearmLevel(a.Direction, a.Target, a.Rearm.Hysteresis); ok {
			return Entry{ID: a.ID, Pair: a.Pair, Direction: a.Direction.Opposite(), Target: level}, true
		}
	}
	return Entry{}, false
}

// rearmLevel turns the strict re-arm condition into one the index holds
// (prices are multiples of prices.Epsilon, so x < y exactly when
// x <= y-Epsilon): above alerts re-arm at price <= target-h-ε, below alerts
// at price >= target+h+ε. ok is false when no such price exists.
func rearmLevel(d Direction, target, h prices.Price) (prices.Price, bool) {
	var level prices.Price
	var err error
	switch d {
	case Above:
		if level, err = target.Sub(h); err == nil {
			level, err = level.Sub(prices.Epsilon())
		}
	case Below:
		if level, err = target.Add(h); err == nil {
			level, err = level.Add(prices.Epsilon())
		}
	default:
		return prices.Price{}, false
	}
	return level, err == nil
}

// Evolve applies e to a and returns it; it changes a in place.
func Evolve(a *Alert, e Event) *Alert {
	switch e := e.(type) {
	case AlertCreated:
		var rearm *Rearm
		if e.Rearm != nil {
			r := *e.Rearm
			rearm = &r
		}
		*a = Alert{ID: e.ID, Owner: e.Owner, Pair: e.Pair, Direction: e.Direction, Target: e.Target,
			Channels: e.Channels, Rearm: rearm, CreatedAt: e.At, Status: StatusCreated}
	case AlertTriggered:
		a.Status, a.Fired, a.LastPrice, a.TriggeredAt = StatusTriggered, e.Seq, e.Price, e.At
		a.LastTick = max(a.LastTick, e.TickPosition)
	case AlertRearmed:
		a.Status, a.LastPrice = StatusRearmed, e.Price
		a.LastTick = max(a.LastTick, e.TickPosition)
	case AlertDeleted:
		a.Status, a.DeletedAt = StatusDeleted, e.At
	}
	return a
}

// Decide returns the events that carry out c on a, or an error; it never
// changes a. A command that changes nothing decides no events and nil.
// Errors wrap ErrValidation, ErrNotFound or ErrExists.
func Decide(a *Alert, c Command) ([]Event, error) {
	if a == nil {
		a = New()
	}
	switch c := c.(type) {
	case Create:
		return a.create(c)
	case Trigger:
		return a.trigger(c)
	case Delete:
		return a.delete(c)
	}
	return nil, fmt.Errorf("alerts: decide: %w: unknown command %T (pass command values, not pointers)", ErrValidation, c)
}

// Execute decides c on a and, when that succeeds, evolves the events into
// a. On error a is unchanged. a must not be nil.
func Execute(a *Alert, c Command) ([]Event, error) {
	events, err := Decide(a, c)
	if err != nil {
		return nil, err
	}
	for _, e := range events {
		Evolve(a, e)
	}
	return events, nil
}

func (a *Alert) create(c Create) ([]Event, error) {
	op := "alerts: create " + clip(string(c.ID))
	if !c.ID.Valid() {
		return nil, invalid(op, "id: want 1 to %d of A-Z a-z 0-9 _ -", maxIDLen)
	}
	if a.Exists() {
		return nil, fmt.Errorf("%s: %w", op, ErrExists)
	}
	if !validOwner(c.Owner) {
		return nil, invalid(op, "owner: want 1 to %d bytes of UTF-8 without control characters", maxOwnerLen)
	}
	if c.Pair.IsZero() {
		return nil, invalid(op, "no pair")
	}
	if !c.Direction.Valid() {
		return nil, invalid(op, "direction %q: want %q or %q", clip(string(c.Direction)), Above, Below)
	}
	if c.Target.IsZero() {
		return nil, invalid(op, "target must be positive")
	}
	if err := validChannels(c.Channels); err != nil {
		return nil, invalid(op, "%v", err)
	}
	var rearm *Rearm
	if c.Rearm != nil {
		r := *c.Rearm
		if r.Cooldown < 0 || r.Cooldown > MaxCooldown {
			return nil, invalid(op, "rearm cooldown %s: want 0 to %s", r.Cooldown, MaxCooldown)
		}
		if _, ok := rearmLevel(c.Direction, c.Target, r.Hysteresis); !ok {
			if c.Direction == Above {
				return nil, invalid(op, "rearm hysteresis %s: must be less than the target %s", r.Hysteresis, c.Target)
			}
			return nil, invalid(op, "rearm hysteresis %s: target plus hysteresis out of range", r.Hysteresis)
		}
		rearm = &r
	}
	return []Event{AlertCreated{ID: c.ID, Owner: c.Owner, Pair: c.Pair, Direction: c.Direction, Target: c.Target,
		Channels: c.Channels, Rearm: rearm, At: c.At}}, nil
}

func (a *Alert) trigger(c Trigger) ([]Event, error) {
	if !a.Exists() {
		return nil, fmt.Errorf("alerts: trigger: %w", ErrNotFound)
	}
	op := "alerts: trigger " + string(a.ID)
	switch {
	case c.TickPosition == 0:
		return nil, invalid(op, "tick position 0 (positions start at 1)")
	case c.At.IsZero():
		return nil, invalid(op, "tick without time")
	case !c.Pair.IsZero() && c.Pair != a.Pair:
		return nil, invalid(op, "tick of %s for an alert on %s", c.Pair, a.Pair)
	}
	if a.Status == StatusDeleted || c.TickPosition <= a.LastTick {
		return nil, nil
	}
	switch {
	case a.Armed():
		if a.Direction.Holds(c.Price, a.Target) {
			return []Event{AlertTriggered{ID: a.ID, Owner: a.Owner, Pair: a.Pair, Direction: a.Direction,
				Target: a.Target, Price: c.Price, TickPosition: c.TickPosition, Seq: a.Fired + 1, At: c.At,
				Channels: a.Channels}}, nil
		}
	case a.Status == StatusTriggered && a.Rearm != nil:
		w, ok := a.Watch()
		if ok && w.Direction.Holds(c.Price, w.Target) && !c.At.Before(a.TriggeredAt.Add(a.Rearm.Cooldown)) {
			return []Event{AlertRearmed{ID: a.ID, Price: c.Price, TickPosition: c.TickPosition, At: c.At}}, nil
		}
	}
	return nil, nil
}

func (a *Alert) delete(c Delete) ([]Event, error) {
	// One error for "missing" and "not yours", without the id: the answer
	// must not tell an alert someone else owns from one that is not there.
	if !a.VisibleTo(c.By) {
		return nil, fmt.Errorf("alerts: delete: %w", ErrNotFound)
	}
	if a.Status == StatusDeleted {
		return nil, nil
	}
	return []Event{AlertDeleted{ID: a.ID, By: c.By, At: c.At}}, nil
}

func validOwner(s string) bool {
	if s == "" || len(s) > maxOwnerLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

func validChannels(ch Channels) error {
	if ch.Email == "" && ch.Webhook == "" && !ch.Websocket {
		return fmt.Errorf("no channel: set an email, a webhook or websocket")
	}
	if ch.Email != "" {
		if err := CheckEmail(ch.Email); err != nil {
			return err
		}
	}
	if ch.Webhook != "" {
		if len(ch.Webhook) > maxURLLen || !printable(ch.Webhook) {
			return fmt.Errorf("webhook: want at most %d bytes of printable ASCII", maxURLLen)
		}
		u, err := url.Parse(ch.Webhook)
		switch {
		case err != nil:
			return fmt.Errorf("webhook %q: not a URL", clip(ch.Webhook))
		case u.Scheme != "http" && u.Scheme != "https":
			return fmt.Errorf("webhook %q: want an http or https URL", clip(ch.Webhook))
		case u.Host == "" || u.Hostname() == "":
			return fmt.Errorf("webhook %q: no host", clip(ch.Webhook))
		case u.User != nil:
			return fmt.Errorf("webhook: credentials in the URL are not stored; sign with the webhook secret instead")
		case strings.Contains(ch.Webhook, "#") || u.Opaque != "":
			return fmt.Errorf("webhook %q: no fragment or opaque URL", clip(ch.Webhook))
		}
	}
	return nil
}

// CheckEmail returns nil when s is a valid email channel: a user's e-mail
// address (identity.ValidEmail: bare, such as a@example.com, at most
// identity.MaxEmail bytes) that is also printable ASCII without spaces or
// control characters (so no CR LF).
func CheckEmail(s string) error {
	if len(s) > identity.MaxEmail || !printable(s) {
		return fmt.Errorf("email: want at most %d bytes of printable ASCII", identity.MaxEmail)
	}
	if !identity.ValidEmail(s) {
		return fmt.Errorf("email %q: want a bare address such as a@example.com", clip(s))
	}
	return nil
}

// printable reports whether s is printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// invalid returns op: ErrValidation: detail.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrValidation, fmt.Sprintf(format, args...))
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
