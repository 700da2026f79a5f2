// Package chaintest is the conformance suite every chainsync.Backend passes:
// the simulated null chain, bitcoind (against btcd+btcwallet on simnet) and
// block.io (against recorded responses).
package chaintest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/chainsync"
)

// Fixture is a backend with the means to move its chain from outside.
type Fixture struct {
	Backend chainsync.Backend
	// Pay sends amount minor units from outside the wallet to address and
	// returns the txid; the payment is in the mempool when Pay returns and
	// the backend can see it.
	Pay func(t testing.TB, address string, amount int64) string
	// Mine mines n blocks and returns once the backend reports them.
	Mine func(t testing.TB, n int)
	// External returns a valid address that is not the wallet's.
	External func(t testing.TB) string
	// Amount is a payment size the chain accepts (minor units); Send tests
	// send a fraction of it.
	Amount int64
}

var hash64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Run runs the suite. newFixture is called once; the subtests run in order
// on one chain (real nodes are slow to start).
func Run(t *testing.T, newFixture func(t *testing.T) Fixture) {
	f := newFixture(t)
	b := f.Backend
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	var addr, txid string
	t.Run("NewAddressIsFresh", func(t *testing.T) {
		a1, err := b.NewAddress(ctx)
		must(t, err)
		a2, err := b.NewAddress(ctx)
		must(t, err)
		if a1 == "" || a1 == a2 {
			t.Fatalf("addresses %q and %q", a1, a2)
		}
		addr = a1
	})
	t.Run("UnknownTransaction", func(t *testing.T) {
		var r [32]byte
		_, _ = rand.Read(r[:])
		_, err := b.Transaction(ctx, hex.EncodeToString(r[:]))
		if !errors.Is(err, chainsync.ErrTxNotFound) {
			t.Fatalf("unknown txid: %v, want ErrTxNotFound", err)
		}
	})
	t.Run("PaymentInMempool", func(t *testing.T) {
		txid = f.Pay(t, addr, f.Amount)
		tx, err := b.Transaction(ctx, txid)
		must(t, err)
		if tx.TxID != txid || tx.Confirmations != 0 || tx.BlockHash != "" {
			t.Fatalf("mempool tx: %+v", tx)
		}
		want := chainsync.Output{Address: addr, Amount: f.Amount}
		if i := slices.IndexFunc(tx.Received, func(o chainsync.Output) bool { return o.Address == want.Address && o.Amount == want.Amount }); i < 0 {
			t.Fatalf("received %+v, want an output %+v", tx.Received, want)
		}
	})
	var since chainsync.Since
	t.Run("SinceBlockListsMempool", func(t *testing.T) {
		var err error
		since, err = b.SinceBlock(ctx, "")
		must(t, err)
		if !slices.Contains(since.TxIDs, txid) || !hash64.MatchString(since.LastBlock) {
			t.Fatalf("since genesis: %+v, want %s in it", since, txid)
		}
	})
	t.Run("ConfirmationsAdvanceWithBlocks", func(t *testing.T) {
		h0, err := b.Height(ctx)
		must(t, err)
		f.Mine(t, 1)
		tx1, err := b.Transaction(ctx, txid)
		must(t, err)
		f.Mine(t, 2)
		tx3, err := b.Transaction(ctx, txid)
		must(t, err)
		h3, err := b.Height(ctx)
		must(t, err)
		if h3 != h0+3 {
			t.Fatalf("height %d after 3 blocks on %d", h3, h0)
		}
		if tx1.Confirmations != 1 || tx3.Confirmations != 3 || tx1.BlockHash != tx3.BlockHash || !hash64.MatchString(tx3.BlockHash) {
			t.Fatalf("after 1 block %+v, after 3 %+v", tx1, tx3)
		}
	})
	t.Run("SinceBlockAfterMining", func(t *testing.T) {
		later, err := b.SinceBlock(ctx, since.LastBlock)
		must(t, err)
		if later.LastBlock == since.LastBlock {
			t.Fatalf("last block did not move: %+v", later)
		}
		now, err := b.SinceBlock(ctx, later.LastBlock)
		must(t, err)
		if slices.Contains(now.TxIDs, txid) {
			t.Fatalf("since the tip: %+v still lists %s", now, txid)
		}
	})
	var sent chainsync.Sent
	t.Run("Send", func(t *testing.T) {
		var err error
		sent, err = b.Send(ctx, f.External(t), f.Amount/4, false)
		must(t, err)
		if !hash64.MatchString(sent.TxID) || sent.Fee <= 0 {
			t.Fatalf("sent %+v", sent)
		}
		tx, err := b.Transaction(ctx, sent.TxID)
		must(t, err)
		if tx.Confirmations != 0 || tx.Fee != sent.Fee || len(tx.Received) != 0 {
			t.Fatalf("sent tx: %+v, want unconfirmed, fee %d, nothing received", tx, sent.Fee)
		}
		f.Mine(t, 1)
		tx, err = b.Transaction(ctx, sent.TxID)
		must(t, err)
		if tx.Confirmations != 1 {
			t.Fatalf("sent tx after a block: %+v", tx)
		}
	})
	t.Run("SendSubtractFee", func(t *testing.T) {
		s, err := b.Send(ctx, f.External(t), f.Amount/8, true)
		must(t, err)
		if s.Fee <= 0 || s.TxID == sent.TxID {
			t.Fatalf("sent %+v", s)
		}
	})
	t.Run("SendRejected", func(t *testing.T) {
		for name, send := range map[string]func() error{
			"invalid address": func() error { _, err := b.Send(ctx, "not-an-address!", f.Amount/4, false); return err },
			"too much":        func() error { _, err := b.Send(ctx, f.External(t), 1<<62, false); return err },
		} {
			if err := send(); !errors.Is(err, chainsync.ErrRejected) {
				t.Errorf("%s: %v, want ErrRejected", name, err)
			}
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
