package test

import (
	"net/http"
	"testing"
	"time"
)

// TestSimulatedDeposit drives the null backend: an account's address is
// paid on the simulated chain, the deposit is pending until the wallet's
// confirmation threshold, then available; repeated notifications credit
// once.
func TestSimulatedDeposit(t *testing.T) {
	_, c := adminServer(t, "")
	c.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "cold", "coin": "BTC",
		"permissions": []string{"read", "address", "transfer"}, "confirmations": 3})
	c.expect(http.StatusCreated, "POST", "/wallets/cold/accounts", map[string]string{"name": "alice"})
	var addr struct{ Address string }
	c.expect(http.StatusCreated, "POST", "/wallets/cold/accounts/alice/addresses", nil).JSON(t, &addr)
	if len(addr.Address) < 10 {
		t.Fatalf("address %q", addr.Address)
	}
	var tx struct{ TxID string }
	c.expect(http.StatusCreated, "POST", "/wallets/cold/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "0.50000000", "confirmations": 0}).JSON(t, &tx)
	if b := c.balance("cold", "alice"); b.Pending != "0.50000000" || b.Available != "0.00000000" {
		t.Fatalf("after the payment: %+v", b)
	}
	c.expect(http.StatusOK, "POST", "/wallets/cold/simulate/blocks", map[string]int{"count": 2})
	if b := c.balance("cold", "alice"); b.Pending != "0.50000000" {
		t.Fatalf("at 2 of 3 confirmations: %+v", b)
	}
	c.expect(http.StatusOK, "POST", "/wallets/cold/simulate/blocks", map[string]int{"count": 1})
	if b := c.balance("cold", "alice"); b.Available != "0.50000000" || b.Pending != "0.00000000" {
		t.Fatalf("at 3 confirmations: %+v", b)
	}
	// More blocks and repeated notifications change nothing.
	for i := 0; i < 5; i++ {
		c.expect(http.StatusOK, "POST", "/wallets/cold/simulate/blocks", map[string]int{"count": 1})
	}
	if b := c.balance("cold", "alice"); b.Available != "0.50000000" || b.Total != "0.50000000" {
		t.Fatalf("after more blocks: %+v", b)
	}
	var page struct {
		Entries []struct{ Kind, Reference string }
	}
	c.expect(http.StatusOK, "GET", "/wallets/cold/accounts/alice/entries", nil).JSON(t, &page)
	if len(page.Entries) != 2 {
		t.Fatalf("entries %+v, want the deposit seen and confirmed", page.Entries)
	}
	var deposits struct {
		Deposits []struct {
			ID, Status, Amount string
			Confirmations      int
		}
	}
	c.expect(http.StatusOK, "GET", "/wallets/cold/deposits", nil).JSON(t, &deposits)
	if len(deposits.Deposits) != 1 || deposits.Deposits[0].Status != "confirmed" || deposits.Deposits[0].Confirmations != 8 {
		t.Fatalf("deposits %+v", deposits.Deposits)
	}
	c.expect(http.StatusNotFound, "POST", "/wallets/nowhere/simulate/blocks", map[string]int{"count": 1})
}

