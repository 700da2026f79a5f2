package users

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/internal/compact"
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
	// APIs are the Graphene API sets the user may call over JSON-RPC
	// (identity.User.APISets); nil: not limited by API set.
	APIs []string
}

// Admin reports whether the caller holds the admin role.
func (a Access) Admin() bool { return slices.Contains(a.Roles, identity.RoleAdmin) }

// HasRole reports whether the caller holds role.
func (a Access) HasRole(role string) bool { return slices.Contains(a.Roles, role) }

// Directory holds every user's state in memory, and the owner of every API
// key by the SHA-256 of its secret: what authenticating a request reads,
// instead of the user's stream. It is a follower of the log
// (projections.Follower, named DirectoryName): the runner hands it the
// events of user streams and keeps a snapshot of it in the read-model
// database. The Service reads it only once it has reached the position of
// the latest user event that may matter (Options.DirectoryAt and
// SharedStore: the service's own latest write on a store of its own, the
// log's head on a shared one), so a revocation, a disabled user, a changed
// grant or a key issued a moment ago, here or on another instance, counts
// on the next request.
//
// Its state holds credential material (password and key hashes): no error
// or log line of it names any, and its snapshot is sealed with the
// keyring, as the log's own credential fields are.
type Directory struct {
	codec   *eventstore.Codec[identity.Event]
	keyring *seal.Keyring
	mu      sync.RWMutex
	users   map[string]*identity.User
	keys    map[[sha256.Size]byte]string // key secret hash → owner; never removed
}

// NewDirectory returns an empty directory that opens the events' sealed
// fields with keyring: the users service's (Options.Keyring).
func NewDirectory(keyring *seal.Keyring) *Directory {
	return &Directory{codec: newCodec(keyring), keyring: keyring, users: map[string]*identity.User{},
		keys: map[[sha256.Size]byte]string{}}
}

// DirectoryName is the directory's follower name.
const DirectoryName = "user_directory"

// Name implements projections.Follower.
func (d *Directory) Name() string { return DirectoryName }

// Version implements projections.Follower: bump it when what the
// directory keeps or its snapshot encoding changes.
func (d *Directory) Version() int { return 2 }

// directoryAAD binds a sealed directory snapshot to what it is.
var directoryAAD = []byte("coinledger/user_directory\x00v1")

// Wants reports whether e is an event of a user stream.
func (d *Directory) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, identity.StreamPrefix) && d.codec.Knows(e.Type)
}

// Handle folds e into its user's state (identity.Evolve) and records the
// owner of a key it issues. A key hash that is not the hex SHA-256 form
// HashAPIKey gives could never be presented: it is left out.
func (d *Directory) Handle(_ context.Context, e eventstore.Event) error {
	if !d.Wants(e) {
		return nil
	}
	ev, err := d.codec.Decode(e)
	if err != nil {
		return fmt.Errorf("user directory: %w", err)
	}
	name := strings.TrimPrefix(e.Stream, identity.StreamPrefix)
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.users[name]
	if u == nil {
		u = identity.New()
		d.users[name] = u
	}
	identity.Evolve(u, ev)
	if issued, ok := ev.(identity.APIKeyIssued); ok {
		var hash [sha256.Size]byte
		if n, err := hex.Decode(hash[:], []byte(issued.Hash)); err == nil && n == len(hash) {
			d.keys[hash] = name
		}
	}
	return nil
}

// Snapshot encodes the directory (each user's identity snapshot, then the
// key owners) sealed with the keyring.
func (d *Directory) Snapshot() ([]byte, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var w compact.Writer
	w.Uint(uint64(len(d.users)))
	for name, u := range d.users {
		b, err := identity.EncodeSnapshot(u)
		if err != nil {
			return nil, fmt.Errorf("user directory: snapshot: %w", err)
		}
		w.String(name)
		w.String(string(b))
	}
	w.Uint(uint64(len(d.keys)))
	for hash, name := range d.keys {
		w.Raw(hash[:])
		w.String(name)
	}
	box, err := d.keyring.Seal(w.Bytes(), directoryAAD)
	if err != nil {
		return nil, fmt.Errorf("user directory: snapshot: %w", err)
	}
	return []byte(box), nil
}

