package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/coinledger/coinledger/domain/liability"
)

// Stream holds the signed checkpoints, one event each.
const Stream = "audit-checkpoints"

// TypeCheckpointSigned is the type of a checkpoint event; its data is the
// JSON form of a Checkpoint.
const TypeCheckpointSigned = "audit.checkpoint_signed"

// Hash is a SHA-256 digest, written as 64 lower-case hex digits.
type Hash = liability.Hash

// Statement is what a checkpoint signs (see the package doc).
type Statement struct {
	Number      uint64           `json:"number"`
	Position    uint64           `json:"position"`
	Events      uint64           `json:"events"`
	GlobalHead  Hash             `json:"global_head"`
	Streams     uint64           `json:"streams"`
	StreamRoot  Hash             `json:"stream_root"`
	Liabilities []liability.Root `json:"liabilities"`
	Time        time.Time        `json:"time"`
	KeyID       string           `json:"key_id"`
}

// Checkpoint is a signed Statement.
type Checkpoint struct {
	Statement
	Signature []byte `json:"signature"`
}

// Errors of Verify, for errors.Is.
var (
	ErrUnknownKey   = errors.New("checkpoint signed by an unknown key")
	ErrBadSignature = errors.New("checkpoint signature does not verify")
)

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SigningBytes is the encoding of s that a signature covers.
func (s Statement) SigningBytes() []byte {
	b := make([]byte, 0, 256+64*len(s.Liabilities))
	b = append(b, "coinledger/checkpoint/v1"...)
	b = binary.BigEndian.AppendUint64(b, s.Number)
	b = binary.BigEndian.AppendUint64(b, s.Position)
	b = binary.BigEndian.AppendUint64(b, s.Events)
	b = append(b, s.GlobalHead[:]...)
	b = binary.BigEndian.AppendUint64(b, s.Streams)
	b = append(b, s.StreamRoot[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.Liabilities)))
	for _, r := range s.Liabilities {
		b = lp(b, []byte(r.Coin))
		b = append(b, r.Hash[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(r.Total))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(s.Time.UnixMicro()))
	b = lp(b, []byte(s.KeyID))
	return b
}

// Sign signs s with key, whose id it sets.
func Sign(s Statement, key ed25519.PrivateKey) Checkpoint {
	s.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	s.Time = s.Time.UTC().Truncate(time.Microsecond)
	return Checkpoint{Statement: s, Signature: ed25519.Sign(key, s.SigningBytes())}
}

// Verify checks c's signature with the key of c's KeyID among keys (key
// id → public key).
func (c Checkpoint) Verify(keys map[string]ed25519.PublicKey) error {
	pub, ok := keys[c.KeyID]
	if !ok {
		return fmt.Errorf("checkpoint %d: key %q: %w", c.Number, c.KeyID, ErrUnknownKey)
	}
	if KeyID(pub) != c.KeyID || !ed25519.Verify(pub, c.SigningBytes(), c.Signature) {
		return fmt.Errorf("checkpoint %d (key %s): %w", c.Number, c.KeyID, ErrBadSignature)
	}
	return nil
}

// Liability returns the root of coin, if the statement has one.
func (s Statement) Liability(coin string) (liability.Root, bool) {
	for _, r := range s.Liabilities {
		if r.Coin == coin {
			return r, true
		}
	}
	return liability.Root{}, false
}

func lp(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// Head is a stream's head: the revision its next event gets and the hash
// of its newest event.
type Head struct {
	Next uint64
	Hash Hash
}

// StreamRoot is the Merkle root of heads (stream → head); see the package
// doc.
func StreamRoot(heads map[string]Head) Hash {
	names := make([]string, 0, len(heads))
	for name := range heads {
		names = append(names, name)
	}
	slices.Sort(names)
	level := make([]Hash, len(names))
	for i, name := range names {
		h := heads[name]
		b := make([]byte, 0, 1+4+len(name)+8+sha256.Size)
		b = append(b, 0x00)
		b = lp(b, []byte(name))
		b = binary.BigEndian.AppendUint64(b, h.Next)
		b = append(b, h.Hash[:]...)
		level[i] = sha256.Sum256(b)
	}
	if len(level) == 0 {
		return sha256.Sum256([]byte{0x02})
	}
	var buf [1 + 2*sha256.Size]byte
	buf[0] = 0x01
	for len(level) > 1 {
		next := level[:0:0]
		for i := 0; i+1 < len(level); i += 2 {
			copy(buf[1:], level[i][:])
			copy(buf[1+sha256.Size:], level[i+1][:])
			next = append(next, sha256.Sum256(buf[:]))
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1])
		}
		level = next
	}
	return level[0]
}
