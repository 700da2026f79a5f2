// Package seal encrypts the credential material that events carry (password
// hashes, API key hashes, refresh token ids) so that the log can be read by
// auditors without showing it: XChaCha20-Poly1305 with a random 192-bit
// nonce, under a key derived from a secret kept beside the store (the data
// directory's seal.key by default).
//
// A sealed box is a string:
//
//	seal1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>
//
// The key id (16 hex digits) names the secret that sealed it, so a Keyring
// holding a new secret and old ones opens boxes sealed by any of them. The
// additional data a box was sealed with (the event type, see
// eventstore.Sealing) must be given again to open it.
package seal

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// MinSecret is the least number of bytes of a secret.
const MinSecret = 32

// prefix starts every box of this format version.
const prefix = "seal1:"

// ErrOpen: a box is malformed, was sealed by a secret the keyring does not
// hold, or does not authenticate (tampered, or other additional data).
var ErrOpen = errors.New("cannot open sealed box")

// Keyring seals with its first key and opens with any of its keys. It is
// safe for concurrent use.
type Keyring struct {
	keys []key
}

type key struct {
	id   string
	aead cipher.AEAD
}

// New returns a keyring of secrets, each of at least MinSecret bytes: the
// first seals, all open (keep a replaced secret as long as events sealed
// by it must be read, that is for good).
func New(secrets ...[]byte) (*Keyring, error) {
	if len(secrets) == 0 {
		return nil, errors.New("seal: no secret")
	}
	k := &Keyring{}
	for i, s := range secrets {
		if len(s) < MinSecret {
			return nil, fmt.Errorf("seal: secret %d has %d bytes, want at least %d", i, len(s), MinSecret)
		}
		raw, err := hkdf.Key(sha256.New, s, nil, "coinledger/seal/v1", chacha20poly1305.KeySize)
		if err != nil {
			return nil, fmt.Errorf("seal: derive key: %w", err)
		}
		aead, err := chacha20poly1305.NewX(raw)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		k.keys = append(k.keys, key{id: ID(s), aead: aead})
	}
	return k, nil
}

// Random returns a keyring with a random secret that lives in memory only:
// boxes it seals cannot be opened after the process ends. For tests and
// tools that keep nothing.
func Random() *Keyring {
	s := make([]byte, MinSecret)
	rand.Read(s)
	k, _ := New(s)
	return k
}

// ID returns the key id of secret: the first 8 bytes, in hex, of a SHA-256
// of the secret (domain-separated from every other use of it).
func ID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("coinledger/seal/key-id\x00"))
	h.Write(secret)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Seal encrypts plaintext bound to aad with the keyring's first key.
func (k *Keyring) Seal(plaintext, aad []byte) (string, error) {
	first := k.keys[0]
	buf := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(plaintext)+first.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	buf = first.aead.Seal(buf, buf, plaintext, aad)
	return prefix + first.id + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a box that Seal made with one of the keyring's keys and the
// same aad. Every failure wraps ErrOpen.
func (k *Keyring) Open(box string, aad []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(box, prefix)
	if !ok {
		return nil, fmt.Errorf("%w: not a %q box", ErrOpen, prefix)
	}
	id, body, ok := strings.Cut(rest, ":")
	if !ok {
		return nil, fmt.Errorf("%w: no key id", ErrOpen)
	}
	for _, key := range k.keys {
		if key.id != id {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(body)
		if err != nil || len(raw) < chacha20poly1305.NonceSizeX+key.aead.Overhead() {
			return nil, fmt.Errorf("%w: malformed box", ErrOpen)
		}
		nonce, ct := raw[:chacha20poly1305.NonceSizeX], raw[chacha20poly1305.NonceSizeX:]
		plain, err := key.aead.Open(nil, nonce, ct, aad)
		if err != nil {
			return nil, fmt.Errorf("%w: sealed by key %s: does not authenticate", ErrOpen, id)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("%w: sealed by key %s, which this keyring does not hold", ErrOpen, clip(id))
}

func clip(s string) string {
	if len(s) <= 16 {
		return s
	}
	return s[:16] + "…"
}
