package btcnode

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/txscript"
	"github.com/btcsuite/btcd/wire"
)

const (
	// PayFee is the fee of every transaction Pay makes (satoshis): more
	// than btcd's relay minimum for up to maxInputs inputs.
	PayFee = 10_000
	// maxInputs bounds the inputs of one Pay transaction.
	maxInputs = 50
	// dust is the smallest change output Pay makes; less goes to the fee.
	dust = 546
	// coinbaseMaturity: a coinbase output can be spent in the block 100
	// blocks above its own.
	coinbaseMaturity = 100
)

// coin is an unspent output paying the harness's key.
type coin struct {
	op    wire.OutPoint
	value int64
	// height of the block of a coinbase output; 0 for the change of a Pay
	// transaction, spendable at once.
	height int64
}

// Mine mines blocks on btcd (coinbases to the harness's key) and returns
// once the wallet, when running, has caught up with them.
func (n *Node) Mine(tb testing.TB, blocks int) {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.generate(blocks); err != nil {
		tb.Fatalf("btcnode: mine %d: %v", blocks, err)
	}
	if n.wallet == nil {
		return
	}
	if err := n.waitSynced(); err != nil {
		tb.Fatalf("btcnode: mine %d: %v", blocks, err)
	}
}

// generate mines blocks and records their coinbase outputs.
func (n *Node) generate(blocks int) error {
	ctx := context.Background()
	var hashes []string
	if err := n.btcdRPC.call(ctx, "generate", &hashes, blocks); err != nil {
		return err
	}
	var tip int64
	if err := n.btcdRPC.call(ctx, "getblockcount", &tip); err != nil {
		return err
	}
	for i, h := range hashes {
		var raw string
		if err := n.btcdRPC.call(ctx, "getblock", &raw, h, 0); err != nil {
			return err
		}
		b, err := hex.DecodeString(raw)
		if err != nil {
			return fmt.Errorf("block %s: %w", h, err)
		}
		var block wire.MsgBlock
		if err := block.Deserialize(bytes.NewReader(b)); err != nil {
			return fmt.Errorf("block %s: %w", h, err)
		}
		cb := block.Transactions[0]
		for vout, out := range cb.TxOut {
			if bytes.Equal(out.PkScript, n.script) {
				n.coins = append(n.coins, coin{
					op:     wire.OutPoint{Hash: cb.TxHash(), Index: uint32(vout)},
					value:  out.Value,
					height: tip - int64(len(hashes)-1-i),
				})
			}
		}
	}
	return nil
}

// Pay sends amount satoshis from the harness's key to address (any simnet
// address) with a transaction it signs itself, fee PayFee, and returns the
// txid. The transaction is in btcd's mempool when Pay returns and, if
// address belongs to the running wallet, the wallet knows it
// (gettransaction answers). Pay fails the test when the harness's mature
// coins do not cover amount+PayFee (mine more blocks).
func (n *Node) Pay(tb testing.TB, address string, amount int64) string {
	tb.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	txid, err := n.pay(address, amount)
	if err != nil {
		tb.Fatalf("btcnode: pay %d to %s: %v", amount, address, err)
	}
	if n.wallet == nil {
		return txid
	}
	var v struct {
		IsMine bool `json:"ismine"`
	}
	if err := n.walletRPC.call(context.Background(), "validateaddress", &v, address); err != nil {
		tb.Fatalf("btcnode: pay %d to %s: %v", amount, address, err)
	}
	if !v.IsMine {
		return txid
	}
	err = n.poll(n.wallet, "btcwallet to see "+txid, func(ctx context.Context) (bool, error) {
		return n.walletRPC.call(ctx, "gettransaction", nil, txid) == nil, nil
	})
	if err != nil {
		tb.Fatalf("btcnode: pay %d to %s: %v", amount, address, err)
	}
	return txid
}

