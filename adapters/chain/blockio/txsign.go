package blockio

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/coinledger/coinledger/app/chainsync"
)

// Address types of prepare_transaction's input_address_data.
const (
	AddressP2SH           = "P2SH"             // multisig, legacy
	AddressP2WSHOverP2SH  = "P2WSH-over-P2SH"  // multisig, segwit nested in P2SH
	AddressWitnessV0      = "WITNESS_V0"       // multisig, native segwit (P2WSH)
	AddressP2PKH          = "P2PKH"            // one key, legacy (sweeps)
	AddressP2WPKHOverP2SH = "P2WPKH-over-P2SH" // one key, segwit nested in P2SH (sweeps)
	AddressP2WPKH         = "P2WPKH"           // one key, native segwit (sweeps)
)

// addressParams are a network's address prefixes, as block.io's libraries
// define them.
type addressParams struct {
	p2pkh, p2sh byte
	hrp         string // segwit (bech32) human-readable part
}

var networkAddresses = map[string]addressParams{
	"BTC":      {p2pkh: 0x00, p2sh: 0x05, hrp: "bc"},
	"BTCTEST":  {p2pkh: 0x6f, p2sh: 0xc4, hrp: "tb"},
	"LTC":      {p2pkh: 0x30, p2sh: 0x32, hrp: "ltc"},
	"LTCTEST":  {p2pkh: 0x6f, p2sh: 0x3a, hrp: "tltc"},
	"DOGE":     {p2pkh: 0x1e, p2sh: 0x16, hrp: "doge"},
	"DOGETEST": {p2pkh: 0x71, p2sh: 0xc4, hrp: "tdge"},
}

// outputScript is the script an address of the network is paid with:
// P2PKH and P2SH (base58check), witness version 0 (bech32, 20 or 32 bytes)
// and 1 (bech32m), as block.io's libraries accept.
func (n addressParams) outputScript(address string) ([]byte, error) {
	if i := strings.LastIndexByte(address, '1'); i > 0 && strings.EqualFold(address[:i], n.hrp) {
		_, data, variant, err := bech32.DecodeGeneric(address)
		if err != nil || len(data) == 0 {
			return nil, fmt.Errorf("invalid segwit address %s", address)
		}
		version := data[0]
		program, err := bech32.ConvertBits(data[1:], 5, 8, false)
		if err != nil {
			return nil, fmt.Errorf("invalid segwit address %s", address)
		}
		switch {
		case version == 0 && variant == bech32.Version0 && (len(program) == 20 || len(program) == 32):
			return witnessProgram(txscript.OP_0, program), nil
		case version == 1 && variant == bech32.VersionM && len(program) >= 2 && len(program) <= 40:
			return witnessProgram(txscript.OP_1, program), nil
		default:
			return nil, fmt.Errorf("unsupported segwit address %s (witness version %d)", address, version)
		}
	}
	payload, version, err := base58.CheckDecode(address)
	if err != nil || len(payload) != 20 {
		return nil, fmt.Errorf("invalid address %s", address)
	}
	switch version {
	case n.p2sh:
		return p2shScript(payload), nil
	case n.p2pkh:
		return p2pkhScript(payload), nil
	default:
		return nil, fmt.Errorf("address %s is not of the network", address)
	}
}

func witnessProgram(version byte, program []byte) []byte {
	return append([]byte{version, byte(len(program))}, program...)
}

func p2shScript(hash160 []byte) []byte {
	return slices.Concat([]byte{txscript.OP_HASH160, 20}, hash160, []byte{txscript.OP_EQUAL})
}

func p2pkhScript(hash160 []byte) []byte {
	return slices.Concat([]byte{txscript.OP_DUP, txscript.OP_HASH160, 20}, hash160, []byte{txscript.OP_EQUALVERIFY, txscript.OP_CHECKSIG})
}

// spend is what signing one input needs.
type spend struct {
	addressType string
	required    int
	pubKeys     [][]byte // compressed, in block.io's order
	script      []byte   // signed over: the multisig script, or P2PKH for one key
	prevScript  []byte   // the spent output's script
	value       int64
	witness     bool
}

