// Package identity is the user aggregate (stream user-<name>): who may log
// in, with which password hash and roles, on which wallets with which
// permissions, with which API keys and refresh-token families.
//
// Pure: no clock (callers pass now), no I/O, no randomness. Hashing happens
// outside and arrives as opaque strings; ids (API keys, refresh families and
// tokens) are chosen by the caller.
//
// Deciders take the state and a command's arguments and return the events
// to append or an error; a command that changes nothing (disabling a
// disabled user) decides no events and a nil error. The one exception is
// Rotate, which returns a Decision: a refused rotation can still have events
// that must be appended (see Decision).
package identity

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"time"
)

// Roles.
const (
	RoleAdmin       = "admin"
	RoleAuditor     = "auditor"
	RolePriceFeeder = "price_feeder"
)

// Event type names.
const (
	TypeUserRegistered       = "identity.user_registered"
	TypePasswordChanged      = "identity.password_changed"
	TypeUserDisabled         = "identity.user_disabled"
	TypeUserEnabled          = "identity.user_enabled"
	TypeRolesChanged         = "identity.roles_changed"
	TypeWalletGranted        = "identity.wallet_granted"
	TypeWalletRevoked        = "identity.wallet_revoked"
	TypeSessionsRevoked      = "identity.sessions_revoked"
	TypeAPIKeyIssued         = "identity.api_key_issued"
	TypeAPIKeyRevoked        = "identity.api_key_revoked"
	TypeRefreshIssued        = "identity.refresh_issued"
	TypeRefreshRotated       = "identity.refresh_rotated"
	TypeRefreshFamilyRevoked = "identity.refresh_family_revoked"
)

// Errors. Deciders wrap them with the operation and ids; check with errors.Is.
var (
	ErrUserExists   = errors.New("user exists")
	ErrUserNotFound = errors.New("user not found")
	ErrValidation   = errors.New("validation failed")
	// ErrUserDisabled: the user is disabled and may not start sessions,
	// rotate refresh tokens or issue API keys.
	ErrUserDisabled = errors.New("user disabled")
	// ErrExceedsOwner: an API key would hold a role or a wallet permission
	// that its owner does not hold.
	ErrExceedsOwner = errors.New("api key exceeds its owner's access")
	// ErrAPIKeyExists: an active API key has the same id or secret hash.
	ErrAPIKeyExists = errors.New("api key exists")
	// ErrAPIKeyNotFound: no active API key has the id.
	ErrAPIKeyNotFound = errors.New("api key not found")
	// ErrRefreshInvalid: the refresh token's family is unknown, revoked or
	// expired, or the token is not one the family issued.
	ErrRefreshInvalid = errors.New("invalid refresh token")
	// ErrRefreshReused: an already rotated refresh token was presented
	// again; its family is revoked. An error wrapping ErrRefreshReused also
	// wraps ErrRefreshInvalid, so callers that only map "invalid" to 401
	// cover it.
	ErrRefreshReused = errors.New("refresh token reused")
)

// Event is a user event.
type Event interface{ EventType() string }

// UserRegistered: a user came to be.
type UserRegistered struct {
	Username     string   `json:"username"`
	Email        string   `json:"email,omitempty"`
	PasswordHash string   `json:"password_hash"`
	Roles        []string `json:"roles"`
}

// PasswordChanged: the user's password hash changed.
type PasswordChanged struct {
	PasswordHash string `json:"password_hash"`
}

func (UserRegistered) EventType() string  { return TypeUserRegistered }
func (PasswordChanged) EventType() string { return TypePasswordChanged }

// Events returns one value of each event type, for codecs.
func Events() []Event {
	return []Event{
		UserRegistered{}, PasswordChanged{},
		UserDisabled{}, UserEnabled{}, RolesChanged{},
		WalletGranted{}, WalletRevoked{}, SessionsRevoked{},
		APIKeyIssued{}, APIKeyRevoked{},
		RefreshIssued{}, RefreshRotated{}, RefreshFamilyRevoked{},
		WildcardDesignated{}, APISetsGranted{},
	}
}

// User is the state of a user stream. The exported fields are the
// registration data; the rest is read through methods.
type User struct {
	Registered   bool
	Username     string
	Email        string
	PasswordHash string
	Roles        []string

	disabled          bool
	wildcard          bool                // WildcardDesignated
	apiSets           []string            // APISetsGranted; nil: not limited
	grants            map[string][]string // wallet → permissions, canonical order
	sessionsRevokedAt time.Time
	keys              []APIKey  // active keys in issue order, at most MaxAPIKeys
	families          []*Family // refresh families in start order, at most MaxFamilies
	clock             time.Time // the latest time carried by an event so far
}

