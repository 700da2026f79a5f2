package users

import (
	"context"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
)

// Disable disables username and ends every credential it holds, at once
// and for good (identity.Disable): its tokens, refresh families and API
// keys stop working, and stay dead when it is enabled again. Disabling a
// disabled user changes nothing.
func (s *Service) Disable(ctx context.Context, meta eventstore.Metadata, username string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.Disable(u, s.now())
	})
}

// Enable enables a disabled user: it may log in again (with its password;
// the credentials it held before it was disabled stay revoked). Enabling an
// enabled user changes nothing.
func (s *Service) Enable(ctx context.Context, meta eventstore.Metadata, username string) error {
	return s.update(ctx, meta, username, identity.Enable)
}

// SetRoles replaces username's roles.
func (s *Service) SetRoles(ctx context.Context, meta eventstore.Metadata, username string, roles []string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.SetRoles(u, roles)
	})
}

// Grant sets username's grant on wallet to perms (replacing an earlier
// grant on that wallet). The effective permission is the wallet's own
// permissions ∩ the grant.
func (s *Service) Grant(ctx context.Context, meta eventstore.Metadata, username, wallet string, perms []string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.Grant(u, wallet, perms)
	})
}

// Revoke takes away username's grant on wallet (no grant: nothing happens).
func (s *Service) Revoke(ctx context.Context, meta eventstore.Metadata, username, wallet string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.Revoke(u, wallet)
	})
}

// RevokeSessions ends every session of username now: tokens issued before
// now stop working (identity.User.TokenValid) and every refresh family is
// revoked. API keys stay (revoke them with RevokeAPIKey).
func (s *Service) RevokeSessions(ctx context.Context, meta eventstore.Metadata, username string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.RevokeSessions(u, s.now())
	})
}
