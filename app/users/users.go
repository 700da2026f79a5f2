// Package users is the command side of identity: registering users,
// bootstrapping the first admin, checking passwords and API keys, per-wallet
// grants, refresh-token families and importing a Graphene api-access file.
//
// Every change loads the user's stream (user-<name>), lets a decider of
// domain/identity decide and appends with the expected version (retried on
// a conflict by eventstore.Repository).
package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials: unknown user, wrong password, or unknown, revoked or
// malformed API key or one of a disabled user (callers must not tell which).
var ErrBadCredentials = errors.New("bad credentials")

// Options tune a Service. The zero value is the production default.
type Options struct {
	// BcryptCost for new password hashes (0: bcrypt.DefaultCost).
	BcryptCost int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Random is the source of API key secrets and ids (default crypto/rand).
	Random io.Reader
	// Keyring seals the credential material of user events (password
	// hashes, API key hashes, refresh token ids: identity.CredentialFields)
	// in the log and opens it again when streams are loaded. It must be the
	// same across restarts and instances: events sealed with a key the
	// keyring lacks do not load. Default: a random key held in memory only
	// (tests); the service passes the data directory's seal key.
	Keyring *seal.Keyring
	// Snapshots, if set, keeps snapshots of user states, sealed whole with
	// Keyring (a user's state holds the credential material the log
	// seals): a cold load (a user the directory cache does not hold, any
	// update) reads the snapshot and the events after it.
	Snapshots eventstore.SnapshotStore
	// SnapshotEvery: a user is snapshotted after an update that crosses a
	// multiple of this many events (default eventstore.DefaultSnapshotEvery).
	SnapshotEvery uint64
	// Logger reports snapshots ignored or not saved (default slog.Default()).
	Logger *slog.Logger
	// Directory is where token and API key checks read users' states: a
	// follower the projection runner feeds (NewDirectory with Keyring).
	// Default: a directory nothing feeds (for commands that authenticate
	// nobody): token checks then read the user's stream, and no API key is
	// known.
	Directory *Directory
	// DirectoryAt waits until Directory has handled the log up to a
	// position (the runner's WaitFor for it); every check calls it first.
	// nil: nothing feeds Directory.
	DirectoryAt func(ctx context.Context, position uint64) error
	// SharedStore: other processes append to the store too (several
	// instances over one EventStoreDB). A check then waits until the
	// Directory has reached the log's head, since a revocation may have
	// been written anywhere. Otherwise the store is this process's alone
	// (the embedded store is locked by one), every user event is written
	// through this service, and a check waits only for the service's own
	// latest write (and, at its first check, for the head as it was): as
	// exact, and no wait at all behind unrelated appends.
	SharedStore bool
}

