package test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestServePostgresEventStore runs the service with its event store and
// read models in Postgres (two fresh schemas).
func TestServePostgresEventStore(t *testing.T) {
	testServeAnswersHealth(t, "COINLEDGER_EVENT_STORE="+dbtest.PostgresURL(t), "COINLEDGER_READ_MODELS="+dbtest.PostgresURL(t))
}

// TestTwoServersShareAPostgresEventStore: two `coinledger serve` processes
// on one Postgres event store, each with read models of its own. The
// second starts once the first has set up a wallet. A
// transfer made on one is seen on the other (read with min_position, the
// position the write answered), and transfers on both to the same wallet
// all land: the balances add up on both.
func TestTwoServersShareAPostgresEventStore(t *testing.T) {
	// One log, so one sealing key and one token key.
	env := []string{"COINLEDGER_EVENT_STORE=" + dbtest.PostgresURL(t),
		"COINLEDGER_SEAL_KEY=0123456789abcdef0123456789abcdef", "COINLEDGER_JWT_SECRET=jwt-secret-jwt-secret-jwt-secret-0123"}
	a, ca := adminServer(t, "", env...)
	setUpWallet(t, ca, "shared", map[string]string{"alice": "1.00000000"}, "alice", "bob")
	_, cb := adminServer(t, "", env...) // the admin of the shared user directory
	transfer := func(c *client, key string) uint64 { return sharedTransfer(t, c, key) }
	var last uint64
	for i, c := range []*client{ca, cb, ca, cb} {
		last = max(last, transfer(c, "t-"+strconv.Itoa(i)))
	}
	// A retry on the other server is answered from the log, not applied again.
	transfer(cb, "t-0")
	for name, c := range map[string]*client{"first": ca, "second": cb} {
		var acct struct{ Balance balanceJSON }
		c.expect(http.StatusOK, "GET", "/wallets/shared/accounts/bob?min_position="+strconv.FormatUint(last, 10), nil).JSON(t, &acct)
		if acct.Balance.Available != "0.40000000" {
			t.Fatalf("bob on the %s server: %+v, want 0.40000000 available (server log:\n%s)", name, acct.Balance, a.Log())
		}
	}
}

// sharedTransfer moves 0.1 from alice to bob in wallet shared under key
// and returns the position the write answered (Event-Position).
func sharedTransfer(t *testing.T, c *client, key string) uint64 {
	t.Helper()
	r := c.expect(http.StatusCreated, "POST", "/wallets/shared/transfers",
		map[string]string{"from": "alice", "to": "bob", "amount": "0.10000000"}, "Idempotency-Key", key)
	pos, err := strconv.ParseUint(r.Header.Get("Event-Position"), 10, 64)
	if err != nil {
		t.Fatalf("Event-Position %q: %v", r.Header.Get("Event-Position"), err)
	}
	return pos
}