// newSpend checks an input's address data against its spending address.
func newSpend(n addressParams, a InputAddress, value int64) (spend, error) {
	s := spend{addressType: a.AddressType, required: a.RequiredSignatures, value: value}
	for _, h := range a.PublicKeys {
		pk, err := hex.DecodeString(h)
		if err != nil || len(pk) != 33 {
			return spend{}, fmt.Errorf("public key %q is not a compressed key", h)
		}
		if _, err := btcec.ParsePubKey(pk); err != nil {
			return spend{}, fmt.Errorf("public key %q: %v", h, err)
		}
		s.pubKeys = append(s.pubKeys, pk)
	}
	switch a.AddressType {
	case AddressP2SH, AddressP2WSHOverP2SH, AddressWitnessV0:
		if s.required < 1 || s.required > len(s.pubKeys) || len(s.pubKeys) > 16 {
			return spend{}, fmt.Errorf("%d of %d signatures is not a multisig", s.required, len(s.pubKeys))
		}
		b := txscript.NewScriptBuilder().AddInt64(int64(s.required))
		for _, pk := range s.pubKeys {
			b.AddData(pk)
		}
		script, err := b.AddInt64(int64(len(s.pubKeys))).AddOp(txscript.OP_CHECKMULTISIG).Script()
		if err != nil {
			return spend{}, fmt.Errorf("multisig script: %v", err)
		}
		s.script = script
		wsh := sha256.Sum256(script)
		switch a.AddressType {
		case AddressP2SH:
			s.prevScript = p2shScript(btcutil.Hash160(script))
		case AddressP2WSHOverP2SH:
			s.prevScript, s.witness = p2shScript(btcutil.Hash160(witnessProgram(txscript.OP_0, wsh[:]))), true
		default:
			s.prevScript, s.witness = witnessProgram(txscript.OP_0, wsh[:]), true
		}
	case AddressP2PKH, AddressP2WPKHOverP2SH, AddressP2WPKH:
		if len(s.pubKeys) != 1 {
			return spend{}, fmt.Errorf("%d public keys, want 1", len(s.pubKeys))
		}
		s.required = 1
		h := btcutil.Hash160(s.pubKeys[0])
		s.script = p2pkhScript(h)
		switch a.AddressType {
		case AddressP2PKH:
			s.prevScript = s.script
		case AddressP2WPKHOverP2SH:
			s.prevScript, s.witness = p2shScript(btcutil.Hash160(witnessProgram(txscript.OP_0, h))), true
		default:
			s.prevScript, s.witness = witnessProgram(txscript.OP_0, h), true
		}
	default:
		return spend{}, fmt.Errorf("unknown address type %q", a.AddressType)
	}
	want, err := n.outputScript(a.Address)
	if err != nil {
		return spend{}, err
	}
	if !bytes.Equal(want, s.prevScript) {
		return spend{}, fmt.Errorf("address %s is not the %s address of its public keys", a.Address, a.AddressType)
	}
	return s, nil
}

