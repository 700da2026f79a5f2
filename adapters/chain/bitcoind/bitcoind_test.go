package bitcoind

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/chain/chaintest"
	"github.com/coinledger/coinledger/adapters/secret"
	"github.com/coinledger/coinledger/app/chainsync"
	"github.com/coinledger/coinledger/test/btcnode"
)

// open returns a Backend of node's wallet.
func open(t testing.TB, node *btcnode.Node) *Backend {
	t.Helper()
	b, err := Open(Config{URL: node.WalletURL(), Network: "simnet", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	t.Parallel()
	chaintest.Run(t, func(t *testing.T) chaintest.Fixture {
		node := btcnode.Start(t)
		node.FundWallet(t, 10*btcnode.BTC)
		return chaintest.Fixture{
			Backend:  open(t, node),
			Pay:      node.Pay,
			Mine:     node.Mine,
			External: node.ExternalAddress,
			Amount:   btcnode.BTC,
		}
	})
}

// TestBtcwallet covers what the suite does not: exact amounts, the fee
// taken out of the amount, and the wallet going down.
func TestBtcwallet(t *testing.T) {
	t.Parallel()
	node := btcnode.Start(t)
	node.FundWallet(t, 10*btcnode.BTC)
	b := open(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	t.Run("ExactAmounts", func(t *testing.T) {
		// btcwallet writes 1000 satoshis as 1e-05, 123456789 as 1.23456789.
		for _, amount := range []int64{1000, 123_456_789, 999*btcnode.BTC + 1} {
			addr, err := b.NewAddress(ctx)
			must(t, err)
			txid := node.Pay(t, addr, amount)
			tx, err := b.Transaction(ctx, txid)
			must(t, err)
			if len(tx.Received) != 1 || tx.Received[0].Amount != amount || tx.Received[0].Address != addr || tx.Fee != 0 {
				t.Fatalf("paid %d to %s: %+v", amount, addr, tx)
			}
			node.Mine(t, 1)
		}
	})

	t.Run("SendSubtractFee", func(t *testing.T) {
		ext := node.ExternalAddress(t)
		const amount = 30_000_000
		sent, err := b.Send(ctx, ext, amount, true)
		must(t, err)
		got := node.AmountTo(t, sent.TxID, ext)
		// The fee comes out of the amount; change below the dust limit
		// would have gone to the fee too.
		if sent.Fee <= 0 || got+sent.Fee < amount || got+sent.Fee >= amount+dustLimit {
			t.Fatalf("sent %+v: %s got %d of %d", sent, ext, got, amount)
		}
		// The wallet learns of the transaction from btcd.
		deadline := time.Now().Add(10 * time.Second)
		for {
			tx, err := b.Transaction(ctx, sent.TxID)
			if err == nil {
				if tx.Fee != sent.Fee || tx.Confirmations != 0 || len(tx.Received) != 0 {
					t.Fatalf("wallet's view of %+v: %+v", sent, tx)
				}
				break
			}
			if !errors.Is(err, chainsync.ErrTxNotFound) || time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		// The coins it spent are locked: a second send takes others.
		again, err := b.Send(ctx, ext, amount, true)
		must(t, err)
		node.Mine(t, 1)
		for _, txid := range []string{sent.TxID, again.TxID} {
			if tx, err := b.Transaction(ctx, txid); err != nil || tx.Confirmations != 1 {
				t.Fatalf("%s after a block: %+v, %v", txid, tx, err)
			}
		}
	})

	t.Run("SendSubtractFeeRejected", func(t *testing.T) {
		for name, send := range map[string]func() error{
			"invalid address": func() error { _, err := b.Send(ctx, "not-an-address", 100_000, true); return err },
			"too much":        func() error { _, err := b.Send(ctx, node.ExternalAddress(t), 1<<62, true); return err },
			"below the fee":   func() error { _, err := b.Send(ctx, node.ExternalAddress(t), 600, true); return err },
		} {
			if err := send(); !errors.Is(err, chainsync.ErrRejected) {
				t.Errorf("%s: %v, want ErrRejected", name, err)
			}
		}
	})

	t.Run("WalletDown", func(t *testing.T) {
		h0, err := b.Height(ctx)
		must(t, err)
		node.StopWallet(t)
		// Reads are retried (by rpcclient) until the timeout: ask with a
		// short one, all at once.
		const timeout = 2 * time.Second
		short, err := Open(Config{URL: node.WalletURL(), Network: "simnet", Timeout: timeout})
		must(t, err)
		defer short.Close()
		ext := node.ExternalAddress(t)
		calls := map[string]func() error{
			"height":      func() error { _, err := short.Height(ctx); return err },
			"new address": func() error { _, err := short.NewAddress(ctx); return err },
			"transaction": func() error { _, err := short.Transaction(ctx, "00"+hash64[2:]); return err },
			"since block": func() error { _, err := short.SinceBlock(ctx, ""); return err },
			"send":        func() error { _, err := short.Send(ctx, ext, 100_000, false); return err },
		}
		var wg sync.WaitGroup
		for name, call := range calls {
			wg.Go(func() {
				began := time.Now()
				if err := call(); !errors.Is(err, chainsync.ErrUnavailable) {
					t.Errorf("%s while the wallet is down: %v, want ErrUnavailable", name, err)
				}
				if d := time.Since(began); d > timeout+2*time.Second {
					t.Errorf("%s while the wallet is down took %s, timeout %s", name, d, timeout)
				}
			})
		}
		wg.Wait()
		node.Mine(t, 2)
		node.StartWallet(t)
		h, err := b.Height(ctx)
		must(t, err)
		if h != h0+2 {
			t.Fatalf("height %d after the wallet came back, want %d", h, h0+2)
		}
		if _, err := b.Send(ctx, node.ExternalAddress(t), 100_000, false); err != nil {
			t.Fatalf("send after the wallet came back: %v", err)
		}
	})
}

const hash64 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestBalance: the wallet's balance counts a receipt in all at once and as
// confirmed once it is mined.
func TestBalance(t *testing.T) {
	t.Parallel()
	node := btcnode.Start(t)
	node.FundWallet(t, 10*btcnode.BTC)
	b := open(t, node)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	waitBalance := func(confirmed, total int64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			c, all, err := b.Balance(ctx)
			must(t, err)
			if c == confirmed && all == total {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("balance %d confirmed, %d in all; want %d, %d", c, all, confirmed, total)
			}
		}
	}
	waitBalance(10*btcnode.BTC, 10*btcnode.BTC)
	addr, err := b.NewAddress(ctx)
	must(t, err)
	node.Pay(t, addr, 123_456_789)
	waitBalance(10*btcnode.BTC, 10*btcnode.BTC+123_456_789)
	node.Mine(t, 1)
	waitBalance(10*btcnode.BTC+123_456_789, 10*btcnode.BTC+123_456_789)
}

// TestEncryptedWallet: btcwallet's wallet is encrypted. Locked, a send
// without a passphrase configured sends nothing (ErrUnavailable: the
// withdrawal stays requested); with wallet_passphrase the backend unlocks
// it for the send and locks it again, for both ways of sending
// (sendtoaddress, and the transaction built here for a subtract-fee send);
// a wrong passphrase sends nothing, is ErrUnavailable naming the setting
// and never shows the passphrase.
func TestEncryptedWallet(t *testing.T) {
	t.Parallel()
	node := btcnode.Start(t)
	node.FundWallet(t, 10*btcnode.BTC)
	node.WalletRPC(t, "walletlock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	plain := open(t, node)
	withPassphrase := func(p string) *Backend {
		b, err := Open(Config{URL: node.WalletURL(), Network: "simnet", Timeout: 10 * time.Second,
			WalletPassphrase: secret.String(p), UnlockTimeout: time.Minute})
		must(t, err)
		t.Cleanup(func() { b.Close() })
		return b
	}
	stillLocked := func(when string) {
		t.Helper()
		for _, subtractFee := range []bool{false, true} {
			if sent, err := plain.Send(ctx, node.ExternalAddress(t), 100_000, subtractFee); !errors.Is(err, chainsync.ErrUnavailable) {
				t.Fatalf("%s, a send without the passphrase (subtract fee %v): %+v, %v; want ErrUnavailable", when, subtractFee, sent, err)
			}
		}
	}
	stillLocked("locked")

	b := withPassphrase(btcnode.WalletPassphrase)
	for _, subtractFee := range []bool{false, true} {
		ext := node.ExternalAddress(t)
		sent, err := b.Send(ctx, ext, 20_000_000, subtractFee)
		if err != nil {
			t.Fatalf("send with the passphrase (subtract fee %v): %v", subtractFee, err)
		}
		if got := node.AmountTo(t, sent.TxID, ext); got <= 0 {
			t.Fatalf("%s paid %d to %s", sent.TxID, got, ext)
		}
		node.Mine(t, 1) // the change confirmed: the built send picks confirmed coins only
		stillLocked("after a send")
	}

	const wrong = "not-the-passphrase"
	sent, err := withPassphrase(wrong).Send(ctx, node.ExternalAddress(t), 100_000, false)
	if !errors.Is(err, chainsync.ErrUnavailable) || !strings.Contains(err.Error(), "wallet_passphrase") || sent.TxID != "" {
		t.Fatalf("wrong passphrase: %+v, %v; want ErrUnavailable naming wallet_passphrase", sent, err)
	}
	if strings.Contains(err.Error(), wrong) {
		t.Fatalf("the error shows the passphrase: %v", err)
	}
	stillLocked("after a wrong passphrase")
}
