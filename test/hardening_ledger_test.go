package test

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestIdempotentRefusalIsRemembered: the first answer for an
// Idempotency-Key is its answer for good, refusals included. A transfer
// refused for insufficient funds stays refused after the account is funded
// and after a restart; one refused on a locked wallet stays refused after
// unlocking; nothing moves. A request refused by validation (nothing
// decided) is not remembered.
func TestIdempotentRefusalIsRemembered(t *testing.T) {
	dir := t.TempDir()
	s, c := adminServer(t, dir)
	setUpWallet(t, c, "idem", nil, "alice", "bob")
	body := map[string]string{"from": "alice", "to": "bob", "amount": "0.50000000"}

	first := c.expect(http.StatusConflict, "POST", "/wallets/idem/transfers", body, "Idempotency-Key", "K")
	if first.problemCode() != "insufficient_funds" || first.Header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first answer %s (replayed %q)", first.Body, first.Header.Get("Idempotent-Replayed"))
	}
	c.expect(http.StatusCreated, "POST", "/wallets/idem/accounts/alice/imports",
		map[string]string{"amount": "1.00000000", "reason": "funds arrive"}, "Idempotency-Key", "fund-alice")

	replayed := func(c *client, key, code string) {
		t.Helper()
		r := c.expect(http.StatusConflict, "POST", "/wallets/idem/transfers", body, "Idempotency-Key", key)
		if r.problemCode() != code || r.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("replay of %s: %s (Idempotent-Replayed %q), want %s replayed", key, r.Body, r.Header.Get("Idempotent-Replayed"), code)
		}
	}
	replayed(c, "K", "insufficient_funds")
	if b := c.balance("idem", "alice"); b.Available != "1.00000000" {
		t.Fatalf("alice after the replay: %+v; nothing may move", b)
	}
	other := map[string]string{"from": "alice", "to": "bob", "amount": "0.60000000"}
	if r := c.expect(http.StatusUnprocessableEntity, "POST", "/wallets/idem/transfers", other, "Idempotency-Key", "K"); r.problemCode() != "idempotency_key_reused" {
		t.Fatalf("other body under K: %s", r.Body)
	}

	// A locked wallet's refusal holds after unlocking.
	c.expect(http.StatusOK, "POST", "/wallets/idem/lock", map[string]string{"reason": "audit"})
	if r := c.expect(http.StatusConflict, "POST", "/wallets/idem/transfers", body, "Idempotency-Key", "L"); r.problemCode() != "wallet_locked" {
		t.Fatalf("transfer from a locked wallet: %s", r.Body)
	}
	c.expect(http.StatusOK, "POST", "/wallets/idem/unlock", nil)
	replayed(c, "L", "wallet_locked")

	// Validation errors decide nothing: the key is free for the fixed request.
	if r := c.do("POST", "/wallets/idem/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.000000001"},
		"Idempotency-Key", "V"); r.Status != http.StatusBadRequest || r.problemCode() != "invalid_amount" {
		t.Fatalf("bad amount: %d %s", r.Status, r.Body)
	}
	c.expect(http.StatusCreated, "POST", "/wallets/idem/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.10000000"},
		"Idempotency-Key", "V")

	// After a restart the log still answers.
	s.Stop(t)
	_, c2 := adminServer(t, dir)
	replayed(c2, "K", "insufficient_funds")
	replayed(c2, "L", "wallet_locked")
	if a, b := c2.balance("idem", "alice"), c2.balance("idem", "bob"); a.Available != "0.90000000" || b.Available != "0.10000000" {
		t.Fatalf("after restart alice %+v bob %+v, want 0.9 and 0.1", a, b)
	}
}

// TestHoldExpiresByItself: a hold's expires_at ends it without a release
// call (the scheduler records hold_expired), an expiry in the past or
// before 2000 is refused, and an expired hold cannot be released.
func TestHoldExpiresByItself(t *testing.T) {
	_, c := adminServer(t, "")
	setUpWallet(t, c, "exp", map[string]string{"alice": "1.00000000"}, "alice")
	holds := "/wallets/exp/accounts/alice/holds"

	for _, at := range []string{time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "1999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"} {
		r := c.do("POST", holds, map[string]string{"amount": "0.1", "expires_at": at})
		var p struct {
			Code   string
			Errors []struct{ Field string }
		}
		r.JSON(t, &p)
		if r.Status != http.StatusBadRequest || p.Code != "validation_failed" || len(p.Errors) != 1 || p.Errors[0].Field != "expires_at" {
			t.Errorf("expires_at %s: %d %s, want 400 validation_failed naming expires_at", at, r.Status, r.Body)
		}
	}
	if b := c.balance("exp", "alice"); b.Available != "1.00000000" || b.Held != "0.00000000" {
		t.Fatalf("refused holds held funds: %+v", b)
	}

	expires := time.Now().Add(2 * time.Second).UTC()
	var h struct{ ID string }
	c.expect(http.StatusCreated, "POST", holds, map[string]string{"amount": "0.40000000", "reason": "review",
		"expires_at": expires.Format(time.RFC3339Nano)}).JSON(t, &h)
	if b := c.balance("exp", "alice"); b.Available != "0.60000000" || b.Held != "0.40000000" {
		t.Fatalf("alice with the hold: %+v", b)
	}
	type holdJSON struct {
		ID, Account, Amount, Status string
		ExpiresAt                   time.Time `json:"expires_at"`
	}
	var got holdJSON
	c.expect(http.StatusOK, "GET", "/wallets/exp/holds/"+h.ID, nil).JSON(t, &got)
	if got.Status != "active" || got.Amount != "0.40000000" || !got.ExpiresAt.Equal(expires.Truncate(time.Microsecond)) {
		t.Fatalf("hold %+v", got)
	}

	// No release call: the funds come back by themselves, and the ledger
	// records the expiry (an entry of kind hold_expiry).
	deadline := time.Now().Add(15 * time.Second)
	for {
		var page struct {
			Entries []struct{ Kind, Reference string }
		}
		c.expect(http.StatusOK, "GET", "/wallets/exp/accounts/alice/entries", nil).JSON(t, &page)
		if len(page.Entries) > 0 && page.Entries[0].Kind == "hold_expiry" && page.Entries[0].Reference == h.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hold_expiry entry within 15 s of placing a hold expiring after 2 s: %+v", page.Entries)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b := c.balance("exp", "alice"); b.Available != "1.00000000" || b.Held != "0.00000000" {
		t.Fatalf("alice after the expiry: %+v", b)
	}
	c.expect(http.StatusOK, "GET", "/wallets/exp/holds/"+h.ID, nil).JSON(t, &got)
	if got.Status != "expired" {
		t.Fatalf("hold after its expiry: %+v", got)
	}
	if r := c.expect(http.StatusNotFound, "POST", fmt.Sprintf("/wallets/exp/holds/%s/release", h.ID), nil); r.problemCode() != "hold_not_found" {
		t.Fatalf("release after expiry: %s", r.Body)
	}
}
