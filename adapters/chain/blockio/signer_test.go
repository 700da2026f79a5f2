package blockio

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/coinledger/coinledger/app/chainsync"
)

// The vectors below (PINs, keys, ciphertexts, signatures) are the values
// block.io's client libraries check in their tests: block_io-python
// tests/test_blockio.py and block_io-nodejs test/unit/key.js and
// test/unit/cryptohelper.js. Transactions are checked by a round trip of
// our own: a wallet made here, signatures verified by btcd's script engine.

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustKey(tb testing.TB, privHex string) *btcec.PrivateKey {
	tb.Helper()
	k, _ := btcec.PrivKeyFromBytes(mustHex(tb, privHex))
	return k
}

func pubHex(k *btcec.PrivateKey) string { return hex.EncodeToString(k.PubKey().SerializeCompressed()) }

func TestPINKey(t *testing.T) {
	t.Parallel()
	salted := legacyKeyAlgorithm
	salted.PBKDF2Salt, salted.PBKDF2Iterations = "922445847c173e90667a19d90729e1fb", 500000
	for name, tc := range map[string]struct {
		pin  string
		alg  KeyAlgorithm
		want string
	}{
		// python test_pin_derivation; nodejs PIN_KEY (base64 of the same).
		"legacy": {"123456", legacyKeyAlgorithm, "d0478c395b66e588a1518cdd08d8257aa2145a4c20bcd05c466afb334b7d18e7"},
		// python test_pin_derivation_with_salt; nodejs PIN_KEY_500000.
		"salted": {"deadbeef", salted, "f206403c6bad20e1c8cb1f3318e17cec5b2da0560ed6c7b26826867452534172"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			key, err := pinKey(tc.pin, tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(key); got != tc.want {
				t.Fatalf("key %s, want %s", got, tc.want)
			}
		})
	}
	for name, alg := range map[string]KeyAlgorithm{
		"hash":       {PBKDF2HashFunction: "SHA512", PBKDF2Iterations: 2048, PBKDF2Phase1KeyLength: 16, PBKDF2Phase2KeyLength: 32},
		"iterations": {PBKDF2HashFunction: "SHA256", PBKDF2Iterations: 1 << 40, PBKDF2Phase1KeyLength: 16, PBKDF2Phase2KeyLength: 32},
		"key length": {PBKDF2HashFunction: "SHA256", PBKDF2Iterations: 2048, PBKDF2Phase1KeyLength: 16, PBKDF2Phase2KeyLength: 16},
	} {
		if _, err := pinKey("123456", alg); !errors.Is(err, ErrMalformed) || !errors.Is(err, chainsync.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrMalformed and chainsync.ErrUnavailable", name, err)
		}
	}
}

func TestDecryptPassphrase(t *testing.T) {
	t.Parallel()
	legacyKey := mustHex(t, "d0478c395b66e588a1518cdd08d8257aa2145a4c20bcd05c466afb334b7d18e7")
	saltedKey := mustHex(t, "f206403c6bad20e1c8cb1f3318e17cec5b2da0560ed6c7b26826867452534172")
	cbc := KeyAlgorithm{AESCipher: "AES-256-CBC", AESIV: "11bc22166c8cf8560e5fa7e5c622bb0f"}
	gcm := KeyAlgorithm{AESCipher: "AES-256-GCM", AESIV: "a57414b88b67f977829cbdca", AESAuthTag: "adeb7dfe53027bdda5824dc524d5e55a"}
	// python test_aes256{ecb,cbc,gcm}_encryption, nodejs cryptohelper.js.
	for name, tc := range map[string]struct {
		ct   string
		key  []byte
		alg  KeyAlgorithm
		want string
	}{
		"ECB": {"7HTfNBYJjq09+vi8hTQhy6lCp3IHv5rztNnKCJ5RB7cSL+NjHrFVv1jl7qkxJsOg", legacyKey, legacyKeyAlgorithm, "I'm a little tea pot short and stout"},
		"CBC": {"LExu1rUAtIBOekslc328Lw==", saltedKey, cbc, "beadbeef"},
		"GCM": {"ELV56Z57KoA=", saltedKey, gcm, "beadbeef"},
	} {
		got, err := decryptPassphrase(tc.ct, tc.key, tc.alg)
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, tc.want)
		}
	}

	badTag := gcm
	badTag.AESAuthTag = "adeb7dfe53027bdda5824dc524d5e55b"
	if _, err := decryptPassphrase("ELV56Z57KoA=", saltedKey, badTag); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("GCM with another tag: %v, want ErrWrongPIN", err)
	}
	shortTag := gcm
	shortTag.AESAuthTag = gcm.AESAuthTag[:30] // nodejs: "Auth tag must be 16 bytes exactly."
	if _, err := decryptPassphrase("ELV56Z57KoA=", saltedKey, shortTag); !errors.Is(err, ErrMalformed) {
		t.Errorf("GCM with a short tag: %v, want ErrMalformed", err)
	}
	if _, err := decryptPassphrase("LExu1rUAtIBOekslc328Lw==", legacyKey, cbc); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("CBC with another key: %v, want ErrWrongPIN", err)
	}
	if _, err := decryptPassphrase("LExu1rUAtIBOekslc328Lw==", saltedKey, KeyAlgorithm{AESCipher: "AES-128-OFB"}); !errors.Is(err, ErrMalformed) {
		t.Errorf("unknown cipher: %v, want ErrMalformed", err)
	}
}

