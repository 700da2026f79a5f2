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
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/internal/compact"
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
// The owner is found through the APIKeyIndex (Options.APIKeys); a hash not
// in it waits for the index to handle the log so far
// (Options.APIKeysCaughtUp) and is looked up again, so a key issued a
// moment ago, here or on another instance, is found. The owner's state then decides,
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
	sum := sha256.Sum256([]byte(secret))
	hash := hex.EncodeToString(sum[:])
	owner, ok := s.keys.lookup(sum)
	if !ok && s.keysCaughtUp != nil {
		// Issued a moment ago, here or on another instance? Wait for the
		// index to handle the log so far and look again.
		if err := s.keysCaughtUp(ctx); err != nil {
			return Access{}, identity.APIKey{}, fmt.Errorf("authenticate api key: %w", err)
		}
		owner, ok = s.keys.lookup(sum)
	}
	if !ok {
		return Access{}, identity.APIKey{}, ErrBadCredentials
	}
	var a Access
	var eff identity.APIKey
	err := s.dir.current(ctx, owner, func(u *identity.User) error {
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

// APIKeyIndex maps API key secret hashes to their owners, for
// AuthenticateAPIKey. It is a follower of the log (projections.Follower,
// named "api_key_index"): the runner hands it the users' APIKeyIssued
// events and keeps a snapshot of it in the read-model database. Entries
// are never removed (a revoked key's owner stream says so); it grows with
// keys issued.
//
// Its state holds secret hashes: no error or log line of it names one, and
// its snapshot is sealed with the keyring, as the log's own hashes are (a
// reader of the read-model database learns nothing of them).
type APIKeyIndex struct {
	codec   *eventstore.Codec[identity.Event]
	keyring *seal.Keyring
	mu      sync.RWMutex
	owner   map[[sha256.Size]byte]string
}

// NewAPIKeyIndex returns an empty index that opens the events' sealed
// fields with keyring: the users service's (Options.Keyring).
func NewAPIKeyIndex(keyring *seal.Keyring) *APIKeyIndex {
	return &APIKeyIndex{codec: newCodec(keyring), keyring: keyring, owner: map[[sha256.Size]byte]string{}}
}

// APIKeyIndexName is the index's follower name.
const APIKeyIndexName = "api_key_index"

// Name implements projections.Follower.
func (x *APIKeyIndex) Name() string { return APIKeyIndexName }

// Version implements projections.Follower: bump it when what the index
// keeps or its snapshot encoding changes.
func (x *APIKeyIndex) Version() int { return 2 }

// apiKeyIndexAAD binds a sealed index snapshot to what it is.
var apiKeyIndexAAD = []byte("coinledger/api_key_index\x00v2")

// Wants reports whether e issues an API key.
func (x *APIKeyIndex) Wants(e eventstore.Event) bool {
	return e.Type == identity.TypeAPIKeyIssued && strings.HasPrefix(e.Stream, identity.StreamPrefix)
}

// Handle records the owner of the key e issues. A hash that is not the
// hex SHA-256 form HashAPIKey gives could never be presented: it is left
// out.
func (x *APIKeyIndex) Handle(_ context.Context, e eventstore.Event) error {
	if !x.Wants(e) {
		return nil
	}
	d, err := x.codec.Decode(e)
	if err != nil {
		return fmt.Errorf("api key index: %w", err)
	}
	issued, ok := d.(identity.APIKeyIssued)
	if !ok {
		return fmt.Errorf("api key index: %s decodes to %T", e, d)
	}
	var hash [sha256.Size]byte
	if n, err := hex.Decode(hash[:], []byte(issued.Hash)); err != nil || n != len(hash) {
		return nil
	}
	x.mu.Lock()
	x.owner[hash] = strings.TrimPrefix(e.Stream, identity.StreamPrefix)
	x.mu.Unlock()
	return nil
}

// Snapshot encodes the index (the owners' names, then each hash, 32
// bytes, with its owner's number among them) sealed with the keyring.
func (x *APIKeyIndex) Snapshot() ([]byte, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var names compact.Names
	for _, name := range x.owner {
		names.Add(name)
	}
	var w compact.Writer
	w.Names(&names)
	w.Uint(uint64(len(x.owner)))
	for hash, name := range x.owner {
		w.Raw(hash[:])
		w.Uint(names.Add(name))
	}
	box, err := x.keyring.Seal(w.Bytes(), apiKeyIndexAAD)
	if err != nil {
		return nil, fmt.Errorf("api key index: snapshot: %w", err)
	}
	return []byte(box), nil
}

// Restore replaces the index with a snapshot's (empty for nil). A corrupt
// snapshot is an error and leaves the index as it was.
func (x *APIKeyIndex) Restore(data []byte) error {
	owner := map[[sha256.Size]byte]string{}
	if len(data) > 0 {
		plain, err := x.keyring.Open(string(data), apiKeyIndexAAD)
		if err != nil {
			return fmt.Errorf("api key index: restore: %w", err)
		}
		r := compact.NewReader(plain)
		names := r.Names()
		for range r.Len() {
			var hash [sha256.Size]byte
			copy(hash[:], r.Raw(sha256.Size))
			owner[hash] = r.Name(names)
		}
		if err := r.Done(); err != nil {
			return fmt.Errorf("api key index: restore: %w", err)
		}
	}
	x.mu.Lock()
	x.owner = owner
	x.mu.Unlock()
	return nil
}

// lookup returns the owner of the key whose secret hashes to hash.
func (x *APIKeyIndex) lookup(hash [sha256.Size]byte) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	name, ok := x.owner[hash]
	return name, ok
}
