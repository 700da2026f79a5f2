package users

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
)

// APIKeyPrefix starts every API key secret: "clk_" + base64url (no
// padding) of 32 random bytes.
const APIKeyPrefix = "clk_"

const apiKeyBytes = 32

// HashAPIKey returns the SHA-256, in lower-case hex, of an API key secret:
// the only form in which the secret is stored.
func HashAPIKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// IssueAPIKey issues username an API key named name with roles and
// wallets, which must be a subset of the user's own (identity.ErrExceedsOwner;
// an admin may name any wallet). It returns the key and its secret; the
// secret is shown once and only its SHA-256 is stored.
func (s *Service) IssueAPIKey(ctx context.Context, meta eventstore.Metadata, username, name string, roles []string,
	wallets []identity.WalletGrant) (key identity.APIKey, secret string, err error) {
	var raw [apiKeyBytes]byte
	var id [12]byte
	if _, err := io.ReadFull(s.random, raw[:]); err != nil {
		return identity.APIKey{}, "", fmt.Errorf("issue api key: %w", err)
	}
	if _, err := io.ReadFull(s.random, id[:]); err != nil {
		return identity.APIKey{}, "", fmt.Errorf("issue api key: %w", err)
	}
	secret = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k := identity.APIKey{ID: hex.EncodeToString(id[:]), Name: name, Hash: HashAPIKey(secret), Roles: roles,
		Wallets: wallets, IssuedAt: s.now()}
	var issued identity.APIKeyIssued
	err = s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		events, err := identity.IssueAPIKey(u, k)
		if err == nil {
			issued = events[0].(identity.APIKeyIssued)
		}
		return events, err
	})
	if err != nil {
		return identity.APIKey{}, "", err
	}
	return identity.APIKey{ID: issued.ID, Name: issued.Name, Hash: issued.Hash, Roles: issued.Roles,
		Wallets: issued.Wallets, IssuedAt: issued.At}, secret, nil
}

// RevokeAPIKey revokes username's API key id (identity.ErrAPIKeyNotFound
// when it has no such active key).
func (s *Service) RevokeAPIKey(ctx context.Context, meta eventstore.Metadata, username, id string) error {
	return s.update(ctx, meta, username, func(u *identity.User) ([]identity.Event, error) {
		return identity.RevokeAPIKey(u, id)
	})
}

// AuthenticateAPIKey returns the owner of an API key secret and the key as
// it works now (identity.User.EffectiveAPIKey: narrowed to the owner's
// current roles and grants). A malformed, unknown or revoked secret, or a
// disabled owner, is ErrBadCredentials.
//
// The owner and their state are looked up in memory, in the Directory
// (Options.Directory) once it has handled the log so far, so a key issued
// or revoked a moment ago, here or on another instance, counts.
func (s *Service) AuthenticateAPIKey(ctx context.Context, secret string) (string, identity.APIKey, error) {
	a, k, err := s.keyAccess(ctx, secret)
	return a.Username, k, err
}

func (s *Service) keyAccess(ctx context.Context, secret string) (Access, identity.APIKey, error) {
	rest, ok := strings.CutPrefix(secret, APIKeyPrefix)
	if raw, err := base64.RawURLEncoding.DecodeString(rest); !ok || err != nil || len(raw) != apiKeyBytes {
		return Access{}, identity.APIKey{}, ErrBadCredentials
	}
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	if s.dirAt == nil { // nothing feeds the directory: no key is known
		return Access{}, identity.APIKey{}, ErrBadCredentials
	}
	at, err := s.directoryTarget(ctx)
	if err == nil {
		err = s.dirAt(ctx, at)
	}
	if err != nil {
		// Only the directory knows a key's owner.
		return Access{}, identity.APIKey{}, fmt.Errorf("authenticate api key: %w", err)
	}
	var a Access
	var eff identity.APIKey
	err = s.dir.byKey(sum, func(u *identity.User) error {
		k, ok := u.ActiveAPIKeyByHash(hash)
		if !ok {
			return ErrBadCredentials
		}
		eff, _ = u.EffectiveAPIKey(k.ID)
		a = Access{Username: u.Username, Roles: slices.Clone(eff.Roles), APIKey: eff.ID, APIs: u.APISets()}
		if slices.Contains(eff.Roles, identity.RoleAdmin) {
			a.Grants = u.Grants()
			return nil
		}
		a.Grants = make(map[string][]string, len(eff.Wallets))
		for _, w := range eff.Wallets {
			a.Grants[w.Wallet] = slices.Clone(w.Permissions)
		}
		return nil
	})
	return a, eff, err
}
