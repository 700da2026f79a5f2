// Package bitcoind is the chainsync.Backend of bitcoind, its forks and
// btcd+btcwallet: it speaks bitcoind's wallet JSON-RPC over HTTP POST.
//
// The calls: getnewaddress; gettransaction (include_watchonly false) for
// Transaction, whose Received are the "receive" details, Fee the absolute
// top-level fee; getblockcount; listsinceblock; sendtoaddress, then
// gettransaction for the fee.
//
// Errors of Send tell the ledger whether the coins may have left:
//
//	chainsync.ErrUnavailable  nothing reached the node: refused, DNS, timed out
//	                      before the request was written, bad credentials
//	                      (HTTP 401), node warming up (-28), wallet locked (-13)
//	chainsync.ErrRejected     the node answered with an RPC error (-6 insufficient
//	                      funds, -5 invalid address, -3 invalid amount, ...)
//	chainsync.ErrAmbiguous    the request was written, then timeout, reset, HTTP
//	                      5xx without a JSON-RPC body, or an unreadable reply
//
// Other calls report any transport failure as chainsync.ErrUnavailable and
// error replies as *RPCError (gettransaction's -5 as chainsync.ErrTxNotFound).
// They go through btcd's rpcclient in HTTP POST mode, which re-sends a
// request that got no HTTP response until Config.Timeout (so a refused
// connection takes that long to report). The sends (sendtoaddress,
// sendrawtransaction) are posted exactly once by the package's own HTTP
// client, as a re-sent sendtoaddress would pay twice (see rpc.go).
//
// Amounts travel as decimal coin values and are read and written exactly
// (big.Rat, never float64); everything here is int64 satoshis.
//
// btcwallet differs from bitcoind, and the adapter hides it: its
// gettransaction of a send has amount 0 and one "send" detail without
// address, and a positive fee (bitcoind's is negative); its amounts are Go
// floats ("1e-05"); its sendtoaddress has no subtractfeefromamount, so a
// subtract-fee send is built here (see Send).
package bitcoind

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/btcsuite/btcd/chaincfg"

	"github.com/coinledger/coinledger/app/chainsync"
)

// Backend is a node's wallet. Safe for concurrent use.
type Backend struct {
	cfg    Config
	rpc    *client
	params *chaincfg.Params

	probeMu sync.Mutex
	// nativeSubtractFee: whether sendtoaddress takes
	// subtractfeefromamount; nil until the node was asked.
	nativeSubtractFee *bool

	// buildMu serializes the sends built here, which pick and lock
	// coins.
	buildMu sync.Mutex
	// unlockMu: one send at a time holds an encrypted wallet unlocked,
	// so that one send's walletlock never cuts another's short.
	unlockMu sync.Mutex
}

var _ chainsync.Backend = (*Backend)(nil)

// Open checks cfg and returns a Backend for it; it does not contact the
// node.
func Open(cfg Config) (*Backend, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	return &Backend{cfg: cfg, rpc: c, params: networks[cfg.Network]}, nil
}

// Close releases idle connections. Calls in flight finish.
func (b *Backend) Close() error {
	b.rpc.close()
	return nil
}

// String describes the backend without its password.
func (b *Backend) String() string { return b.cfg.String() }

// NewAddress returns a new receiving address of the wallet (getnewaddress
// with the node's default label/account and address type).
func (b *Backend) NewAddress(ctx context.Context) (string, error) {
	var addr string
	if err := b.rpc.call(ctx, read, "getnewaddress", &addr); err != nil {
		return "", fmt.Errorf("bitcoind: new address: %w", err)
	}
	if addr == "" {
		return "", errors.New("bitcoind: new address: empty reply")
	}
	return addr, nil
}

// txReply is gettransaction's reply, the fields used.
type txReply struct {
	TxID          string      `json:"txid"`
	Confirmations int64       `json:"confirmations"`
	BlockHash     string      `json:"blockhash"`
	Fee           json.Number `json:"fee"`
	Details       []struct {
		InvolvesWatchOnly bool        `json:"involvesWatchonly"`
		Address           string      `json:"address"`
		Category          string      `json:"category"`
		Amount            json.Number `json:"amount"`
		Vout              uint32      `json:"vout"`
	} `json:"details"`
}

// Transaction reports the wallet's view of txid (gettransaction):
// Received are its "receive" details (coinbase "generate"/"immature" and
// watch-only ones are left out), Fee the absolute fee of a transaction the
// wallet sent. A txid the wallet does not know, or that is not 64 hex
// digits, is chainsync.ErrTxNotFound.
func (b *Backend) Transaction(ctx context.Context, txid string) (chainsync.Tx, error) {
	txid = strings.ToLower(txid)
	if !isHash(txid) {
		return chainsync.Tx{}, fmt.Errorf("bitcoind: transaction %q: not a txid: %w", txid, chainsync.ErrTxNotFound)
	}
	var r txReply
	err := b.rpc.call(ctx, read, "gettransaction", &r, txid, false)
	if rpcErr := (*RPCError)(nil); errors.As(err, &rpcErr) && rpcErr.Code == codeInvalidAddressOrKey {
		return chainsync.Tx{}, fmt.Errorf("bitcoind: transaction %s: %w: %w", txid, chainsync.ErrTxNotFound, err)
	}
	if err != nil {
		return chainsync.Tx{}, fmt.Errorf("bitcoind: transaction %s: %w", txid, err)
	}
	tx, err := r.tx(txid)
	if err != nil {
		return chainsync.Tx{}, fmt.Errorf("bitcoind: transaction %s: %w", txid, err)
	}
	return tx, nil
}

