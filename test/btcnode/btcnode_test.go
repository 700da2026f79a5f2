package btcnode

import (
	"encoding/json"
	"testing"
	"time"
)

func TestNode(t *testing.T) {
	began := time.Now()
	n := Start(t)
	t.Logf("start: %s", time.Since(began))

	var addr string
	mustUnmarshal(t, n.WalletRPC(t, "getnewaddress"), &addr)
	began = time.Now()
	txid := n.Pay(t, addr, 123_456_789)
	t.Logf("pay: %s", time.Since(began))
	if got := n.AmountTo(t, txid, addr); got != 123_456_789 {
		t.Fatalf("amount to %s: %d", addr, got)
	}
	var tx struct {
		Confirmations int64 `json:"confirmations"`
	}
	mustUnmarshal(t, n.WalletRPC(t, "gettransaction", txid), &tx)
	if tx.Confirmations != 0 {
		t.Fatalf("paid tx before mining: %+v", tx)
	}

	began = time.Now()
	n.Mine(t, 1)
	t.Logf("mine 1: %s", time.Since(began))
	mustUnmarshal(t, n.WalletRPC(t, "gettransaction", txid), &tx)
	if tx.Confirmations != 1 {
		t.Fatalf("paid tx after a block: %+v", tx)
	}

	began = time.Now()
	funding := n.FundWallet(t, 5*BTC)
	t.Logf("fund: %s", time.Since(began))
	mustUnmarshal(t, n.WalletRPC(t, "gettransaction", funding), &tx)
	if tx.Confirmations != 1 {
		t.Fatalf("funding tx: %+v", tx)
	}

	// Pays to addresses outside the wallet do not wait for it.
	ext := n.ExternalAddress(t)
	if ext == n.ExternalAddress(t) {
		t.Fatal("external addresses repeat")
	}
	began = time.Now()
	extTx := n.Pay(t, ext, 1000)
	t.Logf("pay external: %s", time.Since(began))
	if got := n.AmountTo(t, extTx, ext); got != 1000 {
		t.Fatalf("paid %d to %s", got, ext)
	}

	began = time.Now()
	n.StopWallet(t)
	t.Logf("stop wallet: %s", time.Since(began))
	n.Mine(t, 2) // btcd goes on without the wallet
	began = time.Now()
	n.StartWallet(t)
	t.Logf("start wallet: %s", time.Since(began))
	var count int64
	mustUnmarshal(t, n.WalletRPC(t, "getblockcount"), &count)
	if want := int64(InitialBlocks + 4); count != want {
		t.Fatalf("wallet at block %d after restart, want %d", count, want)
	}
}

func mustUnmarshal(t testing.TB, data json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
}

func TestStartSkipsWithoutBinaries(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	reached := false
	t.Run("start", func(t *testing.T) {
		Start(t)
		reached = true
	})
	if reached {
		t.Fatal("Start went on without btcd and btcwallet")
	}
}