// HasRole reports whether the user holds role.
func (u *User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// New returns the state of a user stream with no events.
func New() *User { return &User{} }

// Evolve applies e to u and returns it. It changes u in place.
//
// Bounded state: events that carry a time (SessionsRevoked, APIKeyIssued,
// RefreshIssued, RefreshRotated) advance the user's event clock; refresh
// families whose expiry is not after that clock are dropped, and at most
// MaxFamilies families are kept (see RefreshIssued). Revoked API keys are
// dropped at once.
func Evolve(u *User, e Event) *User {
	switch e := e.(type) {
	case UserRegistered:
		u.Registered, u.Username, u.Email, u.PasswordHash, u.Roles = true, e.Username, e.Email, e.PasswordHash, e.Roles
	case PasswordChanged:
		u.PasswordHash = e.PasswordHash
	case UserDisabled:
		u.disabled = true
	case UserEnabled:
		u.disabled = false
	case RolesChanged:
		u.Roles = slices.Clone(e.Roles)
	case WalletGranted:
		if u.grants == nil {
			u.grants = map[string][]string{}
		}
		u.grants[e.Wallet] = slices.Clone(e.Permissions)
	case WalletRevoked:
		delete(u.grants, e.Wallet)
	case SessionsRevoked:
		if e.At.After(u.sessionsRevokedAt) {
			u.sessionsRevokedAt = e.At
		}
		for _, f := range u.families {
			if f.RevokedReason == "" {
				f.RevokedReason = RevokedBySessions
			}
		}
		u.tick(e.At)
	case APIKeyIssued:
		u.keys = append(u.keys, APIKey{ID: e.ID, Name: e.Name, Hash: e.Hash, Roles: slices.Clone(e.Roles),
			Wallets: cloneGrants(e.Wallets), IssuedAt: e.At})
		u.tick(e.At)
	case APIKeyRevoked:
		u.keys = slices.DeleteFunc(u.keys, func(k APIKey) bool { return k.ID == e.ID })
	case RefreshIssued:
		u.families = append(u.families, &Family{ID: e.Family, Current: e.TokenID, StartedAt: e.At,
			RotatedAt: e.At, ExpiresAt: e.ExpiresAt})
		u.tick(e.At)
		u.capFamilies()
	case RefreshRotated:
		if f := u.family(e.Family); f != nil {
			f.Spent = append(f.Spent, e.OldTokenID)
			if n := len(f.Spent) - MaxSpentTokens; n > 0 {
				f.Spent = slices.Delete(f.Spent, 0, n)
			}
			f.Current, f.RotatedAt, f.ExpiresAt = e.NewTokenID, e.At, e.ExpiresAt
			f.Rotations++
		}
		u.tick(e.At)
	case RefreshFamilyRevoked:
		if f := u.family(e.Family); f != nil && f.RevokedReason == "" {
			f.RevokedReason = e.Reason
		}
	case WildcardDesignated:
		u.wildcard = true
	case APISetsGranted:
		u.apiSets = append([]string{}, e.APIs...)
	}
	return u
}

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidUsername reports whether name is a valid user name.
func ValidUsername(name string) bool { return usernameRE.MatchString(name) }

// MaxEmail bounds e-mail addresses, in bytes (RFC 5321's path limit).
const MaxEmail = 254

// ValidEmail reports whether s is a bare e-mail address, local@domain, as
// net/mail parses it: no display name, no angle brackets, no comments, no
// quoted local part, nothing before or after, at most MaxEmail bytes.
func ValidEmail(s string) bool {
	if s == "" || len(s) > MaxEmail {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s
}

// ValidRole reports whether role is one of the roles.
func ValidRole(role string) bool {
	return role == RoleAdmin || role == RoleAuditor || role == RolePriceFeeder
}

// Register decides the registration of a user. The e-mail address is
// optional (imported Graphene users have none); one that is given must be
// a bare address (ValidEmail).
func Register(u *User, username, email, hash string, roles []string) ([]Event, error) {
	if u.Registered {
		return nil, fmt.Errorf("register %s: %w", username, ErrUserExists)
	}
	if !ValidUsername(username) {
		return nil, fmt.Errorf("register %q: %w: username must be 1-64 of a-z 0-9 . _ - and start with a letter or digit", username, ErrValidation)
	}
	if hash == "" {
		return nil, fmt.Errorf("register %s: %w: empty password hash", username, ErrValidation)
	}
	if email != "" && !ValidEmail(email) {
		return nil, fmt.Errorf("register %s: %w: email %q is not a bare address like name@example.com", username, ErrValidation, clip(email))
	}
	for _, r := range roles {
		if !ValidRole(r) {
			return nil, fmt.Errorf("register %s: %w: unknown role %q", username, ErrValidation, r)
		}
	}
	return []Event{UserRegistered{Username: username, Email: email, PasswordHash: hash, Roles: slices.Clone(roles)}}, nil
}

// ChangePassword decides a password change.
func ChangePassword(u *User, hash string) ([]Event, error) {
	if !u.Registered {
		return nil, ErrUserNotFound
	}
	if hash == "" {
		return nil, fmt.Errorf("change password of %s: %w: empty password hash", u.Username, ErrValidation)
	}
	return []Event{PasswordChanged{PasswordHash: hash}}, nil
}

// registered returns ErrUserNotFound, wrapped with op, for a user that is
// not registered.
func registered(u *User, op string) error {
	if !u.Registered {
		return fmt.Errorf("%s: %w", op, ErrUserNotFound)
	}
	return nil
}

// invalid returns op: ErrValidation: detail.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, ErrValidation, fmt.Sprintf(format, args...))
}

// fail returns op: err.
func fail(op string, err error) error { return fmt.Errorf("%s: %w", op, err) }

// failf returns op: err: detail.
func failf(op string, err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w: %s", op, err, fmt.Sprintf(format, args...))
}

// clip shortens untrusted input quoted in error messages.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// tick advances the event clock to t and drops the refresh families that
// have expired by then.
func (u *User) tick(t time.Time) {
	if !t.After(u.clock) {
		return
	}
	u.clock = t
	u.families = slices.DeleteFunc(u.families, func(f *Family) bool { return !f.ExpiresAt.After(t) })
}