// tx converts the reply.
func (r txReply) tx(txid string) (chainsync.Tx, error) {
	tx := chainsync.Tx{TxID: txid, Confirmations: int(r.Confirmations), BlockHash: r.BlockHash}
	if r.Fee != "" {
		fee, err := satoshis(r.Fee)
		if err != nil {
			return chainsync.Tx{}, fmt.Errorf("fee: %w", err)
		}
		tx.Fee = max(fee, -fee) // bitcoind: negative; btcwallet: positive
	}
	for _, d := range r.Details {
		if d.Category != "receive" || d.InvolvesWatchOnly {
			continue
		}
		amount, err := satoshis(d.Amount)
		if err != nil {
			return chainsync.Tx{}, fmt.Errorf("output %d: %w", d.Vout, err)
		}
		tx.Received = append(tx.Received, chainsync.Output{Vout: d.Vout, Address: d.Address, Amount: amount})
	}
	return tx, nil
}

// Height is the height of the wallet's best block (getblockcount; on
// btcwallet the block it has synced to).
func (b *Backend) Height(ctx context.Context) (int64, error) {
	var h int64
	if err := b.rpc.call(ctx, read, "getblockcount", &h); err != nil {
		return 0, fmt.Errorf("bitcoind: height: %w", err)
	}
	return h, nil
}

// Balance returns the wallet's balance in satoshis: confirmed (one
// confirmation or more) and in all, unconfirmed receipts and spends
// included (getbalance "*" with minconf 1 and 0). An audit reconciles it
// with the ledger.
func (b *Backend) Balance(ctx context.Context) (confirmed, total int64, err error) {
	for _, q := range []struct {
		minConf int
		out     *int64
	}{{1, &confirmed}, {0, &total}} {
		var n json.Number
		if err := b.rpc.call(ctx, read, "getbalance", &n, "*", q.minConf); err != nil {
			return 0, 0, fmt.Errorf("bitcoind: balance: %w", err)
		}
		if *q.out, err = satoshis(n); err != nil {
			return 0, 0, fmt.Errorf("bitcoind: balance: %w", err)
		}
	}
	return confirmed, total, nil
}

// SinceBlock lists the wallet's transactions since blockHash, all of them
// when it is empty (listsinceblock): each txid once, in the node's order,
// sends included. LastBlock is the node's lastblock.
func (b *Backend) SinceBlock(ctx context.Context, blockHash string) (chainsync.Since, error) {
	var params []any
	if blockHash != "" {
		if !isHash(strings.ToLower(blockHash)) {
			return chainsync.Since{}, fmt.Errorf("bitcoind: since block %q: not a block hash", blockHash)
		}
		params = append(params, strings.ToLower(blockHash))
	}
	var r struct {
		Transactions []struct {
			TxID string `json:"txid"`
		} `json:"transactions"`
		LastBlock string `json:"lastblock"`
	}
	if err := b.rpc.call(ctx, read, "listsinceblock", &r, params...); err != nil {
		return chainsync.Since{}, fmt.Errorf("bitcoind: since block %q: %w", blockHash, err)
	}
	since := chainsync.Since{TxIDs: []string{}, LastBlock: r.LastBlock}
	seen := make(map[string]bool, len(r.Transactions))
	for _, t := range r.Transactions {
		if !seen[t.TxID] {
			seen[t.TxID] = true
			since.TxIDs = append(since.TxIDs, t.TxID)
		}
	}
	return since, nil
}

// Send pays amount satoshis to address (sendtoaddress) and reads the fee
// back (gettransaction). Errors wrap chainsync.ErrUnavailable, ErrRejected or
// ErrAmbiguous as the package documentation says.
//
// With subtractFee the recipient gets amount minus the fee. Nodes whose
// sendtoaddress takes subtractfeefromamount (bitcoind and most forks;
// asked once through help) do it themselves. For the others
// (btcwallet) the adapter builds the transaction: listunspent, largest
// coins first, locked with lockunspent; createrawtransaction paying
// amount−fee and the change to getrawchangeaddress; signrawtransaction;
// the fee is Config.FeeRate times the signed virtual size;
// sendrawtransaction. Change under 546 satoshis goes to the fee. The locks
// are held in the wallet's memory until it restarts.
//
// When the coins left but the fee could not be read back, Send returns the
// Sent with its TxID and an error wrapping chainsync.ErrAmbiguous: never send
// again; the fee is in Transaction later.
func (b *Backend) Send(ctx context.Context, address string, amount int64, subtractFee bool) (chainsync.Sent, error) {
	sent, err := b.unlocked(ctx, func() (chainsync.Sent, error) { return b.send(ctx, address, amount, subtractFee) })
	if err != nil {
		return sent, fmt.Errorf("bitcoind: send %d to %s: %w", amount, address, err)
	}
	return sent, nil
}

