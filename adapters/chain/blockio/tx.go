package blockio

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coinledger/coinledger/app/chainsync"
)

const (
	// addressRefresh is how often at most the wallet's addresses are
	// reloaded when a transaction shows an address not known yet.
	addressRefresh = 10 * time.Second
	// maxAddressPages bounds one reload of the wallet's addresses.
	maxAddressPages = 1000
	// maxBlocks bounds the block hash → height memory.
	maxBlocks = 10_000
)

// rawTx is get_raw_transaction's data. block.io documents the call but not
// its fields; they are assumed to be those of its transaction
// notifications (txid, block_no, block_hash, confirmations, network_fee,
// inputs, outputs).
type rawTx struct {
	Network       string     `json:"network"`
	TxID          string     `json:"txid"`
	BlockNo       *int64     `json:"block_no"`
	BlockHash     string     `json:"block_hash"`
	Confirmations int        `json:"confirmations"`
	Time          int64      `json:"time"`
	NetworkFee    amount     `json:"network_fee"`
	Inputs        []rawInput `json:"inputs"`
	Outputs       []struct {
		OutputNo uint32 `json:"output_no"`
		Address  string `json:"address"`
		Amount   amount `json:"amount"`
	} `json:"outputs"`
}

type rawInput struct {
	InputNo int    `json:"input_no"`
	Address string `json:"address"`
	Amount  amount `json:"amount"`
}

// NewAddress returns a fresh address of the wallet (get_new_address,
// label chosen by block.io).
func (b *Backend) NewAddress(ctx context.Context) (string, error) {
	var d struct {
		Network string `json:"network"`
		Address string `json:"address"`
		Label   string `json:"label"`
	}
	if err := b.call(ctx, "get_new_address", nil, &d); err != nil {
		return "", fmt.Errorf("blockio new address: %w", classify(err, nil))
	}
	if d.Address == "" {
		return "", fmt.Errorf("blockio new address: %w: %w: no address", chainsync.ErrUnavailable, ErrMalformed)
	}
	b.mu.Lock()
	b.addrs[d.Address] = true
	b.mu.Unlock()
	return d.Address, nil
}

// Transaction reports what block.io knows of txid (get_raw_transaction).
func (b *Backend) Transaction(ctx context.Context, txid string) (chainsync.Tx, error) {
	id, ok := parseHash(txid)
	if !ok {
		return chainsync.Tx{}, fmt.Errorf("blockio transaction %q: %w: not a txid", txid, chainsync.ErrTxNotFound)
	}
	raw, err := b.rawTransaction(ctx, id)
	if err != nil {
		return chainsync.Tx{}, fmt.Errorf("blockio transaction %s: %w", id, err)
	}
	var seen []string
	for _, in := range raw.Inputs {
		seen = append(seen, in.Address)
	}
	for _, out := range raw.Outputs {
		seen = append(seen, out.Address)
	}
	ours, complete, err := b.knownAddresses(ctx, seen)
	if err != nil {
		return chainsync.Tx{}, fmt.Errorf("blockio transaction %s: %w", id, err)
	}
	sent := slices.ContainsFunc(raw.Inputs, func(in rawInput) bool { return ours[in.Address] })
	if !sent && !complete {
		// An output to an address this backend has not seen: the wallet's
		// if block.io lists it as received (another client of the
		// account made the address), else learnt from a reload.
		if ours, err = b.resolveRecipients(ctx, id, seen); err != nil {
			return chainsync.Tx{}, fmt.Errorf("blockio transaction %s: %w", id, err)
		}
	}
	tx := chainsync.Tx{TxID: id, Confirmations: max(raw.Confirmations, 0)}
	if raw.Confirmations > 0 {
		tx.BlockHash = strings.ToLower(raw.BlockHash)
	}
	if sent {
		tx.Fee = int64(raw.NetworkFee)
		return tx, nil
	}
	for _, out := range raw.Outputs {
		if ours[out.Address] && out.Amount > 0 {
			tx.Received = append(tx.Received, chainsync.Output{Vout: out.OutputNo, Address: out.Address, Amount: int64(out.Amount)})
		}
	}
	return tx, nil
}

// rawTransaction fetches txid and checks what the rest of the package
// relies on; a confirmed transaction teaches the height of its block.
func (b *Backend) rawTransaction(ctx context.Context, txid string) (rawTx, error) {
	var raw rawTx
	if err := b.call(ctx, "get_raw_transaction", map[string]any{"txid": txid}, &raw); err != nil {
		var api *APIError
		if errors.As(err, &api) && api.notFound() {
			return rawTx{}, fmt.Errorf("%w: %w", chainsync.ErrTxNotFound, err)
		}
		// Any other refusal is not taken for "not found": that reverses
		// deposits, while "unavailable" only delays.
		return rawTx{}, classify(err, chainsync.ErrUnavailable)
	}
	if !strings.EqualFold(raw.TxID, txid) {
		return rawTx{}, fmt.Errorf("%w: %w: asked for %s, got %q", chainsync.ErrUnavailable, ErrMalformed, txid, raw.TxID)
	}
	if raw.Confirmations > 0 {
		hash, ok := parseHash(raw.BlockHash)
		if !ok || raw.BlockNo == nil || *raw.BlockNo < 0 {
			return rawTx{}, fmt.Errorf("%w: %w: confirmed transaction %s without block", chainsync.ErrUnavailable, ErrMalformed, txid)
		}
		raw.BlockHash = hash
		b.rememberBlock(hash, *raw.BlockNo)
	}
	return raw, nil
}

