package users

import (
	"context"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
)

// StartSession records that a login started refresh family family with
// the refresh token tokenID (the token's jti), valid until expiresAt. The
// user must be registered and enabled (identity.ErrUserDisabled).
func (s *Service) StartSession(ctx context.Context, meta eventstore.Metadata, username, family, tokenID string, expiresAt time.Time) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.StartSession(u, family, tokenID, s.now(), expiresAt)
	})
}

// Rotate spends refresh token presented of family and records newTokenID,
// valid until expiresAt, as the family's current token. It returns nil on
// success; an error wrapping identity.ErrRefreshInvalid when the family is
// unknown, revoked or expired or the token is not one of it; and, when
// presented was already spent, an error wrapping identity.ErrRefreshReused
// (and ErrRefreshInvalid) after the family's revocation has been appended:
// the thief and the owner both have to log in again.
func (s *Service) Rotate(ctx context.Context, meta eventstore.Metadata, username, family, presented, newTokenID string, expiresAt time.Time) error {
	var outcome error
	err := s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		d := identity.Rotate(u, family, presented, newTokenID, s.now(), expiresAt)
		outcome = d.Err // decide may run again on a conflict: the last run counts
		if len(d.Events) == 0 {
			return nil, d.Err
		}
		return d.Events, nil // appended even when d.Err reports a refusal
	})
	if err != nil {
		return err
	}
	return outcome
}

// Logout revokes refresh family family of username (reason "logout"). An
// unknown or already revoked family is not an error.
func (s *Service) Logout(ctx context.Context, meta eventstore.Metadata, username, family string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.Logout(u, family)
	})
}
