// Package auth issues and checks the service's tokens: HS256 JWTs with the
// algorithm pinned, a key id for rotation, access and refresh kinds.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token kinds.
const (
	Access  = "access"
	Refresh = "refresh"
)

// ErrInvalidToken: missing, malformed, expired, of the wrong kind or signed
// with an unknown key.
var ErrInvalidToken = errors.New("invalid token")

// Key is one HMAC signing key.
type Key struct {
	ID     string
	Secret []byte
}

// KeyOf returns a key whose id is derived from the secret (the first 8
// bytes of its SHA-256, hex), so that the same secret has the same kid on
// every instance and a rotated-out secret is still recognised.
func KeyOf(secret []byte) Key {
	sum := sha256.Sum256(secret)
	return Key{ID: hex.EncodeToString(sum[:8]), Secret: secret}
}

// Issuer signs and verifies tokens. The first key signs; all verify (keys
// being rotated out stay until their tokens have expired).
type Issuer struct {
	keys       []Key
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	Leeway     time.Duration
	Now        func() time.Time

	verified verified
}

// verified remembers the claims of tokens that verified, by token, so that
// a client presenting the same token on every request pays for the HMAC
// and the JSON decoding once. Only the expiry is checked again on a hit:
// the other checks (signature, algorithm, key, not before, issued at)
// cannot turn from pass to fail as time goes on. Revocations are not
// Verify's business: the caller checks the user's state on every request.
type verified struct {
	mu sync.Mutex
	m  map[string]Claims
}

// maxVerified bounds the tokens remembered; when full, one is forgotten.
const maxVerified = 4096

func (v *verified) get(token string) (Claims, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.m[token]
	return c, ok
}

func (v *verified) put(token string, c Claims) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil {
		v.m = make(map[string]Claims)
	}
	if len(v.m) >= maxVerified {
		for k := range v.m {
			delete(v.m, k)
			break
		}
	}
	v.m[token] = c
}

func (v *verified) forget(token string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.m, token)
}

// NewIssuer returns an issuer with the default lifetimes: access 30 min,
// refresh 4 h, 30 s leeway on exp and nbf.
func NewIssuer(keys ...Key) (*Issuer, error) {
	if len(keys) == 0 {
		return nil, errors.New("auth: no signing key")
	}
	for _, k := range keys {
		if k.ID == "" || len(k.Secret) < 32 {
			return nil, fmt.Errorf("auth: key %q: want an id and at least 32 bytes of secret", k.ID)
		}
	}
	return &Issuer{keys: keys, AccessTTL: 30 * time.Minute, RefreshTTL: 4 * time.Hour,
		Leeway: 30 * time.Second, Now: time.Now}, nil
}

// Claims are what a token says.
type Claims struct {
	jwt.RegisteredClaims
	Kind  string   `json:"kind"`
	Roles []string `json:"roles,omitempty"`
	// Family groups a refresh token with the ones rotated from it.
	Family string `json:"fam,omitempty"`
}

// NewTokenID returns a random token id.
func NewTokenID() string { return randomID() }

// Issue returns a signed token of kind for subject, with id as its jti (a
// random one when empty) and the refresh family it belongs to.
func (i *Issuer) Issue(kind, subject string, roles []string, family, id string) (string, time.Duration, error) {
	if id == "" {
		id = randomID()
	}
	ttl := i.AccessTTL
	if kind == Refresh {
		ttl = i.RefreshTTL
	}
	now := i.Now()
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   subject,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
			ID:        id,
		},
		Kind: kind, Roles: roles, Family: family,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = i.keys[0].ID
	s, err := t.SignedString(i.keys[0].Secret)
	return s, ttl, err
}

// Verify checks a token's signature (HS256 only), kind and times.
func (i *Issuer) Verify(token, kind string) (*Claims, error) {
	if c, ok := i.verified.get(token); ok {
		// Verified tokens have an expiry (jwt.WithExpirationRequired).
		if !i.now().Before(c.ExpiresAt.Add(i.Leeway)) {
			i.verified.forget(token)
			return nil, fmt.Errorf("%w: token is expired", ErrInvalidToken)
		}
		return checkKind(c, kind)
	}
	var c Claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range i.keys {
			if k.ID == kid {
				return k.Secret, nil
			}
		}
		return nil, fmt.Errorf("unknown key id %q", kid)
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithExpirationRequired(),
		jwt.WithLeeway(i.Leeway), jwt.WithTimeFunc(i.Now), jwt.WithIssuedAt())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	i.verified.put(token, c)
	return checkKind(c, kind)
}

// checkKind returns a copy of c if it is a token of kind with a subject.
func checkKind(c Claims, kind string) (*Claims, error) {
	if c.Kind != kind || c.Subject == "" {
		return nil, fmt.Errorf("%w: want a %s token", ErrInvalidToken, kind)
	}
	c.Roles = slices.Clone(c.Roles)
	return &c, nil
}

func (i *Issuer) now() time.Time {
	if i.Now != nil {
		return i.Now()
	}
	return time.Now()
}

func randomID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