func (o *Options) setDefaults() {
	if o.BcryptCost == 0 {
		o.BcryptCost = bcrypt.DefaultCost
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Random == nil {
		o.Random = rand.Reader
	}
	if o.Keyring == nil {
		o.Keyring = seal.Random()
	}
	if o.Directory == nil {
		o.Directory = NewDirectory(o.Keyring)
	}
}

// Service manages users.
type Service struct {
	store  eventstore.Store
	codec  *eventstore.Codec[identity.Event]
	repo   *eventstore.Repository[*identity.User, identity.Event]
	cost   int
	now    func() time.Time
	random io.Reader
	dir    *Directory
	// dirAt waits until dir has reached a position (nil: nothing feeds it).
	dirAt  func(context.Context, uint64) error
	shared bool
	// written is the position of the service's latest append (or of the
	// head at its first check); started: that head was read.
	written *atomic.Uint64
	started atomic.Bool
	// streamReads counts the checks that read the user's stream because
	// the directory was not current in time (DirectoryWait).
	streamReads atomic.Uint64
}

// New returns a service over store. cost is the bcrypt cost (0: bcrypt.DefaultCost).
func New(store eventstore.Store, cost int) *Service {
	return NewWithOptions(store, Options{BcryptCost: cost})
}

// NewWithOptions returns a service over store tuned by opts.
func NewWithOptions(store eventstore.Store, opts Options) *Service {
	opts.setDefaults()
	c := newCodec(opts.Keyring)
	written := new(atomic.Uint64)
	repo := eventstore.NewRepository(marking{Store: store, written: written}, c,
		eventstore.Aggregate[*identity.User, identity.Event]{Initial: identity.New, Evolve: identity.Evolve})
	if opts.Snapshots != nil {
		repo.SetSnapshotter(snapshotter(opts))
	}
	return &Service{store: store, codec: c, cost: opts.BcryptCost, now: opts.Now, random: opts.Random,
		dir: opts.Directory, dirAt: opts.DirectoryAt, shared: opts.SharedStore, written: written, repo: repo}
}

// marking is the store as the service's repository sees it: it records
// the position of every append that succeeds.
type marking struct {
	eventstore.Store
	written *atomic.Uint64
}

func (m marking) Append(ctx context.Context, stream string, expected eventstore.ExpectedVersion, events ...eventstore.EventData) (eventstore.AppendResult, error) {
	res, err := m.Store.Append(ctx, stream, expected, events...)
	if err == nil {
		raise(m.written, res.Position)
	}
	return res, err
}

// raise sets v to p if p is greater.
func raise(v *atomic.Uint64, p uint64) {
	for {
		cur := v.Load()
		if p <= cur || v.CompareAndSwap(cur, p) {
			return
		}
	}
}

// newCodec returns the codec of user events, sealing their credential
// fields with keyring.
func newCodec(keyring *seal.Keyring) *eventstore.Codec[identity.Event] {
	c := eventstore.NewCodecOf(identity.Events()...)
	c.Seal(keyring, eventstore.Sealing(identity.CredentialFields()))
	return c
}

// snapshotAAD binds a sealed snapshot to what it is.
var snapshotAAD = []byte("coinledger/snapshot\x00" + identity.SnapshotSchema)

// snapshotter returns the snapshot support of user states that opts ask
// for: the identity encoding, sealed whole with opts.Keyring, so no password hash, API
// key hash or refresh token id is ever stored in the clear. A snapshot
// sealed with a key the keyring lacks does not open: it is ignored.
func snapshotter(opts Options) eventstore.Snapshotter[*identity.User] {
	keyring := opts.Keyring
	return eventstore.Snapshotter[*identity.User]{Store: opts.Snapshots, Schema: identity.SnapshotSchema,
		Every: opts.SnapshotEvery, Logger: opts.Logger,
		Encode: func(u *identity.User) ([]byte, error) {
			data, err := identity.EncodeSnapshot(u)
			if err != nil {
				return nil, err
			}
			box, err := keyring.Seal(data, snapshotAAD)
			if err != nil {
				return nil, fmt.Errorf("seal user snapshot: %w", err)
			}
			return []byte(box), nil
		},
		Decode: func(box []byte) (*identity.User, error) {
			data, err := keyring.Open(string(box), snapshotAAD)
			if err != nil {
				return nil, fmt.Errorf("open user snapshot: %w", err)
			}
			return identity.DecodeSnapshot(data)
		},
	}
}

// WaitSnapshots returns when no user snapshot is being saved.
func (s *Service) WaitSnapshots() { s.repo.WaitSnapshots() }

// Hash returns the bcrypt hash of password.
func (s *Service) Hash(password string) (string, error) {
	if len(password) < 8 || len(password) > 72 {
		return "", fmt.Errorf("%w: password must have 8 to 72 bytes", identity.ErrValidation)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	return string(h), err
}

// Register adds a user.
func (s *Service) Register(ctx context.Context, meta eventstore.Metadata, username, email, password string, roles []string) error {
	hash, err := s.Hash(password)
	if err != nil {
		return err
	}
	_, _, err = s.repo.Update(ctx, identity.Stream(username), meta, func(u *identity.User) ([]identity.Event, error) {
		return identity.Register(u, username, email, hash, roles)
	})
	return err
}

// BootstrapAdmin makes sure user "admin" exists. With a password given, the
// admin's password is set to it (registered or changed); without one, a
// missing admin is registered with a generated password, which is handed
// to keep before the registration is written (only its hash is stored, so
// keep is the one chance to deliver it; when keep fails nothing is
// registered) and returned. generated is "" otherwise.
func (s *Service) BootstrapAdmin(ctx context.Context, password string, keep func(generated string) error) (generated string, err error) {
	meta := eventstore.Metadata{Actor: "system:bootstrap"}
	u, err := s.repo.Load(ctx, identity.Stream("admin"))
	if err != nil {
		return "", err
	}
	switch {
	case !u.State.Registered && password == "":
		var b [18]byte
		if _, err := io.ReadFull(s.random, b[:]); err != nil {
			return "", fmt.Errorf("generate admin password: %w", err)
		}
		generated = base64.RawURLEncoding.EncodeToString(b[:])
		if keep == nil {
			return "", errors.New("bootstrap admin: no password given and nowhere to keep a generated one")
		}
		if err := keep(generated); err != nil {
			return "", fmt.Errorf("keep the generated admin password: %w", err)
		}
		return generated, s.Register(ctx, meta, "admin", "", generated, []string{identity.RoleAdmin})
	case !u.State.Registered:
		return "", s.Register(ctx, meta, "admin", "", password, []string{identity.RoleAdmin})
	case password != "" && bcrypt.CompareHashAndPassword([]byte(u.State.PasswordHash), []byte(password)) != nil:
		hash, err := s.Hash(password)
		if err != nil {
			return "", err
		}
		_, _, err = s.repo.Update(ctx, identity.Stream("admin"), meta, func(u *identity.User) ([]identity.Event, error) {
			return identity.ChangePassword(u, hash)
		})
		return "", err
	}
	return "", nil
}

// Authenticate checks a username and password and returns the user.
// Unknown users and wrong passwords are ErrBadCredentials, each after a full
// password check so that timing tells little. A disabled user with the
// right password is an error wrapping identity.ErrUserDisabled (only a
// caller who knows the password learns that the account is disabled).
//
// A username that is not registered falls back to the wildcard user
// (Graphene's "*": see LoginTarget), if there is one; a registered user
// with a wrong password never does.
//
// A user imported from Graphene (password hash "legacy-sha256$salt$hash")
// is checked with graphene's salted SHA-256 once: on success the password
// is re-hashed (bcrypt; argon2id for passwords longer than bcrypt's 72
// bytes) and PasswordChanged is appended, so later logins never use the
// legacy scheme. The returned user reflects the upgrade.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*identity.User, error) {
	u, err := s.loginUser(ctx, username)
	if err != nil {
		return nil, err
	}
	if u == nil {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return nil, ErrBadCredentials
	}
	ok, legacy := true, false // the wildcard user may accept any password
	if !u.Wildcard() || u.PasswordHash != anyPassword {
		ok, legacy = verifyPassword(u.PasswordHash, password)
	}
	if !ok {
		return nil, ErrBadCredentials
	}
	if u.Disabled() {
		return nil, fmt.Errorf("login %s: %w", u.Username, identity.ErrUserDisabled)
	}
	if legacy {
		if err := s.upgrade(ctx, u, password); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// LoginTarget is the account a login is checked against.
type LoginTarget struct {
	// Account is the username whose password decides: the username given,
	// or the wildcard user's for a username that is not registered.
	Account string
	// Wildcard is true when Account is the wildcard user: a successful
	// login then proves nothing about who the caller is.
	Wildcard bool
}

// LoginTarget tells which account a login as username would be checked
// against, so that rate limits count attempts per account: logins with
// made-up usernames that fall back to the wildcard user all count against
// it. A username that is neither registered nor covered by a wildcard user
// is its own account.
//
// It reads the users' states where token checks do (the Directory).
func (s *Service) LoginTarget(ctx context.Context, username string) (LoginTarget, error) {
	// lookup reports whether name is registered, whether it is the
	// wildcard user and whether it is enabled.
	if identity.ValidUsername(username) {
		var registered, wildcard bool
		err := s.current(ctx, username, func(u *identity.User) error {
			registered, wildcard = u.Registered, u.Wildcard()
			return nil
		})
		if err != nil || registered {
			return LoginTarget{Account: username, Wildcard: wildcard}, err
		}
	}
	if username != Anonymous {
		var fallback bool
		err := s.current(ctx, Anonymous, func(u *identity.User) error {
			fallback = acceptsUnknown(u)
			return nil
		})
		if err != nil {
			return LoginTarget{Account: username}, err
		}
		if fallback {
			return LoginTarget{Account: Anonymous, Wildcard: true}, nil
		}
	}
	return LoginTarget{Account: username}, nil
}

// acceptsUnknown reports whether u, the user Anonymous, takes the logins
// of usernames that are not registered: registered, designated the
// wildcard user (WildcardDesignated) and enabled.
func acceptsUnknown(u *identity.User) bool { return u.Registered && u.Wildcard() && !u.Disabled() }

// loginUser returns the user a login as username is checked against: the
// registered user of that name, else the wildcard user (Anonymous, if it
// acceptsUnknown), else nil.
func (s *Service) loginUser(ctx context.Context, username string) (*identity.User, error) {
	if identity.ValidUsername(username) {
		l, err := s.repo.Load(ctx, identity.Stream(username))
		if err != nil {
			return nil, err
		}
		if l.State.Registered {
			return l.State, nil
		}
	}
	if username == Anonymous {
		return nil, nil
	}
	// Graphene's rule: an unknown user falls back to the wildcard.
	l, err := s.repo.Load(ctx, identity.Stream(Anonymous))
	if err != nil {
		return nil, err
	}
	if acceptsUnknown(l.State) {
		return l.State, nil
	}
	return nil, nil
}

// upgrade replaces u's legacy hash with a modern hash of password and
// evolves u with the result. If the hash changed meanwhile (a concurrent
// login upgraded it), nothing is appended.
func (s *Service) upgrade(ctx context.Context, u *identity.User, password string) error {
	hash, err := s.modernHash(password)
	if err != nil {
		return fmt.Errorf("upgrade password hash of %s: %w", u.Username, err)
	}
	legacy := u.PasswordHash
	meta := eventstore.Metadata{Actor: "user:" + u.Username}
	_, events, err := s.repo.Update(ctx, identity.Stream(u.Username), meta, func(cur *identity.User) ([]identity.Event, error) {
		if cur.PasswordHash != legacy {
			return nil, nil
		}
		return identity.ChangePassword(cur, hash)
	})
	if err != nil {
		return err
	}
	for _, e := range events {
		identity.Evolve(u, e)
	}
	return nil
}

// Get returns a registered user.
func (s *Service) Get(ctx context.Context, username string) (*identity.User, error) {
	if !identity.ValidUsername(username) {
		return nil, identity.ErrUserNotFound
	}
	l, err := s.repo.Load(ctx, identity.Stream(username))
	if err != nil {
		return nil, err
	}
	if !l.State.Registered {
		return nil, identity.ErrUserNotFound
	}
	return l.State, nil
}

// update runs decide on user's stream and appends what it decides. A
// username that cannot exist is ErrUserNotFound.
func (s *Service) update(ctx context.Context, meta eventstore.Metadata, username string,
	decide func(*identity.User) ([]identity.Event, error)) error {
	if !identity.ValidUsername(username) {
		return fmt.Errorf("user %q: %w", clip(username), identity.ErrUserNotFound)
	}
	_, _, err := s.repo.Update(ctx, identity.Stream(username), meta, decide)
	return err
}

func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "…"
}
