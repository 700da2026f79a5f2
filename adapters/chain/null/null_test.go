package null

import (
	"context"
	"errors"
	"testing"

	"github.com/coinledger/coinledger/adapters/chain/chaintest"
	"github.com/coinledger/coinledger/app/chainsync"
)

func TestConformance(t *testing.T) {
	chaintest.Run(t, func(t *testing.T) chaintest.Fixture {
		c := New("BTC")
		return chaintest.Fixture{
			Backend:  c,
			Pay:      func(_ testing.TB, address string, amount int64) string { return c.Pay(address, amount) },
			Mine:     func(_ testing.TB, n int) { c.Mine(n) },
			External: func(testing.TB) string { return "ext1external" },
			Amount:   100_000,
		}
	})
}

func TestDeterministicAddresses(t *testing.T) {
	ctx := context.Background()
	a1, _ := New("BTC").NewAddress(ctx)
	a2, _ := New("BTC").NewAddress(ctx)
	if a1 != a2 {
		t.Fatalf("%s != %s", a1, a2)
	}
}

func TestReorg(t *testing.T) {
	ctx := context.Background()
	c := New("BTC")
	addr, _ := c.NewAddress(ctx)
	kept, dropped := c.Pay(addr, 10), ""
	c.Mine(1)
	dropped = c.Pay(addr, 20)
	c.Mine(2)
	before, _ := c.Transaction(ctx, kept)

	// Replace the last two blocks: dropped (in the first of them) leaves
	// the chain; kept is older than the fork and stays.
	if tip := c.Reorg(2, false); tip != 4 {
		t.Fatalf("tip %d after reorg, want 4", tip)
	}
	if _, err := c.Transaction(ctx, dropped); !errors.Is(err, chainsync.ErrTxNotFound) {
		t.Fatalf("dropped tx: %v", err)
	}
	after, _ := c.Transaction(ctx, kept)
	if after.BlockHash != before.BlockHash || after.Confirmations != 4 {
		t.Fatalf("kept tx %+v, was %+v", after, before)
	}

	// Reorg keeping the transactions: re-mined in another block.
	c.Reorg(4, true)
	moved, _ := c.Transaction(ctx, kept)
	if moved.BlockHash == before.BlockHash || moved.Confirmations != 5 {
		t.Fatalf("re-mined tx %+v, was %+v", moved, before)
	}
}

func TestDoubleSpendAndOutage(t *testing.T) {
	ctx := context.Background()
	c := New("BTC")
	addr, _ := c.NewAddress(ctx)
	txid := c.Pay(addr, 10)
	if err := c.DoubleSpend(txid); err != nil {
		t.Fatal(err)
	}
	if tx, _ := c.Transaction(ctx, txid); tx.Confirmations != -1 || tx.BlockHash != "" {
		t.Fatalf("conflicted tx: %+v", tx)
	}
	c.SetDown(true)
	if _, err := c.Height(ctx); !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("height while down: %v", err)
	}
	c.SetDown(false)
	if _, err := c.Height(ctx); err != nil {
		t.Fatal(err)
	}
}