// TestSimulatedReorgAndWithdrawal: a confirmed deposit reorged out of the
// chain is reversed, visibly; a withdrawal is broadcast by the coin's
// broadcaster and confirmed by later blocks, its fee charged.
func TestSimulatedReorgAndWithdrawal(t *testing.T) {
	_, c := adminServer(t, "")
	c.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "hot", "coin": "BTC",
		"permissions": []string{"read", "address", "transfer", "withdraw"}, "confirmations": 1})
	c.expect(http.StatusCreated, "POST", "/wallets/hot/accounts", map[string]string{"name": "bob"})
	var addr struct{ Address string }
	c.expect(http.StatusCreated, "POST", "/wallets/hot/accounts/bob/addresses", nil).JSON(t, &addr)
	c.expect(http.StatusCreated, "POST", "/wallets/hot/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "1", "confirmations": 1})
	c.expect(http.StatusCreated, "POST", "/wallets/hot/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "0.25", "confirmations": 1})
	if b := c.balance("hot", "bob"); b.Available != "1.25000000" {
		t.Fatalf("after two deposits: %+v", b)
	}
	// The last block is replaced and its transaction dropped: the 0.25
	// deposit is reversed.
	c.expect(http.StatusOK, "POST", "/wallets/hot/simulate/blocks", map[string]any{"count": 1, "reorg": 1, "drop": true})
	if b := c.balance("hot", "bob"); b.Available != "1.00000000" {
		t.Fatalf("after the reorg: %+v", b)
	}
	var reversed struct {
		Deposits []struct{ Status, Reason, Amount string }
	}
	c.expect(http.StatusOK, "GET", "/wallets/hot/deposits?status=reversed", nil).JSON(t, &reversed)
	if len(reversed.Deposits) != 1 || reversed.Deposits[0].Reason != "reorg" || reversed.Deposits[0].Amount != "0.25000000" {
		t.Fatalf("reversed deposits %+v", reversed.Deposits)
	}

	// A payment double-spent before it confirms is reversed too.
	var ds struct{ TxID string }
	c.expect(http.StatusCreated, "POST", "/wallets/hot/simulate/deposit",
		map[string]any{"address": addr.Address, "amount": "0.5", "confirmations": 0}).JSON(t, &ds)
	c.expect(http.StatusOK, "POST", "/wallets/hot/simulate/blocks", map[string]any{"count": 1, "double_spend": ds.TxID})
	c.expect(http.StatusOK, "GET", "/wallets/hot/deposits?status=reversed", nil).JSON(t, &reversed)
	if b := c.balance("hot", "bob"); len(reversed.Deposits) != 2 || reversed.Deposits[0].Reason != "double_spend" || b.Pending != "0.00000000" {
		t.Fatalf("after a double spend: %+v, %+v", reversed.Deposits, b)
	}

	var created struct{ ID, Status string }
	c.expect(http.StatusAccepted, "POST", "/wallets/hot/withdrawals",
		map[string]any{"account": "bob", "address": "ext1payee", "amount": "0.4"}, "Idempotency-Key", "wd-1").JSON(t, &created)
	var wd struct{ Status, TxID, Fee string }
	for i := 0; wd.Status != "broadcast"; i++ {
		if i > 200 {
			t.Fatalf("withdrawal not broadcast: %+v", wd)
		}
		time.Sleep(50 * time.Millisecond)
		c.expect(http.StatusOK, "GET", "/wallets/hot/withdrawals/"+created.ID, nil).JSON(t, &wd)
	}
	if wd.Fee != "0.00001000" || len(wd.TxID) != 64 {
		t.Fatalf("broadcast withdrawal %+v", wd)
	}
	if b := c.balance("hot", "bob"); b.Available != "0.59999000" || b.Held != "0.00000000" {
		t.Fatalf("after the broadcast: %+v", b)
	}
	// Only a withdrawal whose outcome is unknown can be resolved by hand.
	if code := c.expect(http.StatusConflict, "POST", "/wallets/hot/withdrawals/"+created.ID+"/resolve",
		map[string]any{"outcome": "failed", "reason": "operator"}).problemCode(); code != "withdrawal_state" {
		t.Fatalf("resolving a broadcast withdrawal: %s", code)
	}
	c.expect(http.StatusNotFound, "POST", "/wallets/hot/withdrawals/wd-nope/resolve", map[string]any{"outcome": "failed"})
	c.expect(http.StatusOK, "POST", "/wallets/hot/simulate/blocks", map[string]any{"count": 1})
	c.expect(http.StatusOK, "GET", "/wallets/hot/withdrawals/"+created.ID, nil).JSON(t, &wd)
	if wd.Status != "confirmed" {
		t.Fatalf("after a block: %+v", wd)
	}
	// The same request again is a replay, not a second withdrawal.
	var again struct{ ID string }
	c.expect(http.StatusAccepted, "POST", "/wallets/hot/withdrawals",
		map[string]any{"account": "bob", "address": "ext1payee", "amount": "0.4"}, "Idempotency-Key", "wd-1").JSON(t, &again)
	if again.ID != created.ID {
		t.Fatalf("replay made withdrawal %s, want %s", again.ID, created.ID)
	}
}
