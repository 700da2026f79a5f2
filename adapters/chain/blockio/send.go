package blockio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/coinledger/coinledger/app/chainsync"
)

// Output categories of a prepared transaction.
const (
	CategoryUserSpecified = "user-specified"
	CategoryChange        = "change"
	CategoryBlockioFee    = "blockio-fee"
)

// feeRounds bounds the prepare_transaction calls of a send that subtracts
// its fee.
const feeRounds = 3

// PreparedTx is the data of block.io's prepare_transaction answer: the
// unsigned transaction block.io built (inputs and outputs) and what a
// signer needs to sign it. Amounts are block.io's decimal strings.
type PreparedTx struct {
	Network          string           `json:"network"`
	TxType           string           `json:"tx_type"`
	Inputs           []PreparedInput  `json:"inputs"`
	Outputs          []PreparedOutput `json:"outputs"`
	InputAddressData []InputAddress   `json:"input_address_data"`
	// UserKey is the wallet's key, encrypted with a key derived from the
	// PIN.
	UserKey              *UserKey `json:"user_key,omitempty"`
	ExpectedUnsignedTxID string   `json:"expected_unsigned_txid,omitempty"`
	// Raw is the data object as block.io sent it (fields this package
	// does not name included).
	Raw json.RawMessage `json:"-"`
}

// PreparedInput is an output of an earlier transaction the send spends.
type PreparedInput struct {
	InputIndex          int    `json:"input_index"`
	PreviousTxID        string `json:"previous_txid"`
	PreviousOutputIndex uint32 `json:"previous_output_index"`
	InputValue          string `json:"input_value"`
	SpendingAddress     string `json:"spending_address"`
}

// PreparedOutput is an output of the send.
type PreparedOutput struct {
	OutputIndex      int    `json:"output_index"`
	OutputCategory   string `json:"output_category"`
	OutputValue      string `json:"output_value"`
	ReceivingAddress string `json:"receiving_address"`
}

// InputAddress describes an address the inputs spend from.
type InputAddress struct {
	Address            string   `json:"address"`
	AddressType        string   `json:"address_type"`
	RequiredSignatures int      `json:"required_signatures"`
	PublicKeys         []string `json:"public_keys"`
}

// UserKey is the wallet's signing key as block.io keeps it: the
// passphrase the key derives from, encrypted with a key derived from the
// PIN (see PINSigner).
type UserKey struct {
	PublicKey           string `json:"public_key"`
	EncryptedPassphrase string `json:"encrypted_passphrase"`
	// Algorithm is how the passphrase was encrypted; nil: block.io's
	// legacy one (PBKDF2 of 2048 iterations without salt, AES-256-ECB).
	Algorithm *KeyAlgorithm `json:"algorithm,omitempty"`
}

// SignedTx is submit_transaction's transaction_data: the transaction in
// hex and, when block.io still has to add its own signatures, the
// wallet's (Signatures is null when the transaction is fully signed).
type SignedTx struct {
	TxType     string      `json:"tx_type"`
	TxHex      string      `json:"tx_hex"`
	Signatures []Signature `json:"signatures"`
}

// Signature is the wallet's signature of one input.
type Signature struct {
	InputIndex int    `json:"input_index"`
	PublicKey  string `json:"public_key"`
	Signature  string `json:"signature"`
}

// Signer creates and signs the transaction block.io prepared, client-side
// (block.io never sees the wallet's key). pin is Config.PIN, which
// decrypts tx.UserKey. The Backend has checked tx's outputs before; the
// signer must check that its transaction matches tx (ExpectedUnsignedTxID).
// An error sends nothing: one wrapping a chain sentinel is passed on, any
// other becomes chainsync.ErrUnavailable. Implementations must be safe for
// concurrent use.
type Signer interface {
	Sign(ctx context.Context, pin Secret, tx PreparedTx) (SignedTx, error)
}

// Send pays amount minor units to address (out of amount when subtractFee)
// through prepare_transaction, the Signer and submit_transaction; see the
// package documentation for the checks and the errors.
func (b *Backend) Send(ctx context.Context, address string, amount int64, subtractFee bool) (chainsync.Sent, error) {
	op := fmt.Sprintf("blockio send %s to %s", FormatAmount(amount), address)
	if amount <= 0 {
		return chainsync.Sent{}, fmt.Errorf("%s: %w: amount must be positive", op, chainsync.ErrRejected)
	}
	if address == "" || strings.ContainsAny(address, ", \t\r\n") {
		return chainsync.Sent{}, fmt.Errorf("%s: %w: invalid address", op, chainsync.ErrRejected)
	}

	value := amount
	if subtractFee {
		fee, err := b.estimateFee(ctx, address, amount)
		if err != nil {
			return chainsync.Sent{}, fmt.Errorf("%s: %w", op, err)
		}
		value = amount - fee
	}
	var (
		prepared PreparedTx
		fee      int64
	)
	for round := 1; ; round++ {
		if value <= 0 {
			return chainsync.Sent{}, fmt.Errorf("%s: %w: the network fee takes the whole amount", op, chainsync.ErrRejected)
		}
		var err error
		if prepared, err = b.prepare(ctx, address, value); err != nil {
			return chainsync.Sent{}, fmt.Errorf("%s: %w", op, err)
		}
		if fee, err = b.checkPrepared(ctx, prepared, address, value); err != nil {
			return chainsync.Sent{}, fmt.Errorf("%s: %w", op, err)
		}
		if !subtractFee || value+fee == amount {
			break
		}
		if round == feeRounds {
			return chainsync.Sent{}, fmt.Errorf("%s: %w: the network fee did not settle (%s last)", op, chainsync.ErrRejected, FormatAmount(fee))
		}
		value = amount - fee
	}

	signed, err := b.signer.Sign(ctx, b.cfg.PIN, prepared)
	if err != nil {
		err = b.redactErr(err)
		if !errors.Is(err, chainsync.ErrRejected) && !errors.Is(err, chainsync.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", chainsync.ErrUnavailable, err)
		}
		return chainsync.Sent{}, fmt.Errorf("%s: sign: %w", op, err)
	}
	var d struct {
		TxID string `json:"txid"`
	}
	if err := b.call(ctx, "submit_transaction", map[string]any{"transaction_data": signed}, &d); err != nil {
		return chainsync.Sent{}, fmt.Errorf("%s: %w", op, classifySubmit(err))
	}
	txid, ok := parseHash(d.TxID)
	if !ok {
		return chainsync.Sent{}, fmt.Errorf("%s: %w: %w: txid %q", op, chainsync.ErrAmbiguous, ErrMalformed, d.TxID)
	}
	return chainsync.Sent{TxID: txid, Fee: fee}, nil
}

