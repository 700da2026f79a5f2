// Package identity is the user aggregate (stream user-<name>): who may log
// in, with which password hash and roles. Pure: hashing happens outside and
// arrives as an opaque string.
package identity

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// Roles.
const (
	RoleAdmin       = "admin"
	RoleAuditor     = "auditor"
	RolePriceFeeder = "price_feeder"
)

// Event type names.
const (
	TypeUserRegistered  = "identity.user_registered"
	TypePasswordChanged = "identity.password_changed"
)

// Errors.
var (
	ErrUserExists   = errors.New("user exists")
	ErrUserNotFound = errors.New("user not found")
	ErrValidation   = errors.New("validation failed")
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
func Events() []Event { return []Event{UserRegistered{}, PasswordChanged{}} }

// User is the state of a user stream.
type User struct {
	Registered   bool
	Username     string
	Email        string
	PasswordHash string
	Roles        []string
}

// HasRole reports whether the user holds role.
func (u *User) HasRole(role string) bool { return slices.Contains(u.Roles, role) }

// New returns the state of a user stream with no events.
func New() *User { return &User{} }

// Evolve applies e to u and returns it.
func Evolve(u *User, e Event) *User {
	switch e := e.(type) {
	case UserRegistered:
		u.Registered, u.Username, u.Email, u.PasswordHash, u.Roles = true, e.Username, e.Email, e.PasswordHash, e.Roles
	case PasswordChanged:
		u.PasswordHash = e.PasswordHash
	}
	return u
}

var usernameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidUsername reports whether name is a valid user name.
func ValidUsername(name string) bool { return usernameRE.MatchString(name) }

// Register decides the registration of a user.
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
	for _, r := range roles {
		if r != RoleAdmin && r != RoleAuditor && r != RolePriceFeeder {
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
