package chainsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/internal/compact"
)

// Index maps what the chain reports back to wallets: which wallets hold a
// coin, which wallet a deposit address belongs to, which withdrawal a txid
// pays. It is a follower of the log (projections.Follower, named
// "chain_index"): the runner hands it the wallet events and keeps a
// snapshot of it. Routing only: every decision is taken on the wallet's own
// state.
//
// Lookups take a read lock; Handle, Restore and Snapshot are called from
// the runner's goroutine.
type Index struct {
	mu          sync.RWMutex
	coins       map[string]string  // wallet → coin
	addresses   map[string]string  // address → wallet
	withdrawals map[string]walletW // txid → withdrawal
}

type walletW struct{ wallet, id string }

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{coins: map[string]string{}, addresses: map[string]string{}, withdrawals: map[string]walletW{}}
}

// IndexName is the index's follower name.
const IndexName = "chain_index"

// Name implements projections.Follower.
func (x *Index) Name() string { return IndexName }

// Version implements projections.Follower: bump it when what the index
// keeps or its snapshot encoding changes.
func (x *Index) Version() int { return 1 }

// Wants reports whether e may change the index: a wallet opened, an
// address assigned or a withdrawal broadcast.
func (x *Index) Wants(e eventstore.Event) bool {
	switch e.Type {
	case ledger.TypeWalletOpened, ledger.TypeAddressAssigned, ledger.TypeWithdrawalBroadcast:
		return strings.HasPrefix(e.Stream, ledger.StreamPrefix)
	}
	return false
}

// Handle folds e into the index; a malformed event changes nothing.
func (x *Index) Handle(_ context.Context, e eventstore.Event) error {
	if !x.Wants(e) {
		return nil
	}
	wallet := strings.TrimPrefix(e.Stream, ledger.StreamPrefix)
	switch e.Type {
	case ledger.TypeWalletOpened:
		var ev struct{ Coin string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return fmt.Errorf("chain index: %w", err)
		}
		x.mu.Lock()
		x.coins[wallet] = ev.Coin
		x.mu.Unlock()
	case ledger.TypeAddressAssigned:
		var ev struct{ Address string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return fmt.Errorf("chain index: %w", err)
		}
		x.mu.Lock()
		x.addresses[ev.Address] = wallet
		x.mu.Unlock()
	case ledger.TypeWithdrawalBroadcast:
		var ev struct{ ID, TxID string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return fmt.Errorf("chain index: %w", err)
		}
		x.mu.Lock()
		x.withdrawals[ev.TxID] = walletW{wallet, ev.ID}
		x.mu.Unlock()
	}
	return nil
}

// Snapshot encodes the index: a table of the wallets named, then the
// coins, addresses and withdrawals referring to wallets by their number in
// the table.
func (x *Index) Snapshot() ([]byte, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var names compact.Names
	for wallet := range x.coins {
		names.Add(wallet)
	}
	for _, wallet := range x.addresses {
		names.Add(wallet)
	}
	for _, wd := range x.withdrawals {
		names.Add(wd.wallet)
	}
	var w compact.Writer
	w.Names(&names)
	w.Uint(uint64(len(x.coins)))
	for wallet, coin := range x.coins {
		w.Uint(names.Add(wallet))
		w.String(coin)
	}
	w.Uint(uint64(len(x.addresses)))
	for address, wallet := range x.addresses {
		w.String(address)
		w.Uint(names.Add(wallet))
	}
	w.Uint(uint64(len(x.withdrawals)))
	for txid, wd := range x.withdrawals {
		w.String(txid)
		w.Uint(names.Add(wd.wallet))
		w.String(wd.id)
	}
	return w.Bytes(), nil
}

// Restore replaces the index with a snapshot's (empty for nil). A corrupt
// snapshot is an error and leaves the index as it was.
func (x *Index) Restore(data []byte) error {
	if len(data) == 0 {
		x.mu.Lock()
		x.coins, x.addresses, x.withdrawals = map[string]string{}, map[string]string{}, map[string]walletW{}
		x.mu.Unlock()
		return nil
	}
	r := compact.NewReader(data)
	names := r.Names()
	n := r.Len()
	coins := make(map[string]string, n)
	for range n {
		w := r.Name(names)
		coins[w] = r.String()
	}
	n = r.Len()
	addresses := make(map[string]string, n)
	for range n {
		a := r.String()
		addresses[a] = r.Name(names)
	}
	n = r.Len()
	withdrawals := make(map[string]walletW, n)
	for range n {
		txid := r.String()
		w := r.Name(names)
		withdrawals[txid] = walletW{w, r.String()}
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("chain index: restore: %w", err)
	}
	x.mu.Lock()
	x.coins, x.addresses, x.withdrawals = coins, addresses, withdrawals
	x.mu.Unlock()
	return nil
}

// walletsOf returns the wallets of coin.
func (x *Index) walletsOf(coin string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for w, c := range x.coins {
		if c == coin {
			out = append(out, w)
		}
	}
	return out
}

// walletOf returns the wallet of coin that address was assigned in.
func (x *Index) walletOf(coin, address string) (string, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	w, ok := x.addresses[address]
	return w, ok && x.coins[w] == coin
}

// withdrawalOf returns the withdrawal of coin that txid broadcast.
func (x *Index) withdrawalOf(coin, txid string) (walletW, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	w, ok := x.withdrawals[txid]
	return w, ok && x.coins[w.wallet] == coin
}

// addressesOf returns the addresses of coin's wallets.
func (x *Index) addressesOf(coin string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for a, w := range x.addresses {
		if x.coins[w] == coin {
			out = append(out, a)
		}
	}
	return out
}