func TestDecryptUserKey(t *testing.T) {
	t.Parallel()
	// python test_dynamic_extract_key_aes256{ecb,cbc,gcm}, nodejs
	// "DynamicExtractKey using AES-256-...": PIN deadbeef, passphrase
	// beadbeef.
	for name, js := range map[string]string{
		"ECB": `{"encrypted_passphrase":"3wIJtPoC8KO6S7x6LtrN0g==","public_key":"02f87f787bffb30396984cb6b3a9d6830f32d5b656b3e39b0abe4f3b3c35d99323","algorithm":{"pbkdf2_salt":"","pbkdf2_iterations":2048,"pbkdf2_hash_function":"SHA256","pbkdf2_phase1_key_length":16,"pbkdf2_phase2_key_length":32,"aes_iv":null,"aes_cipher":"AES-256-ECB","aes_auth_tag":null,"aes_auth_data":null}}`,
		"CBC": `{"encrypted_passphrase":"LExu1rUAtIBOekslc328Lw==","public_key":"02f87f787bffb30396984cb6b3a9d6830f32d5b656b3e39b0abe4f3b3c35d99323","algorithm":{"pbkdf2_salt":"922445847c173e90667a19d90729e1fb","pbkdf2_iterations":500000,"pbkdf2_hash_function":"SHA256","pbkdf2_phase1_key_length":16,"pbkdf2_phase2_key_length":32,"aes_iv":"11bc22166c8cf8560e5fa7e5c622bb0f","aes_cipher":"AES-256-CBC","aes_auth_tag":null,"aes_auth_data":null}}`,
		"GCM": `{"encrypted_passphrase":"ELV56Z57KoA=","public_key":"02f87f787bffb30396984cb6b3a9d6830f32d5b656b3e39b0abe4f3b3c35d99323","algorithm":{"pbkdf2_salt":"922445847c173e90667a19d90729e1fb","pbkdf2_iterations":500000,"pbkdf2_hash_function":"SHA256","pbkdf2_phase1_key_length":16,"pbkdf2_phase2_key_length":32,"aes_iv":"a57414b88b67f977829cbdca","aes_cipher":"AES-256-GCM","aes_auth_tag":"adeb7dfe53027bdda5824dc524d5e55a","aes_auth_data":""}}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var uk UserKey
			if err := json.Unmarshal([]byte(js), &uk); err != nil {
				t.Fatal(err)
			}
			key, err := decryptUserKey("deadbeef", uk)
			if err != nil {
				t.Fatal(err)
			}
			if pubHex(key) != uk.PublicKey {
				t.Fatalf("public key %s, want %s", pubHex(key), uk.PublicKey)
			}
			_, err = decryptUserKey("deadbeee", uk)
			if !errors.Is(err, ErrWrongPIN) || !errors.Is(err, chainsync.ErrUnavailable) || strings.Contains(err.Error(), "deadbee") {
				t.Fatalf("wrong PIN: %v, want ErrWrongPIN without the PIN", err)
			}
		})
	}
}

func TestKeyFromPassphrase(t *testing.T) {
	t.Parallel()
	// python test_from_passphrase, nodejs key.js PASSPHRASE/PASS_PRIV/PASS_PUB.
	key, err := keyFromPassphrase([]byte("deadbeeffeedface"))
	if err != nil {
		t.Fatal(err)
	}
	if got := key.Key.Bytes(); hex.EncodeToString(got[:]) != "ae9f07f3d627531db09562bbabad4c5e023f6505b4b06122730744261953e48f" {
		t.Errorf("private key %x", got)
	}
	if got := pubHex(key); got != "029023d9738c623cdd7e5fdd0f41666accb82f21df5d27dc5ef07040f7bdc5d9f5" {
		t.Errorf("public key %s", got)
	}
	if _, err := keyFromPassphrase([]byte("not hex")); !errors.Is(err, ErrWrongPIN) {
		t.Errorf("not hex: %v, want ErrWrongPIN", err)
	}
}

func TestSignLowR(t *testing.T) {
	t.Parallel()
	// python TestDeterministicSignatures, nodejs key.js.
	key := mustKey(t, "6b0e34587dece0ef042c4c7205ce6b3d4a64d0bc484735b9325f7971a0ead963")
	if got := pubHex(key); got != "029c06f988dc6b44696e002e8abf496a13c73c2f1db3bde2dfb69be129f3711b01" {
		t.Fatalf("public key %s", got)
	}
	hash := mustHex(t, "feedfacedeadbeeffeedfacedeadbeeffeedfacedeadbeeffeedfacedeadbeef")

	// Nonces with extra entropy (python test_deterministic_k_*).
	d := key.Key.Bytes()
	for counter, want := range map[uint64]string{
		0:   "ab56733dc6b9cf8fbecd9af7ba64ee5b658b8a1def2f4c4c510a2996d2761d6f",
		1:   "f24f24e2e6510071c86da612ef04ccc21664a3801e0e06a227023b9c513a8290",
		16:  "f42eeee9d30ec008d58ce23b2ff08fac85127e87390bccccbecc68a537da3d47",
		255: "a2c913d48ca5d18c62126a90059a552f4cafeab85b55e9acdc6848473910f150",
		256: "39c9dc355f042b24fe44184119c31b62ff9d8a3d0c5a26bada674d9595e6988d",
	} {
		var extra []byte
		if counter > 0 {
			extra = make([]byte, 32)
			binary.LittleEndian.PutUint64(extra, counter)
		}
		k := btcec.NonceRFC6979(d[:], hash, extra, nil, 0).Bytes()
		if got := hex.EncodeToString(k[:]); got != want {
			t.Errorf("nonce with extra entropy %d: %s, want %s", counter, got, want)
		}
	}

	// nodejs SIG (lowR false) is plain RFC 6979; SIG_LOW_R is ground.
	if got := hex.EncodeToString(ecdsa.Sign(key, hash).Serialize()); got != "3045022100b633aaa7cd5b7af455211531f193b61d34d20fe5ea19d23dd40d6074126150530220676617cd427db7d85923ebe4426ccecc47fb5826e3e24b60e62244e2a4811086" {
		t.Errorf("plain signature %s", got)
	}
	sig, err := signLowR(key, hash)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(sig); got != "3044022042b9b4d673c85798f226c85f55ea6e114a0805bd5a0efba35f14c05235bb67b2022016333edae230c0ab607e948b48ceaefb5cab07300fb869d9da0a1b0f6bb53f65" {
		t.Errorf("low-R signature %s", got)
	}
}

// TestSignWithExtra checks the hand-written signing against ecdsa.Sign
// (no extra entropy) and ecdsa's verification.
func TestSignWithExtra(t *testing.T) {
	t.Parallel()
	for i := range 64 {
		seed := sha256.Sum256(fmt.Appendf(nil, "key %d", i))
		key, _ := btcec.PrivKeyFromBytes(seed[:])
		hash := sha256.Sum256(fmt.Appendf(nil, "hash %d", i))
		want := ecdsa.Sign(key, hash[:]).Serialize()
		if got := signWithExtra(key, hash[:], nil).Serialize(); !bytes.Equal(got, want) {
			t.Fatalf("%d: %x, want %x", i, got, want)
		}
		extra := make([]byte, 32)
		extra[0] = byte(i + 1)
		sig := signWithExtra(key, hash[:], extra)
		if !sig.Verify(hash[:], key.PubKey()) {
			t.Fatalf("%d: signature with extra entropy does not verify", i)
		}
		if bytes.Equal(sig.Serialize(), want) {
			t.Fatalf("%d: extra entropy changed nothing", i)
		}
		low, err := signLowR(key, hash[:])
		if err != nil || !lowR(low) || len(low) > 70 {
			t.Fatalf("%d: %x, %v: not low R", i, low, err)
		}
	}
}

// ---- round trip: a wallet made here, signatures checked by txscript ----

// encryptPassphrase is block.io's side: it encrypts the hex passphrase
// with the PIN as alg says (alg's IV, tag and data are set).
func encryptPassphrase(tb testing.TB, pin, passphrase string, alg *KeyAlgorithm) string {
	tb.Helper()
	a := legacyKeyAlgorithm
	if alg != nil {
		a = *alg
	}
	key, err := pinKey(pin, a)
	if err != nil {
		tb.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	plain := []byte(passphrase)
	var ct []byte
	switch a.AESCipher {
	case "AES-256-ECB", "AES-256-CBC":
		n := aes.BlockSize - len(plain)%aes.BlockSize
		plain = append(plain, bytes.Repeat([]byte{byte(n)}, n)...)
		ct = make([]byte, len(plain))
		if a.AESCipher == "AES-256-ECB" {
			for i := 0; i < len(plain); i += aes.BlockSize {
				block.Encrypt(ct[i:], plain[i:i+aes.BlockSize])
			}
		} else {
			cipher.NewCBCEncrypter(block, mustHex(tb, a.AESIV)).CryptBlocks(ct, plain)
		}
	case "AES-256-GCM":
		gcm, _ := cipher.NewGCM(block)
		sealed := gcm.Seal(nil, mustHex(tb, a.AESIV), plain, mustHex(tb, a.AESAuthData))
		ct = sealed[:len(sealed)-16]
		alg.AESAuthTag = hex.EncodeToString(sealed[len(sealed)-16:])
	}
	return base64.StdEncoding.EncodeToString(ct)
}

// multisigAddress is the BTCTEST address of a 2-of-2 multisig of the
// keys, of the address type.
func multisigAddress(tb testing.TB, addressType string, keys ...*btcec.PrivateKey) string {
	tb.Helper()
	b := txscript.NewScriptBuilder().AddInt64(2)
	for _, k := range keys {
		b.AddData(k.PubKey().SerializeCompressed())
	}
	script, err := b.AddInt64(int64(len(keys))).AddOp(txscript.OP_CHECKMULTISIG).Script()
	if err != nil {
		tb.Fatal(err)
	}
	wsh := sha256.Sum256(script)
	switch addressType {
	case AddressP2SH:
		return base58.CheckEncode(btcutil.Hash160(script), 0xc4)
	case AddressP2WSHOverP2SH:
		return base58.CheckEncode(btcutil.Hash160(append([]byte{0, 32}, wsh[:]...)), 0xc4)
	default:
		data, _ := bech32.ConvertBits(wsh[:], 8, 5, true)
		addr, err := bech32.Encode("tb", append([]byte{0}, data...))
		if err != nil {
			tb.Fatal(err)
		}
		return addr
	}
}

// testPrepared is a prepare_transaction answer for a 2-of-2 wallet of keys
// bio and user (whose passphrase block.io keeps encrypted with pin as alg
// says): three inputs of the three multisig address types, a payment and
// change.
func testPrepared(tb testing.TB, pin, passphrase string, alg *KeyAlgorithm, bio, user *btcec.PrivateKey) PreparedTx {
	tb.Helper()
	uk := &UserKey{PublicKey: pubHex(user), EncryptedPassphrase: encryptPassphrase(tb, pin, passphrase, alg), Algorithm: alg}
	p := PreparedTx{Network: "BTCTEST", TxType: "basic", UserKey: uk}
	for i, typ := range []string{AddressP2SH, AddressP2WSHOverP2SH, AddressWitnessV0} {
		addr := multisigAddress(tb, typ, bio, user)
		txid := sha256.Sum256([]byte(typ))
		p.Inputs = append(p.Inputs, PreparedInput{InputIndex: i, PreviousTxID: hex.EncodeToString(txid[:]), PreviousOutputIndex: uint32(i), InputValue: FormatAmount(int64(100_000 * (i + 1))), SpendingAddress: addr})
		p.InputAddressData = append(p.InputAddressData, InputAddress{Address: addr, AddressType: typ, RequiredSignatures: 2, PublicKeys: []string{pubHex(bio), pubHex(user)}})
	}
	p.Outputs = []PreparedOutput{
		{OutputIndex: 0, OutputCategory: CategoryUserSpecified, OutputValue: "0.00450000", ReceivingAddress: "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy"},
		{OutputIndex: 1, OutputCategory: CategoryChange, OutputValue: "0.00140000", ReceivingAddress: multisigAddress(tb, AddressP2WSHOverP2SH, bio, user)},
	}
	return p
}

// TestSignPreparedRejects: a prepared transaction that is not what was
// asked for, or not of the wallet, is never signed.
func TestSignPreparedRejects(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte("passphrase"))
	user, _ := btcec.PrivKeyFromBytes(sum[:])
	bio := mustKey(t, "2f9090b8aa4ddb32c3b0b8371db1b50e19084c720c30db1d6bb9fcd3a0f78e61")
	other := mustKey(t, "b515fd806a662e061b488e78e5d0c2ff46df80083a79818e166300666385c0a2")
	prepared := func() PreparedTx {
		return testPrepared(t, "pin", hex.EncodeToString([]byte("passphrase")), nil, bio, user)
	}
	for what, change := range map[string]func(*PreparedTx){
		"expected txid":  func(p *PreparedTx) { p.ExpectedUnsignedTxID = strings.Repeat("0", 64) },
		"output address": func(p *PreparedTx) { p.Outputs[0].ReceivingAddress = "QN9ShoLwKTnW7ms7bfSrH7YgMPh2cjUkdj" },
		"address of another network": func(p *PreparedTx) {
			p.Outputs[0].ReceivingAddress = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
		},
		"keys not of the address": func(p *PreparedTx) {
			k := p.InputAddressData[0].PublicKeys
			p.InputAddressData[0].PublicKeys = []string{k[1], k[0]}
		},
		"address type":         func(p *PreparedTx) { p.InputAddressData[0].AddressType = AddressWitnessV0 },
		"unknown address type": func(p *PreparedTx) { p.InputAddressData[0].AddressType = "P2TR" },
		"input index":          func(p *PreparedTx) { p.Inputs[1].InputIndex = 2 },
		"network":              func(p *PreparedTx) { p.Network = "ETH" },
	} {
		p := prepared()
		change(&p)
		if _, err := signPrepared(p, user); !errors.Is(err, chainsync.ErrRejected) {
			t.Errorf("%s: %v, want chainsync.ErrRejected", what, err)
		}
	}
	if _, err := signPrepared(prepared(), other); !errors.Is(err, chainsync.ErrRejected) {
		t.Errorf("no input of the key: %v, want chainsync.ErrRejected", err)
	}
}

func TestPINSignerRoundTrip(t *testing.T) {
	t.Parallel()
	const pin = "correct horse battery staple"
	passphrase := hex.EncodeToString([]byte("the wallet's passphrase, made here"))
	sum := sha256.Sum256([]byte("the wallet's passphrase, made here"))
	user, _ := btcec.PrivKeyFromBytes(sum[:])
	bio := mustKey(t, "2f9090b8aa4ddb32c3b0b8371db1b50e19084c720c30db1d6bb9fcd3a0f78e61")
	stranger := mustKey(t, "b515fd806a662e061b488e78e5d0c2ff46df80083a79818e166300666385c0a2")

	for name, alg := range map[string]*KeyAlgorithm{
		"legacy": nil,
		"CBC": {PBKDF2Salt: "0a1b2c3d4e5f60718293a4b5c6d7e8f9", PBKDF2Iterations: 4000, PBKDF2HashFunction: "SHA256",
			PBKDF2Phase1KeyLength: 16, PBKDF2Phase2KeyLength: 32, AESCipher: "AES-256-CBC", AESIV: "00112233445566778899aabbccddeeff"},
		"GCM": {PBKDF2Salt: "7ccf40ce398f0fb475fe91043f7dce57", PBKDF2Iterations: 4000, PBKDF2HashFunction: "SHA256",
			PBKDF2Phase1KeyLength: 16, PBKDF2Phase2KeyLength: 32, AESCipher: "AES-256-GCM", AESIV: "7c69a5e81e53ba05213b35bb", AESAuthData: "c0ffee"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testPrepared(t, pin, passphrase, alg, bio, user)

			partial, err := PINSigner{}.Sign(context.Background(), Secret(pin), p)
			if err != nil {
				t.Fatal(err)
			}
			if len(partial.Signatures) != len(p.Inputs) {
				t.Fatalf("%d signatures, want one per input", len(partial.Signatures))
			}
			var unsigned wire.MsgTx
			if err := unsigned.Deserialize(hex.NewDecoder(strings.NewReader(partial.TxHex))); err != nil {
				t.Fatal(err)
			}
			p.ExpectedUnsignedTxID = unsigned.TxHash().String()
			if again, err := (PINSigner{}).Sign(context.Background(), Secret(pin), p); err != nil || again.TxHex != partial.TxHex {
				t.Fatalf("with the expected txid: %v", err)
			}
			if _, err := (PINSigner{}).Sign(context.Background(), Secret(pin+"!"), p); !errors.Is(err, ErrWrongPIN) {
				t.Fatalf("wrong PIN: %v, want ErrWrongPIN", err)
			}
			if _, err := (PINSigner{}).Sign(context.Background(), "", p); !errors.Is(err, chainsync.ErrUnavailable) {
				t.Fatalf("no PIN: %v, want chainsync.ErrUnavailable", err)
			}

			// block.io's part: its signature too, then the scripts must run.
			full, err := signPrepared(p, bio, user)
			if err != nil {
				t.Fatal(err)
			}
			if full.Signatures != nil {
				t.Fatalf("complete transaction with %d signatures left", len(full.Signatures))
			}
			var tx wire.MsgTx
			if err := tx.Deserialize(hex.NewDecoder(strings.NewReader(full.TxHex))); err != nil {
				t.Fatal(err)
			}
			if !tx.HasWitness() || len(tx.TxIn[0].SignatureScript) == 0 {
				t.Fatal("transaction not signed")
			}
			fetcher := txscript.NewMultiPrevOutFetcher(nil)
			prev := make([]*wire.TxOut, len(p.Inputs))
			for i, in := range p.Inputs {
				s, err := newSpend(networkAddresses["BTCTEST"], p.InputAddressData[i], 0)
				if err != nil {
					t.Fatal(err)
				}
				v, _ := ParseAmount(in.InputValue)
				prev[i] = wire.NewTxOut(v, s.prevScript)
				fetcher.AddPrevOut(tx.TxIn[i].PreviousOutPoint, prev[i])
			}
			hashes := txscript.NewTxSigHashes(&tx, fetcher)
			for i := range tx.TxIn {
				vm, err := txscript.NewEngine(prev[i].PkScript, &tx, i, txscript.StandardVerifyFlags, nil, hashes, prev[i].Value, fetcher)
				if err != nil {
					t.Fatal(err)
				}
				if err := vm.Execute(); err != nil {
					t.Fatalf("input %d (%s): %v", i, p.InputAddressData[i].AddressType, err)
				}
				// The wallet's partial signature is the one in the script.
				in := bytes.Join(append(tx.TxIn[i].Witness, tx.TxIn[i].SignatureScript), nil)
				sig := mustHex(t, partial.Signatures[i].Signature)
				if partial.Signatures[i].PublicKey != pubHex(user) || !bytes.Contains(in, append(sig, byte(txscript.SigHashAll))) {
					t.Fatalf("input %d: the wallet's signature is not in the signed input", i)
				}
			}

			// An input of someone else's multisig is refused.
			addr := multisigAddress(t, AddressWitnessV0, bio, stranger)
			p.Inputs = append(p.Inputs, PreparedInput{InputIndex: 3, PreviousTxID: p.Inputs[0].PreviousTxID, InputValue: "0.00010000", SpendingAddress: addr})
			p.InputAddressData = append(p.InputAddressData, InputAddress{Address: addr, AddressType: AddressWitnessV0, RequiredSignatures: 2, PublicKeys: []string{pubHex(bio), pubHex(stranger)}})
			p.ExpectedUnsignedTxID = ""
			if _, err := (PINSigner{}).Sign(context.Background(), Secret(pin), p); !errors.Is(err, chainsync.ErrRejected) {
				t.Fatalf("input without the wallet's key: %v, want chainsync.ErrRejected", err)
			}
		})
	}
}
