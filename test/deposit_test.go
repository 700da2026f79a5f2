package test

import (
	"net/http"
	"testing"
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
	// Only admins simulate.
	c.expect(http.StatusNotFound, "POST", "/wallets/nowhere/simulate/blocks", map[string]int{"count": 1})
}
