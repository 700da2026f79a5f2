package bitcoind

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"

	"github.com/coinledger/coinledger/app/chainsync"
)

// dustLimit: change below it is left to the fee (546 satoshis is the
// dust threshold of a P2PKH output at the 1 sat/vB relay minimum).
const dustLimit = 546

// unspent is an entry of listunspent.
type unspent struct {
	TxID      string      `json:"txid"`
	Vout      uint32      `json:"vout"`
	Amount    json.Number `json:"amount"`
	Spendable bool        `json:"spendable"`
	sats      int64
}

// outpoint is an input of createrawtransaction and lockunspent.
type outpoint struct {
	TxID string `json:"txid"`
	Vout uint32 `json:"vout"`
}

// sendBuilt pays amount minus the fee to address with a transaction built
// here (see Send): for wallets whose sendtoaddress cannot subtract the
// fee.
func (b *Backend) sendBuilt(ctx context.Context, address string, amount int64) (chainsync.Sent, error) {
	dest, err := btcutil.DecodeAddress(address, b.params)
	if err != nil || !dest.IsForNet(b.params) {
		return chainsync.Sent{}, fmt.Errorf("not a %s address: %w", b.cfg.Network, chainsync.ErrRejected)
	}
	destScript, err := txscript.PayToAddrScript(dest)
	if err != nil {
		return chainsync.Sent{}, fmt.Errorf("address: %w: %w", chainsync.ErrRejected, err)
	}

	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	picked, sum, err := b.pickCoins(ctx, amount)
	if err != nil {
		return chainsync.Sent{}, nothingSent(err)
	}
	inputs := make([]outpoint, len(picked))
	for i, u := range picked {
		inputs[i] = outpoint{TxID: u.TxID, Vout: u.Vout}
	}
	var locked bool
	if err := b.rpc.call(ctx, read, "lockunspent", &locked, false, inputs); err != nil {
		return chainsync.Sent{}, nothingSent(err)
	}
	handedOver := false
	defer func() {
		if !handedOver {
			// Best effort: the locks vanish when the wallet restarts anyway.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = b.rpc.call(ctx, read, "lockunspent", nil, true, inputs)
		}
	}()
	var change string
	if err := b.rpc.call(ctx, read, "getrawchangeaddress", &change); err != nil {
		return chainsync.Sent{}, nothingSent(err)
	}
	tx, signed, err := b.build(ctx, inputs, sum, address, destScript, amount, change)
	if err != nil {
		return chainsync.Sent{}, nothingSent(err)
	}
	var out int64
	for _, o := range tx.TxOut {
		out += o.Value
	}
	sent := chainsync.Sent{TxID: tx.TxHash().String(), Fee: sum - out}

	err = b.rpc.call(ctx, write, "sendrawtransaction", nil, signed)
	switch {
	case err == nil:
	case errors.Is(err, chainsync.ErrRejected):
		// btcwallet passes sendrawtransaction on to btcd and reports a
		// failure of that connection as an RPC error too: check.
		known, kerr := b.knows(ctx, sent.TxID)
		if kerr != nil {
			handedOver = true
			return sent, fmt.Errorf("%s: %w: %w (checking: %w)", sent.TxID, chainsync.ErrAmbiguous, err, kerr)
		}
		if !known {
			return chainsync.Sent{}, err
		}
	case errors.Is(err, chainsync.ErrAmbiguous):
		handedOver = true
		return sent, fmt.Errorf("%s: %w", sent.TxID, err)
	default:
		return chainsync.Sent{}, err
	}
	handedOver = true
	return sent, nil
}

// pickCoins returns the wallet's largest confirmed spendable coins until
// they cover amount.
func (b *Backend) pickCoins(ctx context.Context, amount int64) ([]unspent, int64, error) {
	var all []unspent
	if err := b.rpc.call(ctx, read, "listunspent", &all, 1, 9_999_999); err != nil {
		return nil, 0, err
	}
	spendable := all[:0]
	for _, u := range all {
		if !u.Spendable {
			continue
		}
		sats, err := satoshis(u.Amount)
		if err != nil {
			return nil, 0, fmt.Errorf("listunspent %s:%d: %w", u.TxID, u.Vout, err)
		}
		u.sats = sats
		spendable = append(spendable, u)
	}
	slices.SortFunc(spendable, func(a, b unspent) int {
		return cmp.Or(cmp.Compare(b.sats, a.sats), cmp.Compare(a.TxID, b.TxID), cmp.Compare(a.Vout, b.Vout))
	})
	var sum int64
	for i, u := range spendable {
		sum += u.sats
		if sum >= amount {
			return spendable[:i+1], sum, nil
		}
	}
	return nil, 0, fmt.Errorf("insufficient funds: %d satoshis spendable: %w", sum, chainsync.ErrRejected)
}

