package liability

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Hash prefixes (see the package doc): each kind of hashed value has its
// own first byte.
const (
	prefixLeaf       = 0x00
	prefixNode       = 0x01
	prefixCommitment = 0x02
	prefixEmpty      = 0x03
)

// Limits on the inputs.
const (
	// MinSaltSize and MaxSaltSize bound a salt's length in bytes. A salt
	// must be unguessable: 16 random bytes at least.
	MinSaltSize = 16
	MaxSaltSize = 64
	// MaxCoinSize bounds a coin's code in bytes.
	MaxCoinSize = 32
	// MaxAccountSize bounds an account id in bytes.
	MaxAccountSize = 1024
	// MaxDepth bounds a proof's path: no tree this package builds is
	// deeper (it would need more than 2^64 leaves).
	MaxDepth = 64
)

// Hash is a SHA-256 digest. Its text form (String, MarshalText) is 64
// lower-case hex digits.
type Hash [sha256.Size]byte

// String returns h in lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText returns h in lower-case hex.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText reads exactly 64 lower-case hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := ParseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// ParseHash reads a hash written as exactly 64 lower-case hex digits (the
// one spelling String produces, so a hash has one text form).
func ParseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 2*len(h) {
		return Hash{}, fmt.Errorf("parse hash: %d characters, want %d", len(s), 2*len(h))
	}
	if err := lowerHex(s); err != nil {
		return Hash{}, fmt.Errorf("parse hash: %w", err)
	}
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		return Hash{}, fmt.Errorf("parse hash: %w", err)
	}
	return h, nil
}

// lowerHex refuses anything but 0-9 and a-f.
func lowerHex(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("byte %d is not a lower-case hex digit", i)
		}
	}
	return nil
}

// appendLP appends len(b) as 4 bytes big-endian, then b.
func appendLP(dst []byte, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// commitment hides an account id behind its salt.
func commitment(coin, account string, salt []byte) Hash {
	buf := make([]byte, 0, 1+12+len(coin)+len(account)+len(salt))
	buf = append(buf, prefixCommitment)
	buf = appendLP(buf, []byte(coin))
	buf = appendLP(buf, []byte(account))
	buf = appendLP(buf, salt)
	return sha256.Sum256(buf)
}

// leafHash is the hash of a leaf: its commitment and balance.
func leafHash(c Hash, balance int64) Hash {
	var buf [1 + 32 + 8]byte
	buf[0] = prefixLeaf
	copy(buf[1:], c[:])
	binary.BigEndian.PutUint64(buf[33:], uint64(balance))
	return sha256.Sum256(buf[:])
}

// nodeHash is the hash of an inner node: each child's hash and sum.
func nodeHash(left Hash, leftSum int64, right Hash, rightSum int64) Hash {
	var buf [1 + 2*(32+8)]byte
	buf[0] = prefixNode
	copy(buf[1:], left[:])
	binary.BigEndian.PutUint64(buf[33:], uint64(leftSum))
	copy(buf[41:], right[:])
	binary.BigEndian.PutUint64(buf[73:], uint64(rightSum))
	return sha256.Sum256(buf[:])
}

// emptyHash is the root hash of a tree without accounts.
func emptyHash(coin string) Hash {
	buf := appendLP([]byte{prefixEmpty}, []byte(coin))
	return sha256.Sum256(buf)
}

// addSum adds two non-negative sums, refusing a result above math.MaxInt64.
func addSum(a, b int64) (int64, bool) {
	s := a + b
	if s < a { // both are non-negative: a wrap shows as a smaller result
		return 0, false
	}
	return s, true
}