// pay builds, signs and broadcasts the payment.
func (n *Node) pay(address string, amount int64) (string, error) {
	ctx := context.Background()
	dest, err := btcutil.DecodeAddress(address, n.params)
	if err != nil || !dest.IsForNet(n.params) {
		return "", fmt.Errorf("not a simnet address")
	}
	destScript, err := txscript.PayToAddrScript(dest)
	if err != nil {
		return "", err
	}
	if amount < dust {
		return "", fmt.Errorf("amount below the dust limit (%d)", dust)
	}
	var tip int64
	if err := n.btcdRPC.call(ctx, "getblockcount", &tip); err != nil {
		return "", err
	}
	// Largest mature coins first.
	slices.SortStableFunc(n.coins, func(a, b coin) int { return cmp.Compare(b.value, a.value) })
	var picked []int
	var sum int64
	for i, c := range n.coins {
		if sum >= amount+PayFee || len(picked) == maxInputs {
			break
		}
		if c.height == 0 || tip+1-c.height >= coinbaseMaturity {
			picked = append(picked, i)
			sum += c.value
		}
	}
	if sum < amount+PayFee {
		return "", fmt.Errorf("the harness has %d satoshis in %d mature coins, %d needed: mine more blocks",
			sum, len(picked), amount+PayFee)
	}
	tx := wire.NewMsgTx(2)
	for _, i := range picked {
		tx.AddTxIn(wire.NewTxIn(&n.coins[i].op, nil, nil))
	}
	tx.AddTxOut(wire.NewTxOut(amount, destScript))
	change := sum - amount - PayFee
	if change >= dust {
		tx.AddTxOut(wire.NewTxOut(change, n.script))
	}
	for i := range tx.TxIn {
		sig, err := txscript.SignatureScript(tx, i, n.script, txscript.SigHashAll, n.key, true)
		if err != nil {
			return "", err
		}
		tx.TxIn[i].SignatureScript = sig
	}
	var buf bytes.Buffer
	if err := tx.Serialize(&buf); err != nil {
		return "", err
	}
	var txid string
	if err := n.btcdRPC.call(ctx, "sendrawtransaction", &txid, hex.EncodeToString(buf.Bytes())); err != nil {
		return "", err
	}
	n.coins = slices.DeleteFunc(n.coins, func(c coin) bool {
		return slices.ContainsFunc(tx.TxIn, func(in *wire.TxIn) bool { return in.PreviousOutPoint == c.op })
	})
	if change >= dust {
		n.coins = append(n.coins, coin{op: wire.OutPoint{Hash: tx.TxHash(), Index: 1}, value: change})
	}
	return txid, nil
}

// FundWallet pays amount satoshis to a new address of the wallet and mines
// a block, so the wallet holds that much more in confirmed coins it can
// send. It returns the txid of the payment.
func (n *Node) FundWallet(tb testing.TB, amount int64) string {
	tb.Helper()
	var addr string
	if err := n.walletRPC.call(context.Background(), "getnewaddress", &addr); err != nil {
		tb.Fatalf("btcnode: fund wallet: %v", err)
	}
	txid := n.Pay(tb, addr, amount)
	n.Mine(tb, 1)
	return txid
}

// ExternalAddress returns a new simnet address outside the wallet (of a
// throw-away key: what is paid to it is lost to the test).
func (n *Node) ExternalAddress(tb testing.TB) string {
	tb.Helper()
	key, err := btcec.NewPrivateKey()
	if err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	addr, err := btcutil.NewAddressPubKeyHash(btcutil.Hash160(key.PubKey().SerializeCompressed()), n.params)
	if err != nil {
		tb.Fatalf("btcnode: %v", err)
	}
	return addr.EncodeAddress()
}

// AmountTo returns the satoshis transaction txid (in btcd's mempool or
// chain) pays to address, 0 when it pays nothing there.
func (n *Node) AmountTo(tb testing.TB, txid, address string) int64 {
	tb.Helper()
	dest, err := btcutil.DecodeAddress(address, n.params)
	if err != nil {
		tb.Fatalf("btcnode: amount to %s: %v", address, err)
	}
	script, err := txscript.PayToAddrScript(dest)
	if err != nil {
		tb.Fatalf("btcnode: amount to %s: %v", address, err)
	}
	var raw string
	if err := n.btcdRPC.call(context.Background(), "getrawtransaction", &raw, txid, 0); err != nil {
		tb.Fatalf("btcnode: amount to %s: %v", address, err)
	}
	b, err := hex.DecodeString(raw)
	if err != nil {
		tb.Fatalf("btcnode: amount to %s: %v", address, err)
	}
	var tx wire.MsgTx
	if err := tx.Deserialize(bytes.NewReader(b)); err != nil {
		tb.Fatalf("btcnode: amount to %s: %v", address, err)
	}
	var sum int64
	for _, out := range tx.TxOut {
		if bytes.Equal(out.PkScript, script) {
			sum += out.Value
		}
	}
	return sum
}
