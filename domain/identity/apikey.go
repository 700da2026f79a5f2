package identity

import (
	"crypto/subtle"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxAPIKeys is how many active API keys one user may hold.
const MaxAPIKeys = 64

// APIKeyIssued: the user issued an API key. Only the SHA-256 (lower-case
// hex) of the secret is recorded; the secret itself is shown once by the
// caller and never stored.
type APIKeyIssued struct {
	ID      string        `json:"id"`
	Name    string        `json:"name"`
	Hash    string        `json:"hash"`
	Roles   []string      `json:"roles"`
	Wallets []WalletGrant `json:"wallets"`
	At      time.Time     `json:"at"`
}

// APIKeyRevoked: the API key stops working.
type APIKeyRevoked struct {
	ID string `json:"id"`
}

func (APIKeyIssued) EventType() string  { return TypeAPIKeyIssued }
func (APIKeyRevoked) EventType() string { return TypeAPIKeyRevoked }

// APIKey is an active API key of a user, and the command to issue one.
type APIKey struct {
	ID       string        // 1-64 of [A-Za-z0-9._-], chosen by the caller
	Name     string        // 1-100 bytes of printable UTF-8
	Hash     string        // SHA-256 of the secret, 64 lower-case hex digits
	Roles    []string      // sorted; each held by the owner at issue time
	Wallets  []WalletGrant // sorted by wallet; each within the owner's grants at issue time (unless admin)
	IssuedAt time.Time
}

// APIKey returns the active API key id.
func (u *User) APIKey(id string) (APIKey, bool) {
	i := slices.IndexFunc(u.keys, func(k APIKey) bool { return k.ID == id })
	if i < 0 {
		return APIKey{}, false
	}
	return cloneKey(u.keys[i]), true
}

// APIKeys returns the active API keys in issue order.
func (u *User) APIKeys() []APIKey {
	out := make([]APIKey, len(u.keys))
	for i, k := range u.keys {
		out[i] = cloneKey(k)
	}
	return out
}

// ActiveAPIKeyByHash returns the active key whose secret hashes to hash,
// if the user is registered and enabled. Hashes are compared in constant
// time.
func (u *User) ActiveAPIKeyByHash(hash string) (APIKey, bool) {
	if !u.Registered || u.disabled {
		return APIKey{}, false
	}
	for _, k := range u.keys {
		if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(hash)) == 1 {
			return cloneKey(k), true
		}
	}
	return APIKey{}, false
}

// EffectiveAPIKey returns key id as it works now: its roles narrowed to the
// roles its owner still holds and, unless the owner is an admin, its wallet
// permissions narrowed to the owner's current grants (wallets left with no
// permission are dropped). Taking a role or grant from a user thus takes it
// from the user's keys too.
func (u *User) EffectiveAPIKey(id string) (APIKey, bool) {
	k, ok := u.APIKey(id)
	if !ok {
		return k, false
	}
	k.Roles = slices.DeleteFunc(k.Roles, func(r string) bool { return !u.HasRole(r) })
	if u.HasRole(RoleAdmin) {
		return k, true
	}
	var wallets []WalletGrant
	for _, w := range k.Wallets {
		grant := u.grants[w.Wallet]
		perms := slices.DeleteFunc(w.Permissions, func(p string) bool { return !slices.Contains(grant, p) })
		if len(perms) > 0 {
			wallets = append(wallets, WalletGrant{Wallet: w.Wallet, Permissions: perms})
		}
	}
	k.Wallets = wallets
	return k, true
}

var (
	idRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// IssueAPIKey decides issuing k to u. Rules: u is registered and enabled;
// k is well formed and its id and hash are not those of an active key
// (ErrAPIKeyExists); u holds fewer than MaxAPIKeys keys; and k is a subset
// of u (ErrExceedsOwner): every role of k is one of u's roles, and every
// wallet permission of k is within u's grant on that wallet — unless u is
// an admin, whose keys may name any wallet permission (the wallet's own
// permissions still cap them). Roles and wallets are recorded sorted, with
// permissions in canonical order.
func IssueAPIKey(u *User, k APIKey) ([]Event, error) {
	op := "issue api key " + clip(k.ID) + " to " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if u.disabled {
		return nil, fail(op, ErrUserDisabled)
	}
	switch {
	case !idRE.MatchString(k.ID):
		return nil, invalid(op, "id must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit")
	case !validKeyName(k.Name):
		return nil, invalid(op, "name must be 1-100 bytes of printable UTF-8")
	case !hashRE.MatchString(k.Hash):
		return nil, invalid(op, "hash must be 64 lower-case hex digits (SHA-256)")
	case k.IssuedAt.IsZero():
		return nil, invalid(op, "no issue time")
	case len(u.keys) >= MaxAPIKeys:
		return nil, invalid(op, "the user already holds %d api keys", MaxAPIKeys)
	}
	for _, r := range k.Roles {
		if !ValidRole(r) {
			return nil, invalid(op, "unknown role %q", clip(r))
		}
	}
	roles := normalizeRoles(k.Roles)
	wallets := make([]WalletGrant, 0, len(k.Wallets))
	for _, w := range k.Wallets {
		if !ValidWallet(w.Wallet) {
			return nil, invalid(op, "wallet name %q must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit", clip(w.Wallet))
		}
		if slices.ContainsFunc(wallets, func(o WalletGrant) bool { return o.Wallet == w.Wallet }) {
			return nil, invalid(op, "wallet %s named twice", w.Wallet)
		}
		perms, err := normalizePermissions(op+" on "+w.Wallet, w.Permissions)
		if err != nil {
			return nil, err
		}
		wallets = append(wallets, WalletGrant{Wallet: w.Wallet, Permissions: perms})
	}
	slices.SortFunc(wallets, func(a, b WalletGrant) int { return strings.Compare(a.Wallet, b.Wallet) })
	for _, o := range u.keys {
		if o.ID == k.ID || o.Hash == k.Hash {
			return nil, fail(op, ErrAPIKeyExists)
		}
	}
	for _, r := range roles {
		if !u.HasRole(r) {
			return nil, failf(op, ErrExceedsOwner, "role %s", r)
		}
	}
	if !u.HasRole(RoleAdmin) {
		for _, w := range wallets {
			grant, ok := u.grants[w.Wallet]
			if !ok {
				return nil, failf(op, ErrExceedsOwner, "no grant on wallet %s", w.Wallet)
			}
			for _, p := range w.Permissions {
				if !slices.Contains(grant, p) {
					return nil, failf(op, ErrExceedsOwner, "%s on wallet %s", p, w.Wallet)
				}
			}
		}
	}
	return []Event{APIKeyIssued{ID: k.ID, Name: k.Name, Hash: k.Hash, Roles: roles, Wallets: wallets, At: k.IssuedAt}}, nil
}

// RevokeAPIKey decides revoking u's active key id (ErrAPIKeyNotFound when
// there is none: revoked keys are forgotten). A disabled user's keys can
// be revoked.
func RevokeAPIKey(u *User, id string) ([]Event, error) {
	op := "revoke api key " + clip(id) + " of " + u.Username
	if err := registered(u, op); err != nil {
		return nil, err
	}
	if _, ok := u.APIKey(id); !ok {
		return nil, fail(op, ErrAPIKeyNotFound)
	}
	return []Event{APIKeyRevoked{ID: id}}, nil
}

func validKeyName(s string) bool {
	if s == "" || len(s) > 100 || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func cloneKey(k APIKey) APIKey {
	k.Roles = slices.Clone(k.Roles)
	k.Wallets = cloneGrants(k.Wallets)
	return k
}
