package blockio

import (
	"context"
	"fmt"

	"github.com/coinledger/coinledger/app/chainsync"
)

const (
	// maxPages bounds one walk through a get_transactions listing.
	maxPages = 400
	// maxProbes bounds the get_raw_transaction calls spent finding the
	// height of a block hash the backend does not remember.
	maxProbes = 200
)

// listedTx is one entry of get_transactions (received or sent).
type listedTx struct {
	TxID          string `json:"txid"`
	Time          int64  `json:"time"`
	Confirmations int    `json:"confirmations"`
}

// listing walks get_transactions of one type, newest first, a page at a
// time.
type listing struct {
	b      *Backend
	kind   string // received or sent
	before string
	pages  int
	done   bool
}

// next returns the next page (nil when the listing is done).
func (l *listing) next(ctx context.Context) ([]listedTx, error) {
	if l.done {
		return nil, nil
	}
	if l.pages++; l.pages > maxPages {
		l.done = true
		return nil, nil
	}
	params := map[string]any{"type": l.kind}
	if l.before != "" {
		params["before_tx"] = l.before
	}
	var d struct {
		Txs []listedTx `json:"txs"`
	}
	if err := l.b.call(ctx, "get_transactions", params, &d); err != nil {
		return nil, fmt.Errorf("get_transactions %s: %w", l.kind, classify(err, nil))
	}
	var page []listedTx
	for _, t := range d.Txs {
		id, ok := parseHash(t.TxID)
		if !ok {
			return nil, fmt.Errorf("get_transactions %s: %w: %w: txid %q", l.kind, chainsync.ErrUnavailable, ErrMalformed, t.TxID)
		}
		if id == l.before { // some answers to before_tx repeat that transaction
			continue
		}
		t.TxID = id
		page = append(page, t)
	}
	if len(page) == 0 {
		l.done = true
		return nil, nil
	}
	l.before = page[len(page)-1].TxID
	return page, nil
}

// tip is the best block as learnt from a wallet transaction.
type tip struct {
	height int64
	hash   string // the block holding that transaction, not the tip's
}

// tipFrom derives the tip from the confirmed transaction with the fewest
// confirmations among txs (ok false if none is confirmed).
func (b *Backend) tipFrom(ctx context.Context, txs []listedTx) (tip, bool, error) {
	var newest *listedTx
	for i, t := range txs {
		if t.Confirmations > 0 && (newest == nil || t.Confirmations < newest.Confirmations) {
			newest = &txs[i]
		}
	}
	if newest == nil {
		return tip{}, false, nil
	}
	raw, err := b.rawTransaction(ctx, newest.TxID)
	if err != nil {
		return tip{}, false, err
	}
	if raw.Confirmations <= 0 { // dropped back to the mempool since the listing
		return tip{}, false, nil
	}
	return tip{height: *raw.BlockNo + int64(raw.Confirmations) - 1, hash: raw.BlockHash}, true, nil
}

// Height is block.io's best block, derived from the wallet's newest
// confirmed transaction (ErrNoHeight while it has none).
func (b *Backend) Height(ctx context.Context) (int64, error) {
	var txs []listedTx
	for _, kind := range []string{"received", "sent"} {
		l := &listing{b: b, kind: kind}
		page, err := l.next(ctx)
		if err != nil {
			return 0, fmt.Errorf("blockio height: %w", err)
		}
		txs = append(txs, page...)
	}
	t, ok, err := b.tipFrom(ctx, txs)
	if err != nil {
		return 0, fmt.Errorf("blockio height: %w", err)
	}
	if !ok {
		return 0, fmt.Errorf("blockio height: %w", ErrNoHeight)
	}
	return t.height, nil
}