// Restore replaces the directory with a snapshot's (empty for nil). A
// corrupt snapshot is an error and leaves the directory as it was.
func (d *Directory) Restore(data []byte) error {
	users := map[string]*identity.User{}
	keys := map[[sha256.Size]byte]string{}
	if len(data) > 0 {
		plain, err := d.keyring.Open(string(data), directoryAAD)
		if err != nil {
			return fmt.Errorf("user directory: restore: %w", err)
		}
		r := compact.NewReader(plain)
		for range r.Len() {
			name := r.String()
			u, err := identity.DecodeSnapshot([]byte(r.String()))
			if err != nil {
				return fmt.Errorf("user directory: restore %q: %w", name, err)
			}
			users[name] = u
		}
		for range r.Len() {
			var hash [sha256.Size]byte
			copy(hash[:], r.Raw(sha256.Size))
			keys[hash] = r.String()
		}
		if err := r.Done(); err != nil {
			return fmt.Errorf("user directory: restore: %w", err)
		}
	}
	d.mu.Lock()
	d.users, d.keys = users, keys
	d.mu.Unlock()
	return nil
}

// read runs fn on username's state (that of a user never registered when
// the directory has none). fn must not keep or change it.
func (d *Directory) read(username string, fn func(*identity.User) error) error {
	d.mu.RLock()
	defer d.mu.RUnlock()
	u := d.users[username]
	if u == nil {
		u = identity.New()
	}
	return fn(u)
}

// byKey runs fn on the state of the owner of the key whose secret hashes
// to hash; ErrBadCredentials for an unknown key.
func (d *Directory) byKey(hash [sha256.Size]byte, fn func(*identity.User) error) error {
	d.mu.RLock()
	owner, ok := d.keys[hash]
	d.mu.RUnlock()
	if !ok {
		return ErrBadCredentials
	}
	return d.read(owner, fn)
}

// DirectoryWait bounds how long a check waits for the Directory to catch
// up with the log before it reads the user's stream from the store
// instead: a stalled or parked follower slows authentication down, it
// does not stop it.
const DirectoryWait = 100 * time.Millisecond

// current runs fn on username's state as it stands after every event
// appended so far: the directory's, once it has caught up with the log,
// or the user's stream read from the store when nothing feeds the
// directory (commands that run no runner) or it did not catch up within
// DirectoryWait. fn must not keep or change the state.
func (s *Service) current(ctx context.Context, username string, fn func(*identity.User) error) error {
	if !identity.ValidUsername(username) {
		return ErrBadCredentials
	}
	if s.directoryCurrent(ctx) {
		return s.dir.read(username, fn)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("user %s: %w", username, err)
	}
	if s.dirAt != nil {
		s.streamReads.Add(1)
	}
	l, err := s.repo.Load(ctx, identity.Stream(username))
	if err != nil {
		return fmt.Errorf("user %s: %w", username, err)
	}
	return fn(l.State)
}

// directoryCurrent waits, at most DirectoryWait, until the directory has
// handled every user event appended so far; false when it did not (or
// nothing feeds it). A directory already there costs no timer.
func (s *Service) directoryCurrent(ctx context.Context) bool {
	if s.dirAt == nil {
		return false
	}
	at, err := s.directoryTarget(ctx)
	if err != nil {
		return false
	}
	if s.dirAt(noWait, at) == nil {
		return true
	}
	wctx, cancel := context.WithTimeout(ctx, DirectoryWait)
	defer cancel()
	return s.dirAt(wctx, at) == nil
}

// noWait is a context that is done: DirectoryAt with it reports at once
// whether the directory has reached the position.
var noWait = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// directoryTarget is the position the directory must have reached for a
// check to see every user event appended so far (see
// Options.SharedStore).
func (s *Service) directoryTarget(ctx context.Context) (uint64, error) {
	at := s.written.Load()
	if s.shared || !s.started.Load() {
		head, err := s.store.Head(ctx)
		if err != nil {
			return 0, fmt.Errorf("user directory: read head: %w", err)
		}
		if !s.shared {
			raise(s.written, head)
			s.started.Store(true)
		}
		at = max(at, head)
	}
	return at, nil
}

// TokenAccess checks a token of username issued at issuedAt in refresh
// family (empty for none) against the user's current state: registered,
// enabled, not issued before a session revocation, family not revoked.
// Any failure is ErrBadCredentials.
func (s *Service) TokenAccess(ctx context.Context, username string, issuedAt time.Time, family string) (Access, error) {
	var a Access
	err := s.current(ctx, username, func(u *identity.User) error {
		if !u.TokenValid(issuedAt) {
			return ErrBadCredentials
		}
		if family != "" {
			if f, ok := u.Family(family); !ok || f.RevokedReason != "" {
				return ErrBadCredentials
			}
		}
		a = Access{Username: u.Username, Roles: slices.Clone(u.Roles), Grants: u.Grants(), Family: family, APIs: u.APISets()}
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
