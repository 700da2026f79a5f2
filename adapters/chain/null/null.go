// Package null is the simulated chain of the embedded default and of
// tests: no node, no network. It implements chainsync.Backend. Addresses are
// deterministic, payments and blocks are injected (the admin simulate
// endpoints, tests), confirmations advance with blocks, and reorgs, double
// spends and node outages can be simulated. The chain lives in memory: a
// restart forgets it (the ledger keeps what was recorded).
package null

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"github.com/coinledger/coinledger/app/chainsync"
)

// DefaultFee is the network fee of every simulated send, in minor units.
const DefaultFee = 1000

// AddressPrefix starts every simulated address of the wallet; an address
// of another prefix is "external" (Send accepts 1-128 of [A-Za-z0-9]).
const AddressPrefix = "sim1"

// Chain is one coin's simulated chain and the wallet on it. Safe for
// concurrent use.
type Chain struct {
	coin string
	mu   sync.Mutex
	// blocks holds the hash of every block of the best chain; blocks[0]
	// is the genesis block (height 0).
	blocks []string
	epoch  uint64 // bumped by each reorg, so that re-mined blocks differ
	seq    uint64
	txs    map[string]*tx
	order  []string // txids in the order they were made
	mine   map[string]bool
	down   bool
}

type tx struct {
	outputs    []chainsync.Output // every output (to us or not)
	sent       bool               // sent by the wallet
	fee        int64
	height     int // block that holds it; 0 in the mempool
	conflicted bool
	dropped    bool // left the chain and the mempool
}

// New returns a chain for coin with only its genesis block.
func New(coin string) *Chain {
	c := &Chain{coin: coin, txs: map[string]*tx{}, mine: map[string]bool{}}
	c.blocks = []string{c.hash("block", 0)}
	return c
}

// Coin returns the chain's coin.
func (c *Chain) Coin() string { return c.coin }

func (c *Chain) hash(kind string, n ...uint64) string {
	h := sha256.New()
	h.Write([]byte(c.coin + "/" + kind))
	for _, v := range n {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SetDown simulates an unreachable node: every Backend call fails with
// chainsync.ErrUnavailable until SetDown(false).
func (c *Chain) SetDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

func (c *Chain) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("null %s: %w: %v", c.coin, chainsync.ErrUnavailable, err)
	}
	if c.down {
		return fmt.Errorf("null %s: %w (simulated outage)", c.coin, chainsync.ErrUnavailable)
	}
	return nil
}

// NewAddress returns a fresh deterministic address of the wallet: the
// n-th address of a chain is the same in every run.
func (c *Chain) NewAddress(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return "", err
	}
	c.seq++
	a := AddressPrefix + c.hash("address", c.seq)[:38]
	c.mine[a] = true
	return a, nil
}

// Pay puts a payment from outside of amount minor units to address in
// the mempool and returns its txid (its one output is vout 0). It works
// while the node is "down": the payment is someone else's.
func (c *Chain) Pay(address string, amount int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.add(&tx{outputs: []chainsync.Output{{Vout: 0, Address: address, Amount: amount}}})
}

func (c *Chain) add(t *tx) string {
	c.seq++
	txid := c.hash("tx", c.seq, c.epoch)
	c.txs[txid] = t
	c.order = append(c.order, txid)
	return txid
}

// Mine adds n blocks; the first takes the mempool. It returns the new tip
// height.
func (c *Chain) Mine(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range n {
		h := len(c.blocks)
		c.blocks = append(c.blocks, c.hash("block", uint64(h), c.epoch))
		for _, t := range c.txs {
			if t.height == 0 && !t.conflicted && !t.dropped {
				t.height = h
			}
		}
	}
	return len(c.blocks) - 1
}

// Reorg replaces the newest depth blocks by depth+1 new ones. The
// transactions of the replaced blocks are re-mined in the first new block
// when keep is set (their block hash changes), or dropped from the chain
// and the mempool otherwise (the node no longer knows them). It returns
// the new tip height.
func (c *Chain) Reorg(depth int, keep bool) int {
	c.mu.Lock()
	fork := max(len(c.blocks)-depth, 1)
	for _, t := range c.txs {
		if t.height >= fork {
			t.height = 0
			t.dropped = !keep
		}
	}
	c.blocks = c.blocks[:fork]
	c.epoch++
	c.mu.Unlock()
	return c.Mine(depth + 1)
}

