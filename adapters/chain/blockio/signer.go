package blockio

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"

	"github.com/coinledger/coinledger/app/chainsync"
)

// ErrWrongPIN: the PIN does not decrypt the wallet's key (the decryption
// fails, or gives a key other than the user key block.io announced). It
// wraps chainsync.ErrUnavailable: nothing was sent, and withdrawals go through
// once the configured PIN is corrected.
var ErrWrongPIN = fmt.Errorf("%w: blockio: the secret PIN does not decrypt the wallet's key", chainsync.ErrUnavailable)

// KeyAlgorithm is how block.io encrypted the passphrase of the wallet's
// key with the PIN (user_key.algorithm of prepare_transaction): the AES
// key is PBKDF2 applied twice to the PIN, then AES-256 decrypts the
// base64 ciphertext into the hex passphrase.
type KeyAlgorithm struct {
	// PBKDF2Salt is used as text (its UTF-8 bytes), as block.io's
	// libraries do, even when it looks like hex.
	PBKDF2Salt string `json:"pbkdf2_salt"`
	// PBKDF2Iterations is the total: each phase runs half of them.
	PBKDF2Iterations int `json:"pbkdf2_iterations"`
	// PBKDF2HashFunction must be SHA256.
	PBKDF2HashFunction string `json:"pbkdf2_hash_function"`
	// PBKDF2Phase1KeyLength is the length of the first phase's key,
	// whose hex is the password of the second phase.
	PBKDF2Phase1KeyLength int `json:"pbkdf2_phase1_key_length"`
	// PBKDF2Phase2KeyLength is the AES key's length (32).
	PBKDF2Phase2KeyLength int `json:"pbkdf2_phase2_key_length"`
	// AESCipher is AES-256-ECB (legacy), AES-256-CBC or AES-256-GCM.
	AESCipher string `json:"aes_cipher"`
	// AESIV is the IV (CBC) or nonce (GCM), in hex.
	AESIV string `json:"aes_iv"`
	// AESAuthTag is GCM's 16-byte tag, in hex.
	AESAuthTag string `json:"aes_auth_tag"`
	// AESAuthData is GCM's additional data, in hex (usually empty).
	AESAuthData string `json:"aes_auth_data"`
}

// legacyKeyAlgorithm is the algorithm of a user key that names none.
var legacyKeyAlgorithm = KeyAlgorithm{
	PBKDF2Iterations:      2048,
	PBKDF2HashFunction:    "SHA256",
	PBKDF2Phase1KeyLength: 16,
	PBKDF2Phase2KeyLength: 32,
	AESCipher:             "AES-256-ECB",
}

// maxPBKDF2Iterations bounds the work a prepared transaction can ask for
// (block.io uses about a hundred thousand).
const maxPBKDF2Iterations = 10_000_000

// PINSigner is the Signer of block.io's own client libraries
// (block_io-nodejs, block_io-python, block_io-php, version 2 and later),
// the default of New:
//
//   - the AES key is derived from the PIN with PBKDF2-HMAC-SHA256 in two
//     phases, each of half the iterations: the first over the PIN, the
//     second over the hex of the first phase's key (KeyAlgorithm);
//   - it decrypts user_key.encrypted_passphrase (AES-256-ECB with PKCS#7
//     padding when the user key names no algorithm, else the named ECB,
//     CBC or GCM) into a hex passphrase; the private key is the SHA-256
//     of the passphrase's bytes, and its compressed public key must be
//     user_key.public_key (else ErrWrongPIN);
//   - the transaction is built from the prepared inputs and outputs
//     (version 1, lock time 0, sequence 0xffffffff) and must have
//     block.io's expected_unsigned_txid when block.io gives one;
//   - each input is signed (SIGHASH_ALL; legacy sighash for P2SH and
//     P2PKH, BIP 143 for the segwit types) for every one of its public
//     keys that is the user key: ECDSA over secp256k1 with RFC 6979
//     nonces, low S, and low R as the libraries grind it, DER in hex
//     without the sighash byte. The spending address must be the one its
//     address type and public keys make.
//
// When the user key alone meets every input's required signatures the
// transaction is returned complete (Signatures nil); otherwise it is
// returned unsigned with the signatures, for block.io to add its own.
//
// The PIN, the passphrase and the key never appear in errors or logs. The
// zero value is ready to use and safe for concurrent use.
type PINSigner struct{}

var _ Signer = PINSigner{}