// redactErr keeps an error (a signer's) but removes the credentials from
// its text.
func (b *Backend) redactErr(err error) error {
	if msg := err.Error(); b.redact(msg) != msg {
		return redactedError{msg: b.redact(msg), err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

// estimateFee asks block.io what sending value to address would cost.
func (b *Backend) estimateFee(ctx context.Context, address string, value int64) (int64, error) {
	var d struct {
		EstimatedNetworkFee amount `json:"estimated_network_fee"`
	}
	params := map[string]any{"amounts": FormatAmount(value), "to_addresses": address}
	if err := b.call(ctx, "get_network_fee_estimate", params, &d); err != nil {
		return 0, fmt.Errorf("fee estimate: %w", classify(err, chainsync.ErrRejected))
	}
	return int64(d.EstimatedNetworkFee), nil
}

// prepare asks block.io to build the transaction.
func (b *Backend) prepare(ctx context.Context, address string, value int64) (PreparedTx, error) {
	var raw json.RawMessage
	params := map[string]any{"to_address": address, "amounts": FormatAmount(value)}
	if err := b.call(ctx, "prepare_transaction", params, &raw); err != nil {
		return PreparedTx{}, fmt.Errorf("prepare: %w", classify(err, chainsync.ErrRejected))
	}
	var p PreparedTx
	if err := json.Unmarshal(raw, &p); err != nil {
		return PreparedTx{}, fmt.Errorf("prepare: %w: %w: %s", chainsync.ErrUnavailable, ErrMalformed, b.redact(err.Error()))
	}
	p.Raw = raw
	return p, nil
}

// checkPrepared checks that p pays value to address and nothing else
// leaves the wallet but the network fee, which it returns. A prepared
// transaction that does anything else is refused (chainsync.ErrRejected).
func (b *Backend) checkPrepared(ctx context.Context, p PreparedTx, address string, value int64) (int64, error) {
	reject := func(format string, args ...any) (int64, error) {
		return 0, fmt.Errorf("prepared transaction: %w: "+format, append([]any{chainsync.ErrRejected}, args...)...)
	}
	if !strings.EqualFold(p.Network, b.cfg.Network) {
		return reject("network %q, want %s", p.Network, b.cfg.Network)
	}
	if len(p.Inputs) == 0 {
		return reject("no inputs")
	}
	var in, out int64
	var own []string
	for _, i := range p.Inputs {
		v, err := ParseAmount(i.InputValue)
		if err != nil {
			return reject("input %d: %v", i.InputIndex, err)
		}
		in += v
		own = append(own, i.SpendingAddress)
	}
	paid := 0
	for _, o := range p.Outputs {
		v, err := ParseAmount(o.OutputValue)
		if err != nil {
			return reject("output %d: %v", o.OutputIndex, err)
		}
		out += v
		switch o.OutputCategory {
		case CategoryUserSpecified:
			if o.ReceivingAddress != address || v != value {
				return reject("output %d pays %s to %s, want %s to %s", o.OutputIndex, FormatAmount(v), o.ReceivingAddress, FormatAmount(value), address)
			}
			paid++
		case CategoryChange:
			own = append(own, o.ReceivingAddress)
		case CategoryBlockioFee:
			return reject("output %d pays block.io a fee of %s", o.OutputIndex, FormatAmount(v))
		default:
			return reject("output %d of unknown category %q", o.OutputIndex, o.OutputCategory)
		}
	}
	if paid != 1 {
		return reject("%d outputs pay the address, want 1", paid)
	}
	if in < out {
		return reject("outputs (%s) exceed inputs (%s)", FormatAmount(out), FormatAmount(in))
	}
	ours, err := b.ownAddresses(ctx, own)
	if err != nil {
		return 0, err
	}
	for _, a := range own {
		if !ours[a] {
			return reject("address %s of the inputs or the change is not the wallet's", a)
		}
	}
	return in - out, nil
}