// signPrepared builds the transaction p describes and signs each input
// with those of keys among its public keys, as block.io's libraries'
// create_and_sign_transaction does: complete when the keys meet every
// input's required signatures, else unsigned with the signatures. Every
// input must get a signature. Errors wrap chainsync.ErrRejected.
func signPrepared(p PreparedTx, keys ...*btcec.PrivateKey) (SignedTx, error) {
	reject := func(format string, args ...any) (SignedTx, error) {
		return SignedTx{}, fmt.Errorf("%w: prepared transaction: "+format, append([]any{chainsync.ErrRejected}, args...)...)
	}
	n, ok := networkAddresses[strings.ToUpper(p.Network)]
	if !ok {
		return reject("unknown network %q", p.Network)
	}
	if len(p.Inputs) == 0 || len(p.Outputs) == 0 {
		return reject("%d inputs and %d outputs", len(p.Inputs), len(p.Outputs))
	}
	addresses := map[string]InputAddress{}
	for _, a := range p.InputAddressData {
		addresses[a.Address] = a
	}
	ours := map[string]*btcec.PrivateKey{}
	for _, k := range keys {
		ours[string(k.PubKey().SerializeCompressed())] = k
	}

	tx := wire.NewMsgTx(1)
	prevOuts := txscript.NewMultiPrevOutFetcher(nil)
	spends := make([]spend, len(p.Inputs))
	for i, in := range p.Inputs {
		if in.InputIndex != i {
			return reject("input %d has index %d", i, in.InputIndex)
		}
		txid, err := hex.DecodeString(in.PreviousTxID)
		if err != nil || len(txid) != 32 {
			return reject("input %d: previous txid %q", i, in.PreviousTxID)
		}
		value, err := ParseAmount(in.InputValue)
		if err != nil {
			return reject("input %d: %v", i, err)
		}
		a, ok := addresses[in.SpendingAddress]
		if !ok {
			return reject("input %d: no address data for %s", i, in.SpendingAddress)
		}
		if spends[i], err = newSpend(n, a, value); err != nil {
			return reject("input %d: %v", i, err)
		}
		var op wire.OutPoint
		slices.Reverse(txid) // txids are shown byte-reversed
		copy(op.Hash[:], txid)
		op.Index = in.PreviousOutputIndex
		tx.AddTxIn(wire.NewTxIn(&op, nil, nil))
		prevOuts.AddPrevOut(op, wire.NewTxOut(value, spends[i].prevScript))
	}
	for i, out := range p.Outputs {
		if out.OutputIndex != i {
			return reject("output %d has index %d", i, out.OutputIndex)
		}
		value, err := ParseAmount(out.OutputValue)
		if err != nil {
			return reject("output %d: %v", i, err)
		}
		script, err := n.outputScript(out.ReceivingAddress)
		if err != nil {
			return reject("output %d: %v", i, err)
		}
		tx.AddTxOut(wire.NewTxOut(value, script))
	}
	if p.ExpectedUnsignedTxID != "" && !strings.EqualFold(tx.TxHash().String(), p.ExpectedUnsignedTxID) {
		return reject("built with txid %s, block.io expects %s", tx.TxHash(), p.ExpectedUnsignedTxID)
	}
	unsigned, err := serialize(tx)
	if err != nil {
		return SignedTx{}, err
	}

	// Sign everything first: the sighashes are of the unsigned transaction.
	sigHashes := txscript.NewTxSigHashes(tx, prevOuts)
	complete := true
	var sigs []Signature
	ders := make([][][]byte, len(spends)) // per input, in public key order
	for i, s := range spends {
		var hash []byte
		for _, pk := range s.pubKeys {
			key := ours[string(pk)]
			if key == nil {
				continue
			}
			if hash == nil {
				if s.witness {
					hash, err = txscript.CalcWitnessSigHash(s.script, sigHashes, txscript.SigHashAll, tx, i, s.value)
				} else {
					hash, err = txscript.CalcSignatureHash(s.script, txscript.SigHashAll, tx, i)
				}
				if err != nil {
					return reject("input %d: sighash: %v", i, err)
				}
			}
			der, err := signLowR(key, hash)
			if err != nil {
				return SignedTx{}, fmt.Errorf("%w: input %d: %w", chainsync.ErrUnavailable, i, err)
			}
			ders[i] = append(ders[i], der)
			sigs = append(sigs, Signature{InputIndex: i, PublicKey: hex.EncodeToString(pk), Signature: hex.EncodeToString(der)})
		}
		if len(ders[i]) == 0 {
			return reject("input %d: none of the keys of %s is the wallet's", i, p.Inputs[i].SpendingAddress)
		}
		complete = complete && len(ders[i]) >= s.required
	}
	if !complete {
		return SignedTx{TxType: p.TxType, TxHex: unsigned, Signatures: sigs}, nil
	}

	for i, s := range spends {
		if err := finish(tx.TxIn[i], s, ders[i][:s.required]); err != nil {
			return reject("input %d: %v", i, err)
		}
	}
	signed, err := serialize(tx)
	if err != nil {
		return SignedTx{}, err
	}
	return SignedTx{TxType: p.TxType, TxHex: signed}, nil
}

// finish puts the signatures (DER, in public key order) into the input's
// script and witness.
func finish(in *wire.TxIn, s spend, ders [][]byte) error {
	var stack [][]byte
	if s.addressType == AddressP2SH || s.addressType == AddressP2WSHOverP2SH || s.addressType == AddressWitnessV0 {
		stack = append(stack, []byte{}) // CHECKMULTISIG pops one extra item
	}
	for _, der := range ders {
		stack = append(stack, append(slices.Clone(der), byte(txscript.SigHashAll)))
	}
	if s.addressType == AddressP2PKH || s.addressType == AddressP2WPKHOverP2SH || s.addressType == AddressP2WPKH {
		stack = append(stack, s.pubKeys[0])
	} else {
		stack = append(stack, s.script)
	}

	var err error
	switch s.addressType {
	case AddressP2SH, AddressP2PKH:
		b := txscript.NewScriptBuilder()
		for _, item := range stack {
			b.AddData(item)
		}
		in.SignatureScript, err = b.Script()
	case AddressWitnessV0, AddressP2WPKH:
		in.Witness = stack
	case AddressP2WSHOverP2SH:
		in.Witness = stack
		wsh := sha256.Sum256(s.script)
		in.SignatureScript, err = txscript.NewScriptBuilder().AddData(witnessProgram(txscript.OP_0, wsh[:])).Script()
	case AddressP2WPKHOverP2SH:
		in.Witness = stack
		in.SignatureScript, err = txscript.NewScriptBuilder().AddData(witnessProgram(txscript.OP_0, btcutil.Hash160(s.pubKeys[0]))).Script()
	}
	return err
}

func serialize(tx *wire.MsgTx) (string, error) {
	var buf bytes.Buffer
	buf.Grow(tx.SerializeSize())
	if err := tx.Serialize(&buf); err != nil {
		return "", fmt.Errorf("%w: serialize transaction: %v", chainsync.ErrUnavailable, err)
	}
	return hex.EncodeToString(buf.Bytes()), nil
}