// SinceBlock lists the wallet's transactions in blocks after blockHash and
// in the mempool (all of them when blockHash is empty or a block the
// backend cannot place). LastBlock is the hash of the newest block holding
// a wallet transaction (blockHash again while the wallet has no confirmed
// transaction): a real block hash, but not the tip's.
func (b *Backend) SinceBlock(ctx context.Context, blockHash string) (chainsync.Since, error) {
	from := int64(-1) // list everything
	if blockHash != "" {
		hash, ok := parseHash(blockHash)
		if !ok {
			return chainsync.Since{}, fmt.Errorf("blockio since %q: not a block hash", blockHash)
		}
		h, err := b.blockHeight(ctx, hash)
		if err != nil {
			return chainsync.Since{}, fmt.Errorf("blockio since %s: %w", hash, err)
		}
		from = h
	}

	// The first pages of both listings give the tip; the rest is judged
	// against it.
	lists := []*listing{{b: b, kind: "received"}, {b: b, kind: "sent"}}
	first := make([][]listedTx, len(lists))
	var all []listedTx
	for i, l := range lists {
		page, err := l.next(ctx)
		if err != nil {
			return chainsync.Since{}, fmt.Errorf("blockio since: %w", err)
		}
		first[i] = page
		all = append(all, page...)
	}
	t, known, err := b.tipFrom(ctx, all)
	if err != nil {
		return chainsync.Since{}, fmt.Errorf("blockio since: %w", err)
	}

	// A transaction with c confirmations is in block tip-c+1, tip as
	// counted when its page was served: pages after the first learn it
	// again from their own newest confirmed transaction, in case a block
	// arrived meanwhile.
	isNew := func(tx listedTx, tip int64) bool {
		if from < 0 || tx.Confirmations <= 0 || tip < 0 {
			return true // everything asked for, in the mempool, or cannot be placed
		}
		return tip-int64(tx.Confirmations)+1 > from
	}
	var since chainsync.Since
	listed := map[string]bool{}
	for i, l := range lists {
		page, pageTip := first[i], int64(-1)
		if known {
			pageTip = t.height
		}
		for len(page) > 0 {
			anyNew := false
			for _, tx := range page {
				if !isNew(tx, pageTip) {
					continue
				}
				anyNew = true
				if !listed[tx.TxID] {
					listed[tx.TxID] = true
					since.TxIDs = append(since.TxIDs, tx.TxID)
				}
			}
			if !anyNew && from >= 0 {
				break
			}
			if page, err = l.next(ctx); err != nil {
				return chainsync.Since{}, fmt.Errorf("blockio since: %w", err)
			}
			pageTip = -1
			if from >= 0 || !known {
				pt, ok, err := b.tipFrom(ctx, page)
				if err != nil {
					return chainsync.Since{}, fmt.Errorf("blockio since: %w", err)
				}
				if ok {
					pageTip = pt.height
				}
				if !known && ok {
					t, known = pt, true
				}
			}
		}
	}
	since.LastBlock = blockHash
	if known {
		since.LastBlock = t.hash
	}
	return since, nil
}

// blockHeight is the height of the block with hash (-1 when it cannot be
// found). A hash the backend does not remember (it handed it out before a
// restart) is looked for among the blocks of the wallet's transactions,
// newest first: LastBlock always holds one.
func (b *Backend) blockHeight(ctx context.Context, hash string) (int64, error) {
	b.mu.Lock()
	h, ok := b.blocks[hash]
	b.mu.Unlock()
	if ok {
		return h, nil
	}
	probed := map[int]bool{} // confirmation counts already looked at: one block each
	probes := 0
	for _, kind := range []string{"received", "sent"} {
		l := &listing{b: b, kind: kind}
		for probes < maxProbes {
			page, err := l.next(ctx)
			if err != nil {
				return 0, err
			}
			if len(page) == 0 {
				break
			}
			for _, tx := range page {
				if tx.Confirmations <= 0 || probed[tx.Confirmations] || probes >= maxProbes {
					continue
				}
				probed[tx.Confirmations] = true
				probes++
				raw, err := b.rawTransaction(ctx, tx.TxID)
				if err != nil {
					return 0, err
				}
				if raw.Confirmations > 0 && raw.BlockHash == hash {
					return *raw.BlockNo, nil
				}
			}
		}
	}
	return -1, nil
}
