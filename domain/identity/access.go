package identity

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
)

// UserDisabled: the user may no longer log in, refresh or use API keys.
type UserDisabled struct{}

// UserEnabled: a disabled user may log in again.
type UserEnabled struct{}

// RolesChanged: the user's roles are now Roles.
type RolesChanged struct {
	Roles []string `json:"roles"`
}

// WalletGranted: the user's grant on Wallet is now Permissions (it
// replaces an earlier grant on the same wallet). The effective permission
// is the wallet's own permissions ∩ the grant, computed outside.
type WalletGranted struct {
	Wallet      string   `json:"wallet"`
	Permissions []string `json:"permissions"`
}

// WalletRevoked: the user no longer holds a grant on Wallet.
type WalletRevoked struct {
	Wallet string `json:"wallet"`
}

// SessionsRevoked: every token issued to the user before At stops working,
// and every refresh family started before this event is revoked.
type SessionsRevoked struct {
	At time.Time `json:"at"`
}

func (UserDisabled) EventType() string    { return TypeUserDisabled }
func (UserEnabled) EventType() string     { return TypeUserEnabled }
func (RolesChanged) EventType() string    { return TypeRolesChanged }
func (WalletGranted) EventType() string   { return TypeWalletGranted }
func (WalletRevoked) EventType() string   { return TypeWalletRevoked }
func (SessionsRevoked) EventType() string { return TypeSessionsRevoked }

// WalletGrant is a set of permissions on one wallet.
type WalletGrant struct {
	Wallet      string   `json:"wallet"`
	Permissions []string `json:"permissions"`
}

// Disabled reports whether the user is disabled.
func (u *User) Disabled() bool { return u.disabled }

// Grants returns a copy of the user's per-wallet grants: wallet →
// permissions in the canonical order of ledger.AllPermissions.
func (u *User) Grants() map[string][]string {
	out := make(map[string][]string, len(u.grants))
	for w, p := range u.grants {
		out[w] = slices.Clone(p)
	}
	return out
}

// WalletPermissions returns the user's grant on wallet (nil: none). An
// admin's grants are not consulted by the API: admins hold every permission
// the wallet allows.
func (u *User) WalletPermissions(wallet string) []string { return slices.Clone(u.grants[wallet]) }

// MayUse reports whether u, registered and enabled, holds every one of
// perms on wallet, whose own permissions are allowed: each must be one the
// wallet allows and, unless u is an admin, one u's grant on it holds.
func (u *User) MayUse(wallet string, allowed []ledger.Permission, perms ...ledger.Permission) bool {
	if !u.Registered || u.disabled {
		return false
	}
	for _, p := range perms {
		if !slices.Contains(allowed, p) || (!u.HasRole(RoleAdmin) && !slices.Contains(u.grants[wallet], string(p))) {
			return false
		}
	}
	return true
}

// SessionsRevokedAt returns the time of the latest SessionsRevoked (zero:
// never).
func (u *User) SessionsRevokedAt() time.Time { return u.sessionsRevokedAt }

// TokenValid reports whether a token issued to u at issuedAt still works:
// u is registered and enabled and issuedAt is not before SessionsRevokedAt.
// JWT iat claims have whole seconds, so a token issued in the same second
// as, but after, a revocation is refused too: the safe side.
func (u *User) TokenValid(issuedAt time.Time) bool {
	return u.Registered && !u.disabled && !issuedAt.Before(u.sessionsRevokedAt)
}

// Disable decides disabling u at now. Disabling ends every credential of
// u at once and for good: UserDisabled (no login, refresh or API key works
// while it lasts), SessionsRevoked at now (so no token issued before it
// works again once u is enabled) and APIKeyRevoked for each active key (an
// enabled user issues new keys). Disabling a disabled user decides nothing.
func Disable(u *User, now time.Time) ([]Event, error) {
	op := "disable user " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if u.disabled {
		return nil, nil
	}
	if now.IsZero() {
		return nil, invalid(op, "no time")
	}
	events := []Event{UserDisabled{}, SessionsRevoked{At: now}}
	for _, k := range u.keys {
		events = append(events, APIKeyRevoked{ID: k.ID})
	}
	return events, nil
}

