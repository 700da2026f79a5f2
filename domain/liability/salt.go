package liability

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// MinSecretSize is the least length in bytes of DeriveSalt's secret.
const MinSecretSize = 32

// DeriveSalt returns the salt of account in coin's tree at checkpoint:
// HMAC-SHA256 keyed by secret over the three, 32 bytes. One secret kept by
// the service gives every salt again when a proof is asked for later, and
// the checkpoint in it keeps an account's leaves unlinkable from one
// checkpoint to the next. Whoever holds the secret can open every leaf:
// keep it as secret as the ledger itself.
func DeriveSalt(secret []byte, checkpoint uint64, coin, account string) ([]byte, error) {
	if len(secret) < MinSecretSize {
		return nil, fmt.Errorf("derive salt: secret of %d bytes, want at least %d: %w", len(secret), MinSecretSize, ErrInvalidSalt)
	}
	m := hmac.New(sha256.New, secret)
	buf := []byte("coinledger liability salt v1")
	buf = binary.BigEndian.AppendUint64(buf, checkpoint)
	buf = appendLP(buf, []byte(coin))
	buf = appendLP(buf, []byte(account))
	m.Write(buf)
	return m.Sum(nil), nil
}
