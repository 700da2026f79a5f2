package users

import (
	"crypto/sha256"

	"github.com/coinledger/coinledger/domain/identity"
)

// LookupAPIKey returns the owner x holds for secret, for tests.
func LookupAPIKey(x *Directory, secret string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	owner, ok := x.keys[sha256.Sum256([]byte(secret))]
	return owner, ok
}

// UserSnapshot returns the identity snapshot of name's state in x, for tests.
func UserSnapshot(x *Directory, name string) []byte {
	var b []byte
	_ = x.read(name, func(u *identity.User) error {
		b, _ = identity.EncodeSnapshot(u)
		return nil
	})
	return b
}

// StreamReads returns how many checks of s read a user's stream because
// the directory was not current in time, for tests.
func StreamReads(s *Service) uint64 { return s.streamReads.Load() }
