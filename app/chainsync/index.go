package chainsync

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
)

// index maps what the chain reports back to wallets: which wallets hold a
// coin, which wallet a deposit address belongs to, which withdrawal a txid
// pays. It follows the event log from where it stopped, so it is as current
// as the last append when a notification is handled, without a read model.
// Routing only: every decision is taken on the wallet's own state.
type index struct {
	store eventstore.Store
	mu    sync.Mutex
	pos   uint64
	coins map[string]string // wallet → coin

	addresses   map[string]string  // address → wallet
	withdrawals map[string]walletW // txid → withdrawal
}

type walletW struct{ wallet, id string }

func newIndex(store eventstore.Store) *index {
	return &index{store: store, coins: map[string]string{}, addresses: map[string]string{}, withdrawals: map[string]walletW{}}
}

const indexPage = 4096

// catchUp reads the log from where the index stopped to its head.
func (x *index) catchUp(ctx context.Context) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for {
		events, err := x.store.ReadAll(ctx, x.pos, indexPage)
		if err != nil {
			return fmt.Errorf("chain index after %d: %w", x.pos, err)
		}
		for _, e := range events {
			if err := x.add(e); err != nil {
				return fmt.Errorf("chain index at %s: %w", e, err)
			}
			x.pos = e.Position
		}
		if len(events) < indexPage {
			return nil
		}
	}
}

func (x *index) add(e eventstore.Event) error {
	wallet, ok := strings.CutPrefix(e.Stream, ledger.StreamPrefix)
	if !ok {
		return nil
	}
	switch e.Type {
	case ledger.TypeWalletOpened:
		var ev struct{ Coin string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return err
		}
		x.coins[wallet] = ev.Coin
	case ledger.TypeAddressAssigned:
		var ev struct{ Address string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return err
		}
		x.addresses[ev.Address] = wallet
	case ledger.TypeWithdrawalBroadcast:
		var ev struct{ ID, TxID string }
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return err
		}
		x.withdrawals[ev.TxID] = walletW{wallet, ev.ID}
	}
	return nil
}

// wallets returns the wallets of coin.
func (x *index) walletsOf(coin string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for w, c := range x.coins {
		if c == coin {
			out = append(out, w)
		}
	}
	return out
}

// walletOf returns the wallet of coin that address was assigned in.
func (x *index) walletOf(coin, address string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	w, ok := x.addresses[address]
	return w, ok && x.coins[w] == coin
}

// withdrawalOf returns the withdrawal of coin that txid broadcast.
func (x *index) withdrawalOf(coin, txid string) (walletW, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	w, ok := x.withdrawals[txid]
	return w, ok && x.coins[w.wallet] == coin
}

// addressesOf returns the addresses of coin's wallets.
func (x *index) addressesOf(coin string) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []string
	for a, w := range x.addresses {
		if x.coins[w] == coin {
			out = append(out, a)
		}
	}
	return out
}