// Sign implements Signer. A wrong PIN is ErrWrongPIN, a missing one or a
// user key it cannot read chainsync.ErrUnavailable; a transaction it will not
// sign (addresses it cannot read or that do not match their keys, a txid
// other than block.io expects, an input the user key cannot sign)
// chainsync.ErrRejected.
func (PINSigner) Sign(ctx context.Context, pin Secret, tx PreparedTx) (SignedTx, error) {
	if tx.UserKey == nil {
		return SignedTx{}, fmt.Errorf("blockio sign: %w: %w: prepared transaction without user_key", chainsync.ErrUnavailable, ErrMalformed)
	}
	if pin.Reveal() == "" {
		return SignedTx{}, fmt.Errorf("blockio sign: %w: no PIN configured", chainsync.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		return SignedTx{}, fmt.Errorf("blockio sign: %w: %w", chainsync.ErrUnavailable, err)
	}
	key, err := decryptUserKey(pin.Reveal(), *tx.UserKey)
	if err != nil {
		return SignedTx{}, fmt.Errorf("blockio sign: %w", err)
	}
	defer key.Zero()
	signed, err := signPrepared(tx, key)
	if err != nil {
		return SignedTx{}, fmt.Errorf("blockio sign: %w", err)
	}
	return signed, nil
}

// decryptUserKey decrypts the wallet's private key with pin and checks it
// against the user key's public key.
func decryptUserKey(pin string, uk UserKey) (*btcec.PrivateKey, error) {
	alg := legacyKeyAlgorithm
	if uk.Algorithm != nil {
		alg = *uk.Algorithm
	}
	want, err := hex.DecodeString(uk.PublicKey)
	if err != nil || len(want) != 33 {
		return nil, fmt.Errorf("%w: %w: user key's public key %q", chainsync.ErrUnavailable, ErrMalformed, uk.PublicKey)
	}
	aesKey, err := pinKey(pin, alg)
	if err != nil {
		return nil, err
	}
	defer clear(aesKey)
	passphrase, err := decryptPassphrase(uk.EncryptedPassphrase, aesKey, alg)
	if err != nil {
		return nil, err
	}
	defer clear(passphrase)
	key, err := keyFromPassphrase(passphrase)
	if err != nil {
		return nil, err
	}
	if got := key.PubKey().SerializeCompressed(); string(got) != string(want) {
		key.Zero()
		return nil, ErrWrongPIN
	}
	return key, nil
}

// pinKey derives the AES key from the PIN as alg says.
func pinKey(pin string, alg KeyAlgorithm) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: user key algorithm: "+format, append([]any{chainsync.ErrUnavailable, ErrMalformed}, args...)...)
	}
	if !strings.EqualFold(alg.PBKDF2HashFunction, "SHA256") {
		return nil, bad("unsupported pbkdf2 hash function %q", alg.PBKDF2HashFunction)
	}
	if alg.PBKDF2Iterations < 2 || alg.PBKDF2Iterations > maxPBKDF2Iterations {
		return nil, bad("pbkdf2 iterations %d out of range", alg.PBKDF2Iterations)
	}
	if alg.PBKDF2Phase1KeyLength < 1 || alg.PBKDF2Phase1KeyLength > 64 {
		return nil, bad("pbkdf2 phase 1 key length %d out of range", alg.PBKDF2Phase1KeyLength)
	}
	if alg.PBKDF2Phase2KeyLength != 32 {
		return nil, bad("pbkdf2 phase 2 key length %d, want 32 (AES-256)", alg.PBKDF2Phase2KeyLength)
	}
	salt := []byte(alg.PBKDF2Salt)
	iter := alg.PBKDF2Iterations / 2
	phase1, err := pbkdf2.Key(sha256.New, pin, salt, iter, alg.PBKDF2Phase1KeyLength)
	if err != nil {
		return nil, bad("pbkdf2: %v", err)
	}
	defer clear(phase1)
	key, err := pbkdf2.Key(sha256.New, hex.EncodeToString(phase1), salt, iter, alg.PBKDF2Phase2KeyLength)
	if err != nil {
		return nil, bad("pbkdf2: %v", err)
	}
	return key, nil
}