func (b *Backend) rememberBlock(hash string, height int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.blocks) >= maxBlocks {
		clear(b.blocks)
	}
	b.blocks[hash] = height
}

// knownAddresses tells which of addrs are known to be the wallet's, and
// whether all of them are known. The wallet's addresses are loaded on
// first use.
func (b *Backend) knownAddresses(ctx context.Context, addrs []string) (map[string]bool, bool, error) {
	b.mu.Lock()
	loaded := b.addrsLoaded
	b.mu.Unlock()
	if !loaded {
		if err := b.reloadAddresses(ctx, false); err != nil {
			return nil, false, err
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ours, complete := map[string]bool{}, true
	for _, a := range addrs {
		if b.addrs[a] {
			ours[a] = true
		} else {
			complete = false
		}
	}
	return ours, complete, nil
}

// ownAddresses tells which of addrs are the wallet's, reloading the
// wallet's addresses (at most every addressRefresh) when one is unknown.
func (b *Backend) ownAddresses(ctx context.Context, addrs []string) (map[string]bool, error) {
	ours, complete, err := b.knownAddresses(ctx, addrs)
	if err != nil || complete {
		return ours, err
	}
	if err := b.reloadAddresses(ctx, true); err != nil {
		return nil, err
	}
	ours, _, err = b.knownAddresses(ctx, addrs)
	return ours, err
}

// resolveRecipients learns the wallet's addresses among the outputs of
// txid from its entry on the first page of received transactions (its
// amounts_received recipients are the wallet's), falling back to
// ownAddresses when it is not there.
func (b *Backend) resolveRecipients(ctx context.Context, txid string, addrs []string) (map[string]bool, error) {
	var d struct {
		Txs []struct {
			TxID            string `json:"txid"`
			AmountsReceived []struct {
				Recipient string `json:"recipient"`
			} `json:"amounts_received"`
		} `json:"txs"`
	}
	if err := b.call(ctx, "get_transactions", map[string]any{"type": "received"}, &d); err != nil {
		return nil, fmt.Errorf("get_transactions received: %w", classify(err, nil))
	}
	for _, t := range d.Txs {
		if !strings.EqualFold(t.TxID, txid) {
			continue
		}
		b.mu.Lock()
		for _, r := range t.AmountsReceived {
			if r.Recipient != "" {
				b.addrs[r.Recipient] = true
			}
		}
		b.mu.Unlock()
		ours, _, err := b.knownAddresses(ctx, addrs)
		return ours, err
	}
	return b.ownAddresses(ctx, addrs)
}

// reloadAddresses loads the wallet's addresses unless another call did
// meanwhile (or, when throttled, did less than addressRefresh ago).
func (b *Backend) reloadAddresses(ctx context.Context, throttled bool) error {
	b.loadMu.Lock()
	defer b.loadMu.Unlock()
	b.mu.Lock()
	skip := b.addrsLoaded && (!throttled || b.now().Sub(b.addrsRefreshed) < addressRefresh)
	b.mu.Unlock()
	if skip {
		return nil
	}
	return b.loadAddresses(ctx)
}

// loadAddresses reads every address of the wallet (get_my_addresses, page
// by page until a page brings nothing new).
func (b *Backend) loadAddresses(ctx context.Context) error {
	found := map[string]bool{}
	for page := 1; page <= maxAddressPages; page++ {
		var d struct {
			Addresses []struct {
				Address string `json:"address"`
			} `json:"addresses"`
		}
		if err := b.call(ctx, "get_my_addresses", map[string]any{"page": page}, &d); err != nil {
			return fmt.Errorf("wallet addresses: %w", classify(err, nil))
		}
		fresh := 0
		for _, a := range d.Addresses {
			if a.Address != "" && !found[a.Address] {
				found[a.Address] = true
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for a := range found {
		b.addrs[a] = true
	}
	b.addrsLoaded, b.addrsRefreshed = true, b.now()
	return nil
}

// parseHash returns s in lower case if it is 64 hex digits.
func parseHash(s string) (string, bool) {
	if len(s) != 64 {
		return "", false
	}
	s = strings.ToLower(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", false
		}
	}
	return s, true
}
