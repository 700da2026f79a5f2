// Package hook is the webhook aggregate (stream hook-<id>): an
// integrator's registration of a URL to which the service POSTs, signed,
// the events of one wallet it asks for (deposits, withdrawals, transfers,
// holds), optionally only those of some accounts.
//
// A hook belongs to its owner: only the owner sees or deletes it; to
// anyone else it does not exist (ErrNotFound). Its signing secret is
// credential material: the Registered event carries it in the field
// SecretFields names, which the event store seals (eventstore.Sealing), so
// no reader of the log sees it. Deliveries are side effects of the ledger's
// events, queued by a follower into the outbox, never by this package.
//
// Pure: no clock, no I/O. Decide returns the events a command produces;
// Evolve applies an event to the state.
package hook

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/ledger"
)

// Event type names as stored in the event store. Never rename one.
const (
	TypeRegistered = "hooks.registered"
	TypeDeleted    = "hooks.deleted"
)

// StreamPrefix starts the name of every hook stream: "hook-<id>".
const StreamPrefix = "hook-"

// Limits on command input.
const (
	maxNameLen   = 64
	maxURLLen    = 2048
	maxAccounts  = 100
	minSecretLen = 16
	// MaxPerWallet is how many live hooks one owner may have on one wallet.
	MaxPerWallet = 20
)

// Errors. Decide wraps them with the operation and the hook id.
var (
	ErrValidation = errors.New("validation failed")
	// ErrNotFound: no such hook, or one the caller does not own. The two
	// are deliberately indistinguishable.
	ErrNotFound = errors.New("webhook not found")
	// ErrExists: Register with the id of an existing hook.
	ErrExists = errors.New("webhook exists")
	// ErrTooMany: the owner has MaxPerWallet hooks on the wallet already.
	ErrTooMany = errors.New("too many webhooks")
)

// ID identifies a hook. It follows the alert id rule (alerts.ID: 1 to 64
// of A-Z a-z 0-9 _ -, a UUID fits), which the outbox's delivery ids rely
// on.
type ID string

// Stream returns the hook's stream name, "hook-<id>".
func (id ID) Stream() string { return StreamPrefix + string(id) }

// Valid reports whether id is a well-formed hook id.
func (id ID) Valid() bool { return alerts.ID(id).Valid() }

// Kind is a kind of event a hook may ask for.
type Kind string

// The kinds, with the ledger event types each stands for.
const (
	DepositSeen         Kind = "deposit.seen"
	DepositConfirmed    Kind = "deposit.confirmed"
	DepositReversed     Kind = "deposit.reversed"
	WithdrawalRequested Kind = "withdrawal.requested"
	WithdrawalBroadcast Kind = "withdrawal.broadcast"
	WithdrawalConfirmed Kind = "withdrawal.confirmed"
	WithdrawalFailed    Kind = "withdrawal.failed"
	WithdrawalUnknown   Kind = "withdrawal.unknown"
	Transfer            Kind = "transfer"
	Hold                Kind = "hold" // placed, released or expired
)

// kinds maps each ledger event type a hook can receive to its kind.
var kinds = map[string]Kind{
	ledger.TypeDepositSeen:         DepositSeen,
	ledger.TypeDepositConfirmed:    DepositConfirmed,
	ledger.TypeDepositReversed:     DepositReversed,
	ledger.TypeWithdrawalRequested: WithdrawalRequested,
	ledger.TypeWithdrawalBroadcast: WithdrawalBroadcast,
	ledger.TypeWithdrawalConfirmed: WithdrawalConfirmed,
	ledger.TypeWithdrawalFailed:    WithdrawalFailed,
	ledger.TypeWithdrawalUnknown:   WithdrawalUnknown,
	ledger.TypeFundsTransferred:    Transfer,
	ledger.TypeHoldPlaced:          Hold,
	ledger.TypeHoldReleased:        Hold,
	ledger.TypeHoldExpired:         Hold,
}

// Kinds returns every kind, in a fixed order.
func Kinds() []Kind {
	return []Kind{DepositSeen, DepositConfirmed, DepositReversed, WithdrawalRequested, WithdrawalBroadcast,
		WithdrawalConfirmed, WithdrawalFailed, WithdrawalUnknown, Transfer, Hold}
}

// KindOf returns the kind of a ledger event type, false for one no hook
// receives.
func KindOf(eventType string) (Kind, bool) {
	k, ok := kinds[eventType]
	return k, ok
}

// EventName is the name a delivery of a ledger event of type eventType
// carries (its Coinledger-Event header and "event" member): its kind, and
// for holds which change ("hold.placed", "hold.released", "hold.expired").
func EventName(eventType string) string {
	switch eventType {
	case ledger.TypeHoldPlaced:
		return "hold.placed"
	case ledger.TypeHoldReleased:
		return "hold.released"
	case ledger.TypeHoldExpired:
		return "hold.expired"
	}
	return string(kinds[eventType])
}

// SecretFields names, per event type, the fields that hold credential
// material (for eventstore.Sealing).
func SecretFields() map[string][]string {
	return map[string][]string{TypeRegistered: {"secret"}}
}

// Event is a fact of a hook stream.
type Event interface{ EventType() string }

