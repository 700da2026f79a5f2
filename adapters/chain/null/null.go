// Package null is the simulated chain of the embedded default and of
// tests: no node, no network. Addresses are deterministic, payments and
// blocks are injected by the admin simulate endpoints, confirmations
// advance with blocks. The chain lives in memory: a restart forgets it
// (the ledger keeps what was recorded).
package null

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// ErrUnknownTx: no such simulated transaction.
var ErrUnknownTx = errors.New("unknown simulated transaction")

// Chain is one coin's simulated chain. Safe for concurrent use.
type Chain struct {
	coin string
	mu   sync.Mutex
	tip  int // height of the newest block
	seq  uint64
	txs  map[string]*tx
}

type tx struct {
	address string
	amount  int64
	height  int // block that holds it; 0 while in the mempool
}

// New returns an empty chain for coin.
func New(coin string) *Chain { return &Chain{coin: coin, txs: map[string]*tx{}} }

// Coin returns the chain's coin.
func (c *Chain) Coin() string { return c.coin }

// NewAddress returns a fresh deterministic address: the n-th address of a
// chain is the same in every run.
func (c *Chain) NewAddress() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	return "sim1" + c.hash("address", c.seq)[:38]
}

func (c *Chain) hash(kind string, n uint64) string {
	h := sha256.New()
	h.Write([]byte(c.coin + "/" + kind + "/"))
	h.Write(binary.BigEndian.AppendUint64(nil, n))
	return hex.EncodeToString(h.Sum(nil))
}

// Pay puts a payment of amount minor units to address in the mempool and
// returns its txid (its one output is vout 0).
func (c *Chain) Pay(address string, amount int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	txid := c.hash("tx", c.seq)
	c.txs[txid] = &tx{address: address, amount: amount}
	return txid
}

// Mine adds n blocks; the first takes the mempool. It returns the new tip.
func (c *Chain) Mine(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := 0; i < n; i++ {
		c.tip++
		for _, t := range c.txs {
			if t.height == 0 {
				t.height = c.tip
			}
		}
	}
	return c.tip
}

// Tip returns the height of the newest block.
func (c *Chain) Tip() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tip
}

// Status is a transaction as the chain sees it now.
type Status struct {
	Address       string
	Amount        int64
	Confirmations int
	BlockHash     string // empty while unconfirmed
}

// Transaction returns a transaction's status.
func (c *Chain) Transaction(txid string) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.txs[txid]
	if !ok {
		return Status{}, fmt.Errorf("%s: %w", txid, ErrUnknownTx)
	}
	s := Status{Address: t.address, Amount: t.amount}
	if t.height > 0 {
		s.Confirmations = c.tip - t.height + 1
		s.BlockHash = c.hash("block", uint64(t.height))
	}
	return s, nil
}
