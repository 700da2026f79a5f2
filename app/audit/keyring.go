package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/liability"
)

// Keyring is the service's checkpoint key material: the Ed25519 key that
// signs new checkpoints, the public keys of the keys it replaced (which
// still verify the checkpoints they signed) and the secret the liability
// salts derive from (liability.DeriveSalt). The secret never changes: a
// rotation replaces the signing key only, so the proofs of old
// checkpoints can still be made.
//
// A Keyring prints and logs as its key ids only; its private parts leave
// it only through MarshalKeyring, for its file.
type Keyring struct {
	signing ed25519.PrivateKey
	created time.Time
	retired []RetiredKey
	secret  []byte
}

// RetiredKey is the public half of a key a rotation replaced.
type RetiredKey struct {
	Key     ed25519.PublicKey
	Created time.Time
	Retired time.Time
}

// PublicKey is a verifying key as the service publishes it.
type PublicKey struct {
	ID      string
	Key     ed25519.PublicKey
	Current bool
	Created time.Time
	Retired time.Time // zero for the current key
}

// NewKeyring returns a keyring with a fresh signing key and salt secret
// from random (nil: crypto/rand), created at now.
func NewKeyring(random io.Reader, now time.Time) (*Keyring, error) {
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("new audit keyring: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(random, secret); err != nil {
		return nil, fmt.Errorf("new audit keyring: %w", err)
	}
	return &Keyring{signing: priv, created: now.UTC(), secret: secret}, nil
}

// Rotate returns a keyring that signs with a fresh key from random (nil:
// crypto/rand) and keeps k's signing key, retired at now, among the
// verifying ones. The salt secret stays.
func (k *Keyring) Rotate(random io.Reader, now time.Time) (*Keyring, error) {
	if random == nil {
		random = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("rotate audit key: %w", err)
	}
	retired := append([]RetiredKey{{Key: k.signing.Public().(ed25519.PublicKey), Created: k.created, Retired: now.UTC()}}, k.retired...)
	return &Keyring{signing: priv, created: now.UTC(), retired: retired, secret: bytes.Clone(k.secret)}, nil
}

// Sign signs s with the current key.
func (k *Keyring) Sign(s audit.Statement) audit.Checkpoint { return audit.Sign(s, k.signing) }

// KeyID is the id of the current key.
func (k *Keyring) KeyID() string { return audit.KeyID(k.signing.Public().(ed25519.PublicKey)) }

// SaltSecret is the secret liability salts derive from.
func (k *Keyring) SaltSecret() []byte { return k.secret }

// PublicKeys returns the current key, then the retired ones, newest first.
func (k *Keyring) PublicKeys() []PublicKey {
	pub := k.signing.Public().(ed25519.PublicKey)
	out := []PublicKey{{ID: audit.KeyID(pub), Key: pub, Current: true, Created: k.created}}
	for _, r := range k.retired {
		out = append(out, PublicKey{ID: audit.KeyID(r.Key), Key: r.Key, Created: r.Created, Retired: r.Retired})
	}
	return out
}

// Verifying returns every public key by id, for audit.Checkpoint.Verify.
func (k *Keyring) Verifying() map[string]ed25519.PublicKey { return VerifyingKeys(k.PublicKeys()) }

// VerifyingKeys returns keys by id, for audit.Checkpoint.Verify.
func VerifyingKeys(keys []PublicKey) map[string]ed25519.PublicKey {
	out := make(map[string]ed25519.PublicKey, len(keys))
	for _, p := range keys {
		out[p.ID] = p.Key
	}
	return out
}

// String names the keyring by its current key id, never its private parts.
func (k *Keyring) String() string { return "audit keyring " + k.KeyID() + " [private parts redacted]" }

// LogValue logs the keyring as its key ids.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.String("key_id", k.KeyID()), slog.Int("retired_keys", len(k.retired)))
}

// keyringFile is the file form of a Keyring (MarshalKeyring).
type keyringFile struct {
	Version    int          `json:"version"`
	SaltSecret string       `json:"salt_secret"`
	Signing    keyringKey   `json:"signing"`
	Retired    []keyringKey `json:"retired"`
}

type keyringKey struct {
	PrivateKey string    `json:"private_key,omitempty"` // the 32-byte seed, hex; the signing key only
	PublicKey  string    `json:"public_key"`
	Created    time.Time `json:"created"`
	Retired    time.Time `json:"retired,omitzero"`
}

// keyringVersion is the version of the file form.
const keyringVersion = 1

