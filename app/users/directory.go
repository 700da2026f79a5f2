package users

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
)

// Access is what an authenticated caller may do, decided from the user's
// stream as it stands now.
type Access struct {
	Username string
	Roles    []string
	// Grants maps wallets to the permissions granted on them. An admin's
	// grants are not consulted: an admin holds whatever a wallet allows.
	Grants map[string][]string
	// APIKey is the id of the key the caller authenticated with, if any.
	APIKey string
	// Family is the refresh family of the caller's token, if any.
	Family string
}

// Admin reports whether the caller holds the admin role.
func (a Access) Admin() bool { return slices.Contains(a.Roles, identity.RoleAdmin) }

// HasRole reports whether the caller holds role.
func (a Access) HasRole(role string) bool { return slices.Contains(a.Roles, role) }

// directory caches users' states between requests. Every check catches the
// cached state up with the user's stream first (one indexed read that
// usually finds nothing), so a revocation, a disabled user or a changed
// grant takes effect at once on every instance, without a subscription.
type directory struct {
	repo *eventstore.Repository[*identity.User, identity.Event]
	mu   sync.Mutex
	m    map[string]*cached
}

type cached struct {
	mu sync.Mutex
	l  eventstore.Loaded[*identity.User]
}

const maxCachedUsers = 10_000

// current runs fn on username's state, caught up with its stream. fn must
// not keep the state.
func (d *directory) current(ctx context.Context, username string, fn func(*identity.User) error) error {
	if !identity.ValidUsername(username) {
		return ErrBadCredentials
	}
	d.mu.Lock()
	c, ok := d.m[username]
	if !ok {
		if len(d.m) >= maxCachedUsers {
			for k := range d.m { // evict an arbitrary one
				delete(d.m, k)
				break
			}
		}
		c = &cached{l: eventstore.Loaded[*identity.User]{State: identity.New()}}
		d.m[username] = c
	}
	d.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	var l eventstore.Loaded[*identity.User]
	var err error
	if c.l.Next == 0 {
		l, err = d.repo.Load(ctx, identity.Stream(username)) // from the latest snapshot, if any
	} else {
		l, err = d.repo.CatchUp(ctx, identity.Stream(username), c.l)
	}
	if err != nil {
		// The state may hold part of the events read: start over next time.
		c.l = eventstore.Loaded[*identity.User]{State: identity.New()}
		return fmt.Errorf("user %s: %w", username, err)
	}
	c.l = l
	return fn(l.State)
}

// TokenAccess checks a token of username issued at issuedAt in refresh
// family (empty for none) against the user's current state: registered,
// enabled, not issued before a session revocation, family not revoked.
// Any failure is ErrBadCredentials.
func (s *Service) TokenAccess(ctx context.Context, username string, issuedAt time.Time, family string) (Access, error) {
	var a Access
	err := s.dir.current(ctx, username, func(u *identity.User) error {
		if !u.TokenValid(issuedAt) {
			return ErrBadCredentials
		}
		if family != "" {
			if f, ok := u.Family(family); !ok || f.RevokedReason != "" {
				return ErrBadCredentials
			}
		}
		a = Access{Username: u.Username, Roles: slices.Clone(u.Roles), Grants: u.Grants(), Family: family}
		return nil
	})
	return a, err
}

// KeyAccess authenticates an API key secret: its owner must be enabled, the
// key active, and what it may do is narrowed to the owner's current roles
// and grants.
func (s *Service) KeyAccess(ctx context.Context, secret string) (Access, error) {
	a, _, err := s.keyAccess(ctx, secret)
	return a, err
}