// Registered: Owner registered the hook on Wallet. Accounts empty: every
// account. Secret signs the deliveries (sealed in the store).
type Registered struct {
	ID       ID        `json:"id"`
	Wallet   string    `json:"wallet"`
	Owner    string    `json:"owner"`
	URL      string    `json:"url"`
	Kinds    []Kind    `json:"kinds"`
	Accounts []string  `json:"accounts,omitempty"`
	Secret   string    `json:"secret"`
	At       time.Time `json:"at"`
}

// Deleted: By deleted the hook; nothing more is delivered for it.
type Deleted struct {
	ID ID        `json:"id"`
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func (Registered) EventType() string { return TypeRegistered }
func (Deleted) EventType() string    { return TypeDeleted }

// Events returns one value of each event type, for codecs.
func Events() []Event { return []Event{Registered{}, Deleted{}} }

// Hook is the state of a hook stream.
type Hook struct {
	Registered
	Deleted   bool
	DeletedAt time.Time
}

// New returns the state of a hook stream with no events.
func New() *Hook { return &Hook{} }

// Exists reports whether the hook was registered.
func (h *Hook) Exists() bool { return h.ID != "" }

// Live reports whether the hook is registered and not deleted.
func (h *Hook) Live() bool { return h.Exists() && !h.Deleted }

// Wants reports whether the hook receives a ledger event of eventType
// touching accounts (any of them, when the hook has an account filter).
func (h *Hook) Wants(eventType string, accounts []string) bool {
	k, ok := kinds[eventType]
	if !ok || !h.Live() || !slices.Contains(h.Kinds, k) {
		return false
	}
	if len(h.Accounts) == 0 {
		return true
	}
	for _, a := range accounts {
		if slices.Contains(h.Accounts, a) {
			return true
		}
	}
	return false
}

// Evolve applies ev to h and returns it; it changes h in place.
func Evolve(h *Hook, ev Event) *Hook {
	switch ev := ev.(type) {
	case Registered:
		*h = Hook{Registered: ev}
	case Deleted:
		h.Deleted, h.DeletedAt = true, ev.At
	}
	return h
}

// Register is the command that creates a hook. Live is how many live
// hooks Owner has on Wallet already (checked against MaxPerWallet).
type Register struct {
	ID       ID
	Wallet   string
	Owner    string
	URL      string
	Kinds    []Kind
	Accounts []string
	Secret   string
	Live     int
	At       time.Time
}

// Delete is the command that deletes a hook for By, who must own it.
type Delete struct {
	By string
	At time.Time
}

// Decide returns the events c produces on h. Errors wrap ErrValidation,
// ErrNotFound, ErrExists or ErrTooMany. Deleting a deleted hook decides
// nothing.
func Decide(h *Hook, c any) ([]Event, error) {
	switch c := c.(type) {
	case Register:
		return register(h, c)
	case Delete:
		if !h.Exists() || h.Owner != c.By || c.By == "" {
			return nil, fmt.Errorf("hooks: delete: %w", ErrNotFound)
		}
		if h.Deleted {
			return nil, nil
		}
		return []Event{Deleted{ID: h.ID, By: c.By, At: c.At}}, nil
	}
	return nil, fmt.Errorf("hooks: decide: %w: unknown command %T", ErrValidation, c)
}

func register(h *Hook, c Register) ([]Event, error) {
	op := "hooks: register " + clip(string(c.ID))
	switch {
	case h.Exists():
		return nil, fmt.Errorf("%s: %w", op, ErrExists)
	case !c.ID.Valid():
		return nil, invalid(op, "id must be 1-64 of A-Z a-z 0-9 _ -")
	case !identity.ValidWallet(c.Wallet):
		return nil, invalid(op, "no valid wallet")
	case c.Owner == "":
		return nil, invalid(op, "no owner")
	case len(c.Secret) < minSecretLen:
		return nil, invalid(op, "secret shorter than %d bytes", minSecretLen)
	case c.At.IsZero():
		return nil, invalid(op, "no time")
	case c.Live >= MaxPerWallet:
		return nil, fmt.Errorf("%s: %w: at most %d webhooks per wallet and owner", op, ErrTooMany, MaxPerWallet)
	}
	if len(c.URL) > maxURLLen {
		return nil, invalid(op, "url: longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid(op, "url: want an absolute http or https URL")
	}
	if len(c.Kinds) == 0 {
		return nil, invalid(op, "kinds: at least one is required")
	}
	var ks []Kind
	for _, k := range c.Kinds {
		if !slices.Contains(Kinds(), k) {
			return nil, invalid(op, "kinds: unknown kind %q", clip(string(k)))
		}
	}
	for _, k := range Kinds() { // canonical order, no duplicates
		if slices.Contains(c.Kinds, k) {
			ks = append(ks, k)
		}
	}
	if len(c.Accounts) > maxAccounts {
		return nil, invalid(op, "accounts: more than %d", maxAccounts)
	}
	accounts := slices.Clone(c.Accounts)
	slices.Sort(accounts)
	accounts = slices.Compact(accounts)
	for _, a := range accounts {
		if a == "" || len(a) > maxNameLen {
			return nil, invalid(op, "accounts: %q is not an account name", clip(a))
		}
	}
	return []Event{Registered{ID: c.ID, Wallet: c.Wallet, Owner: c.Owner, URL: c.URL, Kinds: ks, Accounts: accounts,
		Secret: c.Secret, At: c.At.UTC()}}, nil
}

func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrValidation, fmt.Sprintf(format, args...))
}

// clip shortens s for error messages.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