func (b *Backend) send(ctx context.Context, address string, amount int64, subtractFee bool) (chainsync.Sent, error) {
	if amount <= 0 {
		return chainsync.Sent{}, fmt.Errorf("amount must be positive: %w", chainsync.ErrRejected)
	}
	params := []any{address, coins(amount)}
	if subtractFee {
		native, err := b.subtractsFee(ctx)
		if err != nil {
			return chainsync.Sent{}, nothingSent(err)
		}
		if !native {
			return b.sendBuilt(ctx, address, amount)
		}
		params = append(params, "", "", true) // comment, comment_to, subtractfeefromamount
	}
	var txid string
	if err := b.rpc.call(ctx, write, "sendtoaddress", &txid, params...); err != nil {
		return chainsync.Sent{}, err
	}
	if txid = strings.ToLower(txid); !isHash(txid) {
		return chainsync.Sent{}, fmt.Errorf("sendtoaddress: reply %q is not a txid: %w", txid, chainsync.ErrAmbiguous)
	}
	fee, err := b.fee(ctx, txid)
	if err != nil {
		return chainsync.Sent{TxID: txid}, fmt.Errorf("%s sent, fee unknown: %w: %w", txid, chainsync.ErrAmbiguous, err)
	}
	return chainsync.Sent{TxID: txid, Fee: fee}, nil
}

// fee reads the fee of a transaction the wallet just sent, trying a few
// times while the node does not answer, for at most Config.Timeout (each
// read of a node that is down takes that long).
func (b *Backend) fee(ctx context.Context, txid string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var err error
	for wait := 100 * time.Millisecond; wait < 2*time.Second; wait *= 2 {
		var tx chainsync.Tx
		if tx, err = b.Transaction(ctx, txid); err == nil {
			return tx.Fee, nil
		}
		if !errors.Is(err, chainsync.ErrUnavailable) && !errors.Is(err, chainsync.ErrTxNotFound) {
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, errors.Join(err, ctx.Err())
		case <-time.After(wait):
		}
	}
	return 0, err
}

// subtractsFee reports whether the node's sendtoaddress takes
// subtractfeefromamount, asking help once.
func (b *Backend) subtractsFee(ctx context.Context) (bool, error) {
	b.probeMu.Lock()
	defer b.probeMu.Unlock()
	if b.nativeSubtractFee != nil {
		return *b.nativeSubtractFee, nil
	}
	var help string
	if err := b.rpc.call(ctx, read, "help", &help, "sendtoaddress"); err != nil {
		return false, err
	}
	native := strings.Contains(help, "subtractfeefromamount")
	b.nativeSubtractFee = &native
	return native, nil
}

// unlocked runs send with the wallet unlocked when Config.WalletPassphrase
// is set: walletpassphrase for Config.UnlockTimeout before, walletlock
// after, whatever send did. A passphrase the wallet refuses leaves nothing
// sent and is ErrUnavailable, naming the setting to fix: the withdrawal
// stays requested and is tried again, and the backend's error shows the
// operator why. Without a passphrase send runs as it is.
func (b *Backend) unlocked(ctx context.Context, send func() (chainsync.Sent, error)) (chainsync.Sent, error) {
	pass := b.cfg.WalletPassphrase.Reveal()
	if pass == "" {
		return send()
	}
	b.unlockMu.Lock()
	defer b.unlockMu.Unlock()
	secs := int64(b.cfg.UnlockTimeout / time.Second)
	if err := b.rpc.call(ctx, read, "walletpassphrase", nil, pass, secs); err != nil {
		if rpcErr := (*RPCError)(nil); errors.As(err, &rpcErr) && rpcErr.Code == codePassphraseIncorrect {
			return chainsync.Sent{}, fmt.Errorf("%w: the wallet refused the passphrase (bitcoind.wallet_passphrase): %s",
				chainsync.ErrUnavailable, rpcErr.Message)
		}
		return chainsync.Sent{}, nothingSent(fmt.Errorf("walletpassphrase: %w", err))
	}
	defer func() {
		// Best effort: UnlockTimeout locks it anyway.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = b.rpc.call(ctx, read, "walletlock", nil)
	}()
	return send()
}

// nothingSent classifies a failure before anything was handed to the node
// for sending: unavailable stays so, and so is a locked wallet (as for
// sendtoaddress); anything else is a rejection.
func nothingSent(err error) error {
	if errors.Is(err, chainsync.ErrUnavailable) || errors.Is(err, chainsync.ErrRejected) {
		return err
	}
	if rpcErr := (*RPCError)(nil); errors.As(err, &rpcErr) && rpcErr.Code == codeWalletUnlockNeeded {
		return fmt.Errorf("%w: %w", chainsync.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", chainsync.ErrRejected, err)
}

// isHash reports whether s is 64 lower-case hex digits.
func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