// MarshalKeyring encodes k for its file, private parts included: the file
// must be kept as secret as the ledger's other keys (mode 0600).
func MarshalKeyring(k *Keyring) ([]byte, error) {
	f := keyringFile{Version: keyringVersion, SaltSecret: hex.EncodeToString(k.secret),
		Signing: keyringKey{PrivateKey: hex.EncodeToString(k.signing.Seed()),
			PublicKey: hex.EncodeToString(k.signing.Public().(ed25519.PublicKey)), Created: k.created},
		Retired: []keyringKey{}}
	for _, r := range k.retired {
		f.Retired = append(f.Retired, keyringKey{PublicKey: hex.EncodeToString(r.Key), Created: r.Created, Retired: r.Retired})
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ErrKeyring: a keyring file that cannot be read.
var ErrKeyring = errors.New("invalid audit keyring")

// ParseKeyring reads what MarshalKeyring wrote, strictly.
func ParseKeyring(data []byte) (*Keyring, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f keyringFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyring, err)
	}
	if f.Version != keyringVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrKeyring, f.Version, keyringVersion)
	}
	secret, err := hex.DecodeString(f.SaltSecret)
	if err != nil || len(secret) < liability.MinSecretSize {
		return nil, fmt.Errorf("%w: salt_secret: want at least %d bytes in hex", ErrKeyring, liability.MinSecretSize)
	}
	seed, err := hex.DecodeString(f.Signing.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: signing.private_key: want %d bytes in hex", ErrKeyring, ed25519.SeedSize)
	}
	k := &Keyring{signing: ed25519.NewKeyFromSeed(seed), created: f.Signing.Created, secret: secret}
	if f.Signing.PublicKey != hex.EncodeToString(k.signing.Public().(ed25519.PublicKey)) {
		return nil, fmt.Errorf("%w: signing.public_key is not the private key's", ErrKeyring)
	}
	for i, r := range f.Retired {
		pub, err := hex.DecodeString(r.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize || r.PrivateKey != "" {
			return nil, fmt.Errorf("%w: retired[%d]: want a %d-byte public key in hex and no private key", ErrKeyring, i, ed25519.PublicKeySize)
		}
		k.retired = append(k.retired, RetiredKey{Key: pub, Created: r.Created, Retired: r.Retired})
	}
	return k, nil
}

// publicKeysJSON is the published form of the verifying keys: what GET
// /api/v1/audit/public-key answers and `coinledger audit public-key`
// writes.
type publicKeysJSON struct {
	Keys []publicKeyJSON `json:"keys"`
}

type publicKeyJSON struct {
	ID        string    `json:"id"`
	Algorithm string    `json:"algorithm"`
	PublicKey string    `json:"public_key"`
	Status    string    `json:"status"`
	Created   time.Time `json:"created"`
	Retired   time.Time `json:"retired,omitzero"`
}

// MarshalPublicKeys encodes keys in their published form:
//
//	{"keys":[{"id":"<key id>","algorithm":"ed25519","public_key":"<hex>",
//	  "status":"current"|"retired","created":"<RFC 3339>","retired"?:"<RFC 3339>"}, ...]}
func MarshalPublicKeys(keys []PublicKey) ([]byte, error) {
	out := publicKeysJSON{Keys: make([]publicKeyJSON, len(keys))}
	for i, k := range keys {
		status := "retired"
		if k.Current {
			status = "current"
		}
		out.Keys[i] = publicKeyJSON{ID: k.ID, Algorithm: "ed25519", PublicKey: hex.EncodeToString(k.Key), Status: status,
			Created: k.Created, Retired: k.Retired}
	}
	return json.Marshal(out)
}

// ParsePublicKeys reads the published form of the verifying keys (a file
// an auditor received); a key whose id is not its own (audit.KeyID) is
// refused. A bare public key, 64 hex digits, is read as one current key.
func ParsePublicKeys(data []byte) ([]PublicKey, error) {
	if raw := bytes.TrimSpace(data); len(raw) == 2*ed25519.PublicKeySize && raw[0] != '{' {
		pub, err := hex.DecodeString(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		return []PublicKey{{ID: audit.KeyID(pub), Key: pub, Current: true}}, nil
	}
	var in publicKeysJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("parse public keys: %w", err)
	}
	if len(in.Keys) == 0 {
		return nil, errors.New("parse public keys: no keys")
	}
	out := make([]PublicKey, len(in.Keys))
	for i, k := range in.Keys {
		pub, err := hex.DecodeString(k.PublicKey)
		if err != nil || len(pub) != ed25519.PublicKeySize || k.Algorithm != "ed25519" {
			return nil, fmt.Errorf("parse public keys: key %d: want an ed25519 key of %d bytes in hex", i, ed25519.PublicKeySize)
		}
		if audit.KeyID(pub) != k.ID {
			return nil, fmt.Errorf("parse public keys: key %d: id %q is not the key's (%s)", i, k.ID, audit.KeyID(pub))
		}
		out[i] = PublicKey{ID: k.ID, Key: pub, Current: k.Status == "current", Created: k.Created, Retired: k.Retired}
	}
	return out, nil
}