// build creates and signs the transaction spending inputs (worth sum):
// amount minus the fee to destScript, the rest to change. It signs once
// to learn the size, then again with the fee for that size (plus a byte
// per input, as signatures vary in length).
func (b *Backend) build(ctx context.Context, inputs []outpoint, sum int64, address string, destScript []byte, amount int64, change string) (*wire.MsgTx, string, error) {
	rest := sum - amount
	if rest < dustLimit {
		rest = 0
	}
	var fee int64
	for range 4 {
		pay := amount - fee
		if pay < dustLimit {
			return nil, "", fmt.Errorf("amount %d does not cover the fee %d: %w", amount, fee, chainsync.ErrRejected)
		}
		outputs := map[string]json.Number{address: coins(pay)}
		if rest > 0 {
			outputs[change] = coins(rest)
		}
		var unsigned string
		if err := b.rpc.call(ctx, read, "createrawtransaction", &unsigned, inputs, outputs); err != nil {
			return nil, "", err
		}
		var signed struct {
			Hex      string      `json:"hex"`
			Complete bool        `json:"complete"`
			Errors   []signError `json:"errors"`
		}
		if err := b.rpc.call(ctx, read, "signrawtransaction", &signed, unsigned); err != nil {
			return nil, "", err
		}
		if !signed.Complete {
			return nil, "", incomplete(signed.Errors)
		}
		tx, err := decodeTx(signed.Hex)
		if err != nil {
			return nil, "", err
		}
		vsize := (tx.SerializeSizeStripped()*3 + tx.SerializeSize() + 3) / 4
		if fee > 0 && fee >= b.feeFor(vsize) {
			if err := checkOutputs(tx, destScript, pay, rest); err != nil {
				return nil, "", err
			}
			return tx, signed.Hex, nil
		}
		fee = b.feeFor(vsize + len(inputs))
	}
	return nil, "", errors.New("the fee did not settle")
}

// feeFor is the fee of vsize virtual bytes at the configured rate.
func (b *Backend) feeFor(vsize int) int64 {
	return max(1, (int64(vsize)*b.cfg.FeeRate+999)/1000)
}

// checkOutputs makes sure the node built what was asked: one output of
// pay to destScript and, besides, exactly rest in change.
func checkOutputs(tx *wire.MsgTx, destScript []byte, pay, rest int64) error {
	var paid, other int64
	n := 0
	for _, o := range tx.TxOut {
		if bytes.Equal(o.PkScript, destScript) {
			paid += o.Value
			n++
		} else {
			other += o.Value
		}
	}
	if n != 1 || paid != pay || other != rest {
		return fmt.Errorf("createrawtransaction built outputs %d×%d to the recipient and %d else, want %d and %d",
			n, paid, other, pay, rest)
	}
	return nil
}

// knows reports whether the node has txid in its mempool or chain.
func (b *Backend) knows(ctx context.Context, txid string) (bool, error) {
	err := b.rpc.call(ctx, read, "getrawtransaction", nil, txid)
	if rpcErr := (*RPCError)(nil); errors.As(err, &rpcErr) && rpcErr.Code == codeInvalidAddressOrKey {
		return false, nil
	}
	return err == nil, err
}

func decodeTx(s string) (*wire.MsgTx, error) {
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("signed transaction: %w", err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("signed transaction: %w", err)
	}
	return &tx, nil
}

// signError is one input's error in signrawtransaction's reply.
type signError struct {
	Error string `json:"error"`
}

// incomplete is the error of a signature the wallet could not complete:
// ErrUnavailable when the wallet is locked (it signs once unlocked, by an
// operator or with Config.WalletPassphrase: nothing was sent, try again),
// else a plain error.
func incomplete(errs []signError) error {
	msgs := make([]string, len(errs))
	locked := false
	for i, e := range errs {
		msgs[i] = e.Error
		locked = locked || strings.Contains(strings.ToLower(e.Error), "locked")
	}
	err := fmt.Errorf("signrawtransaction: incomplete signature: %s", strings.Join(msgs, "; "))
	if locked {
		return fmt.Errorf("%w: %w", chainsync.ErrUnavailable, err)
	}
	return err
}
