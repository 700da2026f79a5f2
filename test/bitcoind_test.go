package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coinledger/coinledger/test/btcnode"
)

// TestBitcoindEndToEnd runs the service against a real btcd + btcwallet
// (simnet): deposits notified over HTTP (the coinledger notify client), a
// named pipe and Redis pubsub are seen, then confirmed by blocks; repeated
// notifications credit once; a payment made while the service is down is
// found by the start-up rescan and by POST /rescan; a withdrawal is
// broadcast, its fee charged, and confirmed; a withdrawal requested while
// the wallet node is down is sent once it is back, exactly once.
func TestBitcoindEndToEnd(t *testing.T) {
	node := btcnode.Start(t)
	node.FundWallet(t, 10*btcnode.BTC)
	redisAddr := os.Getenv("COINLEDGER_TEST_REDIS_ADDR")
	if redisAddr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("COINLEDGER_TEST_REDIS_ADDR is not set: run the tests with test/run.sh, which starts Redis")
		}
		t.Skip("COINLEDGER_TEST_REDIS_ADDR is not set; start Redis with: eval \"$(test/servers.sh start)\"")
	}
	dir := t.TempDir()
	pipePath := filepath.Join(dir, "walletnotify.pipe")
	channel := fmt.Sprintf("walletnotify-test-%d", time.Now().UnixNano())
	notifyAddr := freePort(t)
	config := filepath.Join(dir, "coinledger.yml")
	yml := fmt.Sprintf(`
coins:
  - coin: BTC
    backend: bitcoind
    poll_interval: 500ms
    bitcoind:
      url: %q
      network: simnet
      timeout: 10s
walletnotify:
  pipes:
    - path: %q
      coin: BTC
  redis:
    - addr: %q
      channel: %q
      coin: BTC
`, node.WalletURL(), pipePath, redisAddr, channel)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"COINLEDGER_CONFIG=" + config, "COINLEDGER_WALLETNOTIFY_LISTEN=" + notifyAddr}
	data := filepath.Join(dir, "data")
	srv, c := adminServer(t, data, env...)

	c.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "btc", "coin": "BTC", "confirmations": 2,
		"permissions": []string{"read", "address", "transfer", "withdraw", "rescan"}})
	addr := map[string]string{}
	for _, a := range []string{"alice", "bob", "carol"} {
		c.expect(http.StatusCreated, "POST", "/wallets/btc/accounts", map[string]string{"name": a})
		var r struct{ Address string }
		c.expect(http.StatusCreated, "POST", "/wallets/btc/accounts/"+a+"/addresses", nil).JSON(t, &r)
		if !strings.HasPrefix(r.Address, "S") {
			t.Fatalf("address %q is not a simnet address", r.Address)
		}
		addr[a] = r.Address
	}

	// HTTP: the node's walletnotify runs `coinledger notify %s`.
	txAlice := node.Pay(t, addr["alice"], 50_000_000)
	cli(t, "", []string{"COINLEDGER_WALLETNOTIFY_LISTEN=" + notifyAddr}, "notify", txAlice)
	c.waitDeposit(t, "btc", txAlice, "seen", 0)
	if b := c.balance("btc", "alice"); b.Pending != "0.50000000" || b.Available != "0.00000000" {
		t.Fatalf("alice after a seen deposit: %+v", b)
	}

	// Pipe, five times: one credit.
	txBob := node.Pay(t, addr["bob"], 30_000_000)
	pipe, err := os.OpenFile(pipePath, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("walletnotify pipe: %v", err)
	}
	for range 5 {
		fmt.Fprintln(pipe, txBob)
	}
	pipe.Close()
	c.waitDeposit(t, "btc", txBob, "seen", 0)

	// Redis pubsub.
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	txCarol := node.Pay(t, addr["carol"], 20_000_000)
	waitFor(t, "the Redis source to subscribe", func() bool {
		n, err := rdb.Publish(context.Background(), channel, txCarol).Result()
		return err == nil && n > 0
	})
	c.waitDeposit(t, "btc", txCarol, "seen", 0)

	// Blocks confirm them (the block poller follows confirmations), and
	// more notifications of the same txids change nothing.
	node.Mine(t, 2)
	for _, tx := range []string{txAlice, txBob, txCarol} {
		c.waitDeposit(t, "btc", tx, "confirmed", 2)
		for range 5 {
			cli(t, "", []string{"COINLEDGER_WALLETNOTIFY_LISTEN=" + notifyAddr}, "notify", tx)
		}
	}
	want := map[string]string{"alice": "0.50000000", "bob": "0.30000000", "carol": "0.20000000"}
	for a, amount := range want {
		if b := c.balance("btc", a); b.Available != amount || b.Pending != "0.00000000" {
			t.Fatalf("%s after confirmation: %+v, want %s available", a, b, amount)
		}
	}

	// A payment while the service is down: the start-up rescan finds it.
	srv.Stop(t)
	txLost := node.Pay(t, addr["alice"], 25_000_000)
	node.Mine(t, 2)
	_, c = adminServer(t, data, env...)
	c.waitDeposit(t, "btc", txLost, "confirmed", 2)
	// And POST /rescan reports a completed job.
	var job struct{ ID, Status, StatusURL string }
	c.expect(http.StatusAccepted, "POST", "/wallets/btc/rescan", nil).JSON(t, &job)
	waitFor(t, "the rescan to complete", func() bool {
		c.expect(http.StatusOK, "GET", "/wallets/btc/rescans/"+job.ID, nil).JSON(t, &job)
		return job.Status == "completed"
	})
	if b := c.balance("btc", "alice"); b.Available != "0.75000000" {
		t.Fatalf("alice after the rescan: %+v", b)
	}

	// A withdrawal: broadcast with its fee charged, then confirmed.
	payee := node.ExternalAddress(t)
	var wd struct{ ID string }
	c.expect(http.StatusAccepted, "POST", "/wallets/btc/withdrawals",
		map[string]string{"account": "bob", "address": payee, "amount": "0.1"}, "Idempotency-Key", "wd-bob").JSON(t, &wd)
	w := c.waitWithdrawal(t, "btc", wd.ID, "broadcast")
	if got := node.AmountTo(t, w.TxID, payee); got != 10_000_000 {
		t.Fatalf("the withdrawal pays %d to the payee, want 10000000", got)
	}
	if w.Fee == "" || w.Fee == "0.00000000" {
		t.Fatalf("withdrawal without a fee: %+v", w)
	}
	var page struct {
		Entries []struct{ Kind, Reference, Available string }
	}
	c.expect(http.StatusOK, "GET", "/wallets/btc/accounts/bob/entries", nil).JSON(t, &page)
	if len(page.Entries) == 0 || page.Entries[0].Kind != "withdrawal_broadcast" || page.Entries[0].Reference != wd.ID {
		t.Fatalf("bob's entries: %+v", page.Entries)
	}
	node.Mine(t, 2)
	c.waitWithdrawal(t, "btc", wd.ID, "confirmed")

	// The wallet node goes down: the withdrawal waits, then goes out once.
	node.StopWallet(t)
	payee2 := node.ExternalAddress(t)
	c.expect(http.StatusAccepted, "POST", "/wallets/btc/withdrawals",
		map[string]string{"account": "carol", "address": payee2, "amount": "0.05"}, "Idempotency-Key", "wd-carol").JSON(t, &wd)
	time.Sleep(2 * time.Second) // several broadcaster rounds against the dead node
	if w := c.withdrawal("btc", wd.ID); w.Status != "requested" {
		t.Fatalf("withdrawal while the node is down: %+v", w)
	}
	node.StartWallet(t)
	w = c.waitWithdrawal(t, "btc", wd.ID, "broadcast")
	node.Mine(t, 1)
	var sends []struct {
		Category, Address string
	}
	if err := json.Unmarshal(node.WalletRPC(t, "listtransactions", "*", 1000), &sends); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range sends {
		if s.Category == "send" && s.Address == payee2 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d sends to the payee of the withdrawal made while the node was down, want 1", n)
	}
}