// DoubleSpend makes txid conflict with a transaction in the best chain:
// the node reports it with negative confirmations, as bitcoind does.
func (c *Chain) DoubleSpend(txid string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.txs[txid]
	if !ok {
		return fmt.Errorf("null %s: double spend %s: %w", c.coin, txid, chainsync.ErrTxNotFound)
	}
	t.conflicted, t.height = true, 0
	c.blocks = append(c.blocks, c.hash("block", uint64(len(c.blocks)), c.epoch))
	return nil
}

// Transaction reports what the chain knows of txid.
func (c *Chain) Transaction(ctx context.Context, txid string) (chainsync.Tx, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return chainsync.Tx{}, err
	}
	t, ok := c.txs[txid]
	if !ok || t.dropped {
		return chainsync.Tx{}, fmt.Errorf("null %s: %s: %w", c.coin, txid, chainsync.ErrTxNotFound)
	}
	out := chainsync.Tx{TxID: txid, Fee: t.fee}
	for _, o := range t.outputs {
		if c.mine[o.Address] {
			out.Received = append(out.Received, o)
		}
	}
	switch {
	case t.conflicted:
		out.Confirmations = -1
	case t.height > 0:
		out.Confirmations = len(c.blocks) - t.height
		out.BlockHash = c.blocks[t.height]
	}
	return out, nil
}

// Balance is the wallet's spendable balance: what its addresses received
// in the best chain minus what it sent and paid in fees.
func (c *Chain) Balance() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.balance()
}

func (c *Chain) balance() int64 {
	var b int64
	for _, t := range c.txs {
		if t.dropped || t.conflicted {
			continue
		}
		for _, o := range t.outputs {
			if c.mine[o.Address] && !t.sent && t.height > 0 {
				b += o.Amount
			}
			if t.sent && !c.mine[o.Address] {
				b -= o.Amount
			}
		}
		if t.sent {
			b -= t.fee
		}
	}
	return b
}

// Send pays amount to address from the wallet's confirmed balance, with
// DefaultFee (out of the amount when subtractFee is set).
func (c *Chain) Send(ctx context.Context, address string, amount int64, subtractFee bool) (chainsync.Sent, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return chainsync.Sent{}, err
	}
	if !validAddress(address) {
		return chainsync.Sent{}, fmt.Errorf("null %s: send to %q: %w: invalid address", c.coin, address, chainsync.ErrRejected)
	}
	pay, cost := amount, amount+DefaultFee
	if subtractFee {
		pay, cost = amount-DefaultFee, amount
	}
	if amount <= 0 || pay <= 0 {
		return chainsync.Sent{}, fmt.Errorf("null %s: send %d: %w: amount too small", c.coin, amount, chainsync.ErrRejected)
	}
	if b := c.balance(); cost > b {
		return chainsync.Sent{}, fmt.Errorf("null %s: send %d: %w: insufficient funds (balance %d)", c.coin, cost, chainsync.ErrRejected, b)
	}
	txid := c.add(&tx{outputs: []chainsync.Output{{Vout: 0, Address: address, Amount: pay}}, sent: true, fee: DefaultFee})
	return chainsync.Sent{TxID: txid, Fee: DefaultFee}, nil
}

func validAddress(a string) bool {
	if a == "" || len(a) > 128 {
		return false
	}
	return strings.IndexFunc(a, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0
}

// Height returns the height of the newest block.
func (c *Chain) Height(ctx context.Context) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	return int64(len(c.blocks) - 1), nil
}

// SinceBlock lists the wallet's transactions in blocks after the one with
// hash blockHash, in the mempool, or conflicted; all of them when the hash
// is empty or no longer in the best chain (a reorg replaced it).
func (c *Chain) SinceBlock(ctx context.Context, blockHash string) (chainsync.Since, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.check(ctx); err != nil {
		return chainsync.Since{}, err
	}
	from := 0
	for h, b := range c.blocks {
		if b == blockHash {
			from = h
		}
	}
	var out chainsync.Since
	for _, txid := range c.order {
		t := c.txs[txid]
		if t.dropped || !c.touches(t) {
			continue
		}
		if t.height == 0 || t.height > from {
			out.TxIDs = append(out.TxIDs, txid)
		}
	}
	out.LastBlock = c.blocks[len(c.blocks)-1]
	return out, nil
}

func (c *Chain) touches(t *tx) bool {
	if t.sent {
		return true
	}
	for _, o := range t.outputs {
		if c.mine[o.Address] {
			return true
		}
	}
	return false
}

var _ chainsync.Backend = (*Chain)(nil)