// decryptPassphrase decrypts the base64 ciphertext with key as alg says.
// A failed decryption (padding, GCM tag) is ErrWrongPIN.
func decryptPassphrase(b64 string, key []byte, alg KeyAlgorithm) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: user key: "+format, append([]any{chainsync.ErrUnavailable, ErrMalformed}, args...)...)
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(ct) == 0 {
		return nil, bad("encrypted passphrase is not base64")
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, bad("%v", err)
	}
	switch cipherName := strings.ToUpper(alg.AESCipher); cipherName {
	case "AES-256-ECB", "AES-256-CBC":
		if len(ct)%aes.BlockSize != 0 {
			return nil, bad("ciphertext of %d bytes is not whole blocks", len(ct))
		}
		out := make([]byte, len(ct))
		if cipherName == "AES-256-ECB" {
			for i := 0; i < len(ct); i += aes.BlockSize {
				block.Decrypt(out[i:i+aes.BlockSize], ct[i:i+aes.BlockSize])
			}
		} else {
			iv, err := hex.DecodeString(alg.AESIV)
			if err != nil || len(iv) != aes.BlockSize {
				return nil, bad("CBC IV %q is not 16 bytes of hex", alg.AESIV)
			}
			cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, ct)
		}
		n := int(out[len(out)-1])
		if n == 0 || n > aes.BlockSize {
			clear(out)
			return nil, ErrWrongPIN
		}
		for _, b := range out[len(out)-n:] {
			if int(b) != n {
				clear(out)
				return nil, ErrWrongPIN
			}
		}
		return out[:len(out)-n], nil
	case "AES-256-GCM":
		nonce, err := hex.DecodeString(alg.AESIV)
		if err != nil || len(nonce) == 0 {
			return nil, bad("GCM nonce %q is not hex", alg.AESIV)
		}
		tag, err := hex.DecodeString(alg.AESAuthTag)
		if err != nil || len(tag) != 16 {
			return nil, bad("GCM auth tag is not 16 bytes of hex")
		}
		aad, err := hex.DecodeString(alg.AESAuthData)
		if err != nil {
			return nil, bad("GCM auth data is not hex")
		}
		gcm, err := cipher.NewGCMWithNonceSize(block, len(nonce))
		if err != nil {
			return nil, bad("%v", err)
		}
		out, err := gcm.Open(nil, nonce, append(ct, tag...), aad)
		if err != nil {
			return nil, ErrWrongPIN
		}
		return out, nil
	default:
		return nil, bad("unsupported cipher %q", alg.AESCipher)
	}
}

// keyFromPassphrase is the libraries' Key.fromPassphrase: the private key
// is the SHA-256 of the passphrase's bytes (the decrypted text is hex).
func keyFromPassphrase(hexPassphrase []byte) (*btcec.PrivateKey, error) {
	passphrase := make([]byte, hex.DecodedLen(len(hexPassphrase)))
	defer clear(passphrase)
	if _, err := hex.Decode(passphrase, hexPassphrase); err != nil {
		return nil, ErrWrongPIN // what decrypts with a wrong key is rarely hex
	}
	sum := sha256.Sum256(passphrase)
	defer clear(sum[:])
	var k btcec.ModNScalar
	if overflow := k.SetByteSlice(sum[:]); overflow || k.IsZero() {
		return nil, fmt.Errorf("%w: blockio: the passphrase gives no valid private key", chainsync.ErrUnavailable)
	}
	k.Zero()
	key, _ := btcec.PrivKeyFromBytes(sum[:])
	return key, nil
}

// maxGrind bounds the attempts at a low-R signature (each succeeds with
// probability about one half).
const maxGrind = 256

// signLowR signs a 32-byte sighash as block.io's libraries do (like
// Bitcoin Core): RFC 6979 nonces, low S, and, until R is exactly 32 bytes
// in DER with its high bit clear, again with extra entropy (a counter from
// 1, 32 bytes little endian) added to the nonce. It returns DER.
func signLowR(key *btcec.PrivateKey, hash []byte) ([]byte, error) {
	sig := ecdsa.Sign(key, hash)
	var extra [32]byte
	for counter := uint64(1); !lowR(sig.Serialize()); counter++ {
		if counter == maxGrind {
			return nil, errors.New("blockio: no low-R signature found")
		}
		binary.LittleEndian.PutUint64(extra[:], counter)
		sig = signWithExtra(key, hash, extra[:])
	}
	if !sig.Verify(hash, key.PubKey()) {
		return nil, errors.New("blockio: signature does not verify")
	}
	return sig.Serialize(), nil
}

// lowR reports whether R of a DER signature is 32 bytes with its high bit
// clear (0x30 len 0x02 0x20 r...).
func lowR(der []byte) bool {
	return len(der) > 4 && der[3] == 0x20 && der[4] < 0x80
}

// signWithExtra is ECDSA with the RFC 6979 nonce for hash with extra data
// (as the libraries' extra entropy): ecdsa.Sign takes none.
func signWithExtra(key *btcec.PrivateKey, hash, extra []byte) *ecdsa.Signature {
	d := key.Key.Bytes()
	defer clear(d[:])
	var e btcec.ModNScalar
	e.SetByteSlice(hash)
	for iteration := uint32(0); ; iteration++ {
		k := btcec.NonceRFC6979(d[:], hash, extra, nil, iteration)
		var point btcec.JacobianPoint
		btcec.ScalarBaseMultNonConst(k, &point)
		point.ToAffine()
		var r btcec.ModNScalar
		r.SetByteSlice(point.X.Bytes()[:])
		if r.IsZero() {
			k.Zero()
			continue
		}
		kInv := new(btcec.ModNScalar).InverseValNonConst(k)
		k.Zero()
		s := new(btcec.ModNScalar).Mul2(&key.Key, &r).Add(&e).Mul(kInv)
		if s.IsZero() {
			continue
		}
		if s.IsOverHalfOrder() {
			s.Negate()
		}
		return ecdsa.NewSignature(&r, s)
	}
}