type depositJSON struct {
	TxID, Status  string
	Confirmations int
}

// waitDeposit waits until the wallet lists a deposit of txid in status
// with at least confirmations.
func (c *client) waitDeposit(t *testing.T, wallet, txid, status string, confirmations int) depositJSON {
	t.Helper()
	var found depositJSON
	waitFor(t, fmt.Sprintf("deposit %s to be %s", txid, status), func() bool {
		var page struct{ Deposits []depositJSON }
		c.expect(http.StatusOK, "GET", "/wallets/"+wallet+"/deposits", nil).JSON(t, &page)
		for _, d := range page.Deposits {
			if d.TxID == txid && d.Status == status && d.Confirmations >= confirmations {
				found = d
				return true
			}
		}
		return false
	})
	return found
}

type withdrawalJSON struct {
	ID, Status, TxID, Fee, Error string
}

func (c *client) withdrawal(wallet, id string) withdrawalJSON {
	var w withdrawalJSON
	c.expect(http.StatusOK, "GET", "/wallets/"+wallet+"/withdrawals/"+id, nil).JSON(c.t, &w)
	return w
}

func (c *client) waitWithdrawal(t *testing.T, wallet, id, status string) withdrawalJSON {
	t.Helper()
	var w withdrawalJSON
	waitFor(t, "withdrawal "+id+" to be "+status, func() bool {
		w = c.withdrawal(wallet, id)
		if w.Status == "failed" || w.Status == "unknown" {
			t.Fatalf("withdrawal %s: %+v", id, w)
		}
		return w.Status == status
	})
	return w
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
