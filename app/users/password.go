package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/coinledger/coinledger/domain/identity/graphene"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// dummyHash is compared against when the user is unknown, so that a login
// for an unknown user costs as much as one with a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password of anyone"), bcrypt.DefaultCost)

// argon2id parameters for new hashes (OWASP's minimum: 19 MiB, 2 passes, 1
// lane) and the bounds accepted when verifying a stored hash.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16

	argonMaxTime   = 16
	argonMaxMemory = 256 * 1024
)

// verifyPassword checks password against a stored hash: bcrypt ($2a$,
// $2b$, $2y$), argon2id in PHC form ($argon2id$v=19$m=…,t=…,p=…$salt$key)
// or a Graphene legacy marker (legacy reports it: the hash wants an
// upgrade). An unknown format never matches.
func verifyPassword(hash, password string) (ok, legacy bool) {
	switch {
	case strings.HasPrefix(hash, "$2"):
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, false
	case strings.HasPrefix(hash, "$argon2id$"):
		return verifyArgon2id(hash, password), false
	case graphene.IsLegacyMarker(hash):
		return graphene.VerifyLegacyMarker(hash, password), true
	}
	_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
	return false, false
}

// modernHash hashes a password that was already accepted (a legacy
// upgrade): bcrypt when it fits bcrypt's 72 bytes, else argon2id. Unlike
// Hash it applies no length policy: the user must not be locked out of a
// password the old system allowed.
func (s *Service) modernHash(password string) (string, error) {
	if len(password) <= 72 {
		h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
		return string(h), err
	}
	return hashArgon2id(password)
}

func hashArgon2id(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func verifyArgon2id(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return false
	}
	var m, t, p uint64
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return false
		}
		switch k {
		case "m":
			m = n
		case "t":
			t = n
		case "p":
			p = n
		default:
			return false
		}
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 || len(key) > 64 ||
		t < 1 || t > argonMaxTime || m < 8 || m > argonMaxMemory || p < 1 || p > 255 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, uint32(t), uint32(m), uint8(p), uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}
