package users

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
)

// Seed is a user as a configuration file declares it (the way the Binance
// signing service's config.yml does): a password hash, roles and grants.
type Seed struct {
	Username     string              `yaml:"username"`
	Email        string              `yaml:"email"`
	PasswordHash string              `yaml:"password_hash"` // bcrypt or argon2id, from `coinledger users hash-password`
	Roles        []string            `yaml:"roles"`
	Wallets      map[string][]string `yaml:"wallets"` // wallet → permissions
}

// Apply makes the user's stream agree with the seed, appending only what
// differs: run on every start, it is idempotent. A password hash in the
// seed replaces the stored one only when it differs.
func (s *Service) Apply(ctx context.Context, meta eventstore.Metadata, seed Seed) error {
	if !strings.HasPrefix(seed.PasswordHash, "$2") && !strings.HasPrefix(seed.PasswordHash, "$argon2id$") {
		return fmt.Errorf("seed user %s: %w: password_hash must be a bcrypt or argon2id hash (coinledger users hash-password)",
			seed.Username, identity.ErrValidation)
	}
	_, _, err := s.repo.Update(ctx, identity.Stream(seed.Username), meta, func(u *identity.User) ([]identity.Event, error) {
		var all []identity.Event
		step := func(events []identity.Event, err error) error {
			if err != nil {
				return err
			}
			for _, e := range events {
				identity.Evolve(u, e)
			}
			all = append(all, events...)
			return nil
		}
		if !u.Registered {
			if err := step(identity.Register(u, seed.Username, seed.Email, seed.PasswordHash, seed.Roles)); err != nil {
				return nil, err
			}
		}
		if u.PasswordHash != seed.PasswordHash {
			if err := step(identity.ChangePassword(u, seed.PasswordHash)); err != nil {
				return nil, err
			}
		}
		if !slices.Equal(sorted(u.Roles), sorted(seed.Roles)) {
			if err := step(identity.SetRoles(u, seed.Roles)); err != nil {
				return nil, err
			}
		}
		for wallet, perms := range seed.Wallets {
			if err := step(identity.Grant(u, wallet, perms)); err != nil {
				return nil, err
			}
		}
		for wallet := range u.Grants() {
			if _, keep := seed.Wallets[wallet]; !keep {
				if err := step(identity.Revoke(u, wallet)); err != nil {
					return nil, err
				}
			}
		}
		return all, nil
	})
	if err != nil {
		return fmt.Errorf("seed user %s: %w", seed.Username, err)
	}
	return nil
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