// Enable decides enabling u; enabling an enabled user decides nothing.
func Enable(u *User) ([]Event, error) {
	if err := registered(u, "enable user"); err != nil {
		return nil, err
	}
	if !u.disabled {
		return nil, nil
	}
	return []Event{UserEnabled{}}, nil
}

// SetRoles decides replacing u's roles with roles (sorted, duplicates
// removed). The same set of roles decides nothing; the wildcard user (see
// DesignateWildcard) may hold none. API keys keep their
// roles but only those their owner still holds are effective (see
// EffectiveAPIKey).
func SetRoles(u *User, roles []string) ([]Event, error) {
	op := "set roles of " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	for _, r := range roles {
		if !ValidRole(r) {
			return nil, invalid(op, "unknown role %q", clip(r))
		}
	}
	roles = normalizeRoles(roles)
	if slices.Equal(roles, normalizeRoles(u.Roles)) {
		return nil, nil
	}
	if u.wildcard && len(roles) > 0 {
		return nil, invalid(op, "the wildcard user may hold no role")
	}
	return []Event{RolesChanged{Roles: roles}}, nil
}

// Grant decides setting u's grant on wallet to perms (canonical order,
// duplicates removed). perms must be non-empty wallet permissions (use
// Revoke to take a grant away); the same grant decides nothing.
func Grant(u *User, wallet string, perms []string) ([]Event, error) {
	op := fmt.Sprintf("grant %s on %s", u.Username, clip(wallet))
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if !ValidWallet(wallet) {
		return nil, invalid(op, "wallet name must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit")
	}
	perms, err := normalizePermissions(op, perms)
	if err != nil {
		return nil, err
	}
	if cur, ok := u.grants[wallet]; ok && slices.Equal(cur, perms) {
		return nil, nil
	}
	return []Event{WalletGranted{Wallet: wallet, Permissions: perms}}, nil
}

// Revoke decides taking away u's grant on wallet; revoking a wallet the
// user holds no grant on decides nothing.
func Revoke(u *User, wallet string) ([]Event, error) {
	if err := registered(u, fmt.Sprintf("revoke %s on %s", u.Username, clip(wallet))); err != nil {
		return nil, err
	}
	if _, ok := u.grants[wallet]; !ok {
		return nil, nil
	}
	return []Event{WalletRevoked{Wallet: wallet}}, nil
}

// RevokeSessions decides ending every session of u: tokens issued before
// now stop working (see TokenValid) and every refresh family is revoked.
// API keys are not sessions: they stay until revoked one by one.
func RevokeSessions(u *User, now time.Time) ([]Event, error) {
	op := "revoke sessions of " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if now.IsZero() {
		return nil, invalid(op, "no time")
	}
	return []Event{SessionsRevoked{At: now}}, nil
}

var walletRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidWallet reports whether name follows the wallet name rules: 1-64 of
// [A-Za-z0-9._-], starting with a letter or digit.
func ValidWallet(name string) bool { return walletRE.MatchString(name) }

// ValidPermission reports whether p is a wallet permission.
func ValidPermission(p string) bool {
	return slices.Contains(ledger.AllPermissions(), ledger.Permission(p))
}

// normalizePermissions checks perms and returns them in canonical order
// without duplicates; an empty set is an error.
func normalizePermissions(op string, perms []string) ([]string, error) {
	if len(perms) == 0 {
		return nil, invalid(op, "no permissions")
	}
	for _, p := range perms {
		if !ValidPermission(p) {
			return nil, invalid(op, "unknown permission %q", clip(p))
		}
	}
	var out []string
	for _, p := range ledger.AllPermissions() {
		if slices.Contains(perms, string(p)) {
			out = append(out, string(p))
		}
	}
	return out, nil
}

func normalizeRoles(roles []string) []string {
	out := append([]string{}, roles...)
	slices.Sort(out)
	return slices.Compact(out)
}

func cloneGrants(g []WalletGrant) []WalletGrant {
	out := make([]WalletGrant, len(g))
	for i, w := range g {
		out[i] = WalletGrant{Wallet: w.Wallet, Permissions: slices.Clone(w.Permissions)}
	}
	return out
}
