// Package users is the command side of identity: registering users,
// bootstrapping the first admin and checking passwords.
package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"golang.org/x/crypto/bcrypt"
)

// Stream returns the stream of user name.
func Stream(name string) string { return "user-" + name }

// ErrBadCredentials: unknown user or wrong password (callers must not tell which).
var ErrBadCredentials = errors.New("bad credentials")

// Service manages users.
type Service struct {
	repo *eventstore.Repository[*identity.User, identity.Event]
	cost int
}

// New returns a service over store. cost is the bcrypt cost (0: bcrypt.DefaultCost).
func New(store eventstore.Store, cost int) *Service {
	c := eventstore.NewCodecOf(identity.Events()...)
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return &Service{cost: cost, repo: eventstore.NewRepository(store, c,
		eventstore.Aggregate[*identity.User, identity.Event]{Initial: identity.New, Evolve: identity.Evolve})}
}

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
	_, _, err = s.repo.Update(ctx, Stream(username), meta, func(u *identity.User) ([]identity.Event, error) {
		return identity.Register(u, username, email, hash, roles)
	})
	return err
}

// BootstrapAdmin makes sure user "admin" exists. With a password given, the
// admin's password is set to it (registered or changed); without one, a
// missing admin is registered with a generated password, which is returned
// (shown once: only its hash is stored). generated is "" otherwise.
func (s *Service) BootstrapAdmin(ctx context.Context, password string) (generated string, err error) {
	meta := eventstore.Metadata{Actor: "system:bootstrap"}
	u, err := s.repo.Load(ctx, Stream("admin"))
	if err != nil {
		return "", err
	}
	switch {
	case !u.State.Registered && password == "":
		var b [18]byte
		rand.Read(b[:])
		generated = base64.RawURLEncoding.EncodeToString(b[:])
		return generated, s.Register(ctx, meta, "admin", "", generated, []string{identity.RoleAdmin})
	case !u.State.Registered:
		return "", s.Register(ctx, meta, "admin", "", password, []string{identity.RoleAdmin})
	case password != "" && bcrypt.CompareHashAndPassword([]byte(u.State.PasswordHash), []byte(password)) != nil:
		hash, err := s.Hash(password)
		if err != nil {
			return "", err
		}
		_, _, err = s.repo.Update(ctx, Stream("admin"), meta, func(u *identity.User) ([]identity.Event, error) {
			return identity.ChangePassword(u, hash)
		})
		return "", err
	}
	return "", nil
}

// dummyHash is compared against when the user is unknown, so that a login
// for an unknown user costs as much as one with a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcrypt.DefaultCost)

// Authenticate checks a username and password and returns the user.
func (s *Service) Authenticate(ctx context.Context, username, password string) (*identity.User, error) {
	hash := dummyHash
	var u *identity.User
	if identity.ValidUsername(username) {
		l, err := s.repo.Load(ctx, Stream(username))
		if err != nil {
			return nil, err
		}
		if l.State.Registered {
			u, hash = l.State, []byte(l.State.PasswordHash)
		}
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if !ok || u == nil {
		return nil, ErrBadCredentials
	}
	return u, nil
}

// Get returns a registered user.
func (s *Service) Get(ctx context.Context, username string) (*identity.User, error) {
	if !identity.ValidUsername(username) {
		return nil, identity.ErrUserNotFound
	}
	l, err := s.repo.Load(ctx, Stream(username))
	if err != nil {
		return nil, err
	}
	if !l.State.Registered {
		return nil, identity.ErrUserNotFound
	}
	return l.State, nil
}
