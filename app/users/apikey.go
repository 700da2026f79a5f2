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
	"sync"

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
	s.keys.add(k.Hash, username)
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
// The owner is found through an in-memory index of secret hash → user,
// caught up from the store's global log when a hash is not in it (so keys
// issued by other instances are found); the owner's state then decides,
// through the same cache of user states as token checks (one catch-up read
// of the owner's stream, not a full load per request).
func (s *Service) AuthenticateAPIKey(ctx context.Context, secret string) (string, identity.APIKey, error) {
	a, k, err := s.keyAccess(ctx, secret)
	return a.Username, k, err
}

func (s *Service) keyAccess(ctx context.Context, secret string) (Access, identity.APIKey, error) {
	rest, ok := strings.CutPrefix(secret, APIKeyPrefix)
	if raw, err := base64.RawURLEncoding.DecodeString(rest); !ok || err != nil || len(raw) != apiKeyBytes {
		return Access{}, identity.APIKey{}, ErrBadCredentials
	}
	hash := HashAPIKey(secret)
	owner, err := s.keys.lookup(ctx, s, hash)
	if err != nil {
		return Access{}, identity.APIKey{}, err
	}
	if owner == "" {
		return Access{}, identity.APIKey{}, ErrBadCredentials
	}
	var a Access
	var eff identity.APIKey
	err = s.dir.current(ctx, owner, func(u *identity.User) error {
		k, ok := u.ActiveAPIKeyByHash(hash)
		if !ok {
			return ErrBadCredentials
		}
		eff, _ = u.EffectiveAPIKey(k.ID)
		a = Access{Username: u.Username, Roles: slices.Clone(eff.Roles), APIKey: eff.ID}
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

// keyIndex maps API key secret hashes to their owners. Entries are never
// removed (a revoked key's stream says so); it grows with keys issued.
type keyIndex struct {
	mu    sync.Mutex
	owner map[string]string
	after uint64 // global position read so far
}

func (x *keyIndex) add(hash, username string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.owner[hash] = username
}

const keyIndexPage = 1024

// lookup returns the owner of hash ("" if none), reading the log from
// where it left off when hash is not known yet.
func (x *keyIndex) lookup(ctx context.Context, s *Service, hash string) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if u, ok := x.owner[hash]; ok {
		return u, nil
	}
	for {
		events, err := s.store.ReadAll(ctx, x.after, keyIndexPage)
		if err != nil {
			return "", fmt.Errorf("api key index after %d: %w", x.after, err)
		}
		for _, e := range events {
			x.after = e.Position
			name, ok := strings.CutPrefix(e.Stream, identity.StreamPrefix)
			if !ok || e.Type != identity.TypeAPIKeyIssued {
				continue
			}
			de, err := s.codec.Decode(e)
			if err != nil {
				return "", fmt.Errorf("api key index: %w", err)
			}
			x.owner[de.(identity.APIKeyIssued).Hash] = name
		}
		if len(events) < keyIndexPage {
			break
		}
	}
	return x.owner[hash], nil
}
