package users

import "crypto/sha256"

// LookupAPIKey returns the owner x holds for secret, for tests.
func LookupAPIKey(x *APIKeyIndex, secret string) (string, bool) {
	return x.lookup(sha256.Sum256([]byte(secret)))
}
