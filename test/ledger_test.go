package test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/postgres"
	"github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/projections/wallet"
)

// readModels is where a test server keeps its read models.
type readModels struct {
	env []string // for the server
	// open opens the read models of a server, for white-box invariant checks.
	open func(t *testing.T, s *Server) projections.DB
}

func sqliteModels() readModels {
	return readModels{open: func(t *testing.T, s *Server) projections.DB {
		db, err := sqlite.Open(context.Background(), filepath.Join(s.DataDir, "readmodels.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}}
}

// postgresModels puts the read models in a fresh schema of the test Postgres.
func postgresModels(t *testing.T) readModels {
	url := dbtest.PostgresURL(t)
	return readModels{env: []string{"COINLEDGER_READ_MODELS=" + url}, open: func(t *testing.T, _ *Server) projections.DB {
		db, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}}
}

// assertSumsToZero checks double entry: every account of the wallet,
// system accounts included, sums to zero.
func assertSumsToZero(t *testing.T, db projections.DB, w string) {
	t.Helper()
	sum, err := wallet.SumBalances(context.Background(), db, w)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total() != 0 || sum.Available+sum.Pending+sum.Held != 0 {
		t.Fatalf("wallet %s sums to %+v, want zero", w, sum)
	}
}

func TestLedgerEmbedded(t *testing.T) {
	runLedgerSuite(t, func(*testing.T) readModels { return sqliteModels() })
}

func TestLedgerPostgres(t *testing.T) { runLedgerSuite(t, postgresModels) }

// runLedgerSuite runs the ledger's end-to-end tests, each on a fresh server
// with fresh read models from models.
func runLedgerSuite(t *testing.T, models func(*testing.T) readModels) {
	for name, test := range map[string]func(*testing.T, readModels){
		"QuickStart":          testQuickStart,
		"ConcurrentTransfers": testConcurrentTransfers,
		"RestartUnderLoad":    testRestartUnderLoad,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, models(t))
		})
	}
}

// testQuickStart is the README's session.
func testQuickStart(t *testing.T, m readModels) {
	s, c := adminServer(t, "", m.env...)
	setUpWallet(t, c, "hot", map[string]string{"alice": "1.00000000"}, "alice", "bob")

	// A transfer, and its idempotent replay.
	key := []string{"Idempotency-Key", "quick-1"}
	body := map[string]string{"from": "alice", "to": "bob", "amount": "0.25", "memo": "lunch"}
	var created, replayed struct {
		ID       string `json:"id"`
		Position uint64 `json:"position"`
	}
	first := c.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", body, key...)
	first.JSON(t, &created)
	again := c.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", body, key...)
	again.JSON(t, &replayed)
	if replayed != created || again.Header.Get("Idempotent-Replayed") != "true" || string(again.Body) != string(first.Body) {
		t.Fatalf("replay answered %s (%v), original %s", again.Body, again.Header, first.Body)
	}
	body["amount"] = "0.30"
	if r := c.expect(http.StatusUnprocessableEntity, "POST", "/wallets/hot/transfers", body, key...); r.problemCode() != "idempotency_key_reused" {
		t.Fatalf("reused key: %s", r.Body)
	}

	// Read your write: the balances show the transfer at once.
	if b := c.balance("hot", "alice"); b.Available != "0.75000000" || b.Total != "0.75000000" {
		t.Fatalf("alice %+v", b)
	}
	if b := c.balance("hot", "bob"); b.Available != "0.25000000" {
		t.Fatalf("bob %+v", b)
	}
	var tr struct{ ID, From, To, Amount, Memo string }
	c.expect(http.StatusOK, "GET", "/wallets/hot/transfers/"+created.ID, nil).JSON(t, &tr)
	if tr.From != "alice" || tr.To != "bob" || tr.Amount != "0.25000000" || tr.Memo != "lunch" {
		t.Fatalf("transfer %+v", tr)
	}

	// Entries, newest first, with running balances.
	var page struct {
		Entries []struct {
			Position     uint64
			Kind         string
			Available    string
			BalanceAfter balanceJSON `json:"balance_after"`
		}
	}
	c.expect(http.StatusOK, "GET", "/wallets/hot/accounts/alice/entries", nil).JSON(t, &page)
	if len(page.Entries) != 2 || page.Entries[0].Kind != "transfer_out" || page.Entries[0].Available != "-0.25000000" ||
		page.Entries[0].BalanceAfter.Available != "0.75000000" || page.Entries[1].Kind != "import" ||
		page.Entries[1].BalanceAfter.Available != "1.00000000" {
		t.Fatalf("entries %+v", page.Entries)
	}

	// Point-in-time balance: before the transfer, and before everything (opening 0).
	var at struct{ Balance balanceJSON }
	c.expect(http.StatusOK, "GET", fmt.Sprintf("/wallets/hot/accounts/alice/balance?at=%d", created.Position-1), nil).JSON(t, &at)
	if at.Balance.Available != "1.00000000" {
		t.Fatalf("balance before the transfer: %+v", at.Balance)
	}
	c.expect(http.StatusOK, "GET", "/wallets/hot/accounts/alice/balance?at=1", nil).JSON(t, &at)
	if at.Balance.Total != "0.00000000" {
		t.Fatalf("opening balance: %+v", at.Balance)
	}

	// A hold takes funds out of available.
	var hold struct{ ID string }
	c.expect(http.StatusCreated, "POST", "/wallets/hot/accounts/alice/holds", map[string]string{"amount": "0.10", "reason": "review"}).JSON(t, &hold)
	if b := c.balance("hot", "alice"); b.Available != "0.65000000" || b.Held != "0.10000000" || b.Total != "0.75000000" {
		t.Fatalf("alice after hold %+v", b)
	}
	if r := c.expect(http.StatusConflict, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.70"},
		"Idempotency-Key", "quick-2"); r.problemCode() != "insufficient_funds" {
		t.Fatalf("overdraw past the hold: %s", r.Body)
	}
	c.expect(http.StatusOK, "POST", "/wallets/hot/holds/"+hold.ID+"/release", nil)

	// A locked wallet moves nothing.
	c.expect(http.StatusOK, "POST", "/wallets/hot/lock", map[string]string{"reason": "audit"})
	if r := c.expect(http.StatusConflict, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.01"},
		"Idempotency-Key", "quick-3"); r.problemCode() != "wallet_locked" {
		t.Fatalf("transfer from a locked wallet: %s", r.Body)
	}
	c.expect(http.StatusOK, "POST", "/wallets/hot/unlock", nil)
	// The refusal is the answer for its key for good; a new key goes ahead.
	if r := c.expect(http.StatusConflict, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.01"},
		"Idempotency-Key", "quick-3"); r.problemCode() != "wallet_locked" || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry of a refused key after unlocking: %s", r.Body)
	}
	c.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.01"},
		"Idempotency-Key", "quick-4")

	// Bad input changes nothing.
	for _, bad := range []struct {
		body      any
		code      string
		schemaBad bool // the contract itself rejects the request
	}{
		{map[string]any{"from": "alice", "to": "bob", "amount": 1}, "validation_failed", true},
		{map[string]string{"from": "alice", "to": "bob", "amount": "0.000000001"}, "invalid_amount", false},
		{map[string]string{"from": "alice", "to": "bob", "amount": "-1"}, "invalid_amount", true},
		{map[string]string{"from": "alice", "to": "bob", "amount": "1", "extra": "x"}, "unknown_field", true},
		{`{"from": "alice", "to": "bob", "amount": "1"} trailing`, "malformed_json", false}, // kin-openapi reads only the first JSON value
		{map[string]string{"from": "alice", "to": "nobody", "amount": "0.01"}, "not_found", false},
	} {
		send := c.do
		if bad.schemaBad {
			send = c.doInvalid
		}
		r := send("POST", "/wallets/hot/transfers", bad.body, "Idempotency-Key", "bad-"+bad.code)
		if r.Status < 400 || r.Status >= 500 || r.problemCode() != bad.code || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%v: %d %s %s, want code %s", bad.body, r.Status, r.Header.Get("Content-Type"), r.Body, bad.code)
		}
	}
	if r := c.doInvalid("POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.01"}); r.Status != http.StatusBadRequest || r.problemCode() != "idempotency_key_required" {
		t.Fatalf("no key: %s", r.Body)
	}
	if b := c.balance("hot", "alice"); b.Available != "0.74000000" || b.Held != "0.00000000" {
		t.Fatalf("alice at the end %+v", b)
	}
	assertSumsToZero(t, m.open(t, s), "hot")
}

// testConcurrentTransfers: 200 parallel transfers of 0.01 from an account
// holding 1.00: exactly 100 succeed, the rest are refused, nothing else moves.
func testConcurrentTransfers(t *testing.T, m readModels) {
	s, c := adminServer(t, "", m.env...)
	setUpWallet(t, c, "race", map[string]string{"alice": "1.00000000"}, "alice", "bob", "carol")
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := c.try("POST", "/wallets/race/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.01"},
				"Idempotency-Key", fmt.Sprintf("race-%d", i))
			switch {
			case err != nil:
				t.Errorf("transfer %d: %v", i, err)
			case r.Status == http.StatusCreated:
				ok.Add(1)
			case r.Status == http.StatusConflict && r.problemCode() == "insufficient_funds":
				refused.Add(1)
			default:
				t.Errorf("transfer %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || refused.Load() != 100 {
		t.Fatalf("%d succeeded and %d were refused; want 100 and 100", ok.Load(), refused.Load())
	}
	if a, b, cb := c.balance("race", "alice"), c.balance("race", "bob"), c.balance("race", "carol"); a.Total != "0.00000000" ||
		b.Total != "1.00000000" || cb.Total != "0.00000000" {
		t.Fatalf("balances alice %+v bob %+v carol %+v", a, b, cb)
	}
	assertSumsToZero(t, m.open(t, s), "race")
}

// testRestartUnderLoad kills the server with SIGKILL while clients are
// transferring, starts it again on the same data, and checks that every
// transfer a client got 201 for is there, once, and that retries of the
// requests whose outcome was lost are applied at most once.
func testRestartUnderLoad(t *testing.T, m readModels) {
	dir := t.TempDir()
	s, c := adminServer(t, dir, m.env...)
	const clients, amount = 8, "0.00000001"
	setUpWallet(t, c, "busy", map[string]string{"a0": "1.00000000"}, "a0", "a1", "a2", "a3")

	type outcome struct {
		key, to string
		id      string // "" when the outcome is unknown
	}
	var mu sync.Mutex
	var outcomes []outcome
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				o := outcome{key: fmt.Sprintf("load-%d-%d", w, i), to: fmt.Sprintf("a%d", 1+w%3)}
				r, err := c.try("POST", "/wallets/busy/transfers", map[string]string{"from": "a0", "to": o.to, "amount": amount},
					"Idempotency-Key", o.key)
				if err == nil && r.Status == http.StatusCreated {
					var created struct{ ID string }
					r.JSON(t, &created)
					o.id = created.ID
				} else if err == nil {
					t.Errorf("transfer %s: %d %s", o.key, r.Status, r.Body)
					return
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
			}
		}()
	}
	// Kill once the load is well under way (enough acknowledged transfers),
	// not after a fixed time: a loaded machine acknowledges fewer per second.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := 0
		for _, o := range outcomes {
			if o.id != "" {
				n++
			}
		}
		mu.Unlock()
		if n >= 200 || time.Now().After(deadline) {
			break
		}
	}
	s.Kill()
	close(stop)
	wg.Wait()

	s2, c2 := adminServer(t, dir, m.env...)
	acked, unknown := 0, 0
	for _, o := range outcomes {
		if o.id != "" {
			acked++
			c2.expect(http.StatusOK, "GET", "/wallets/busy/transfers/"+o.id, nil)
			continue
		}
		// The client never heard back: retrying with the same key applies it at most once.
		unknown++
		c2.expect(http.StatusCreated, "POST", "/wallets/busy/transfers", map[string]string{"from": "a0", "to": o.to, "amount": amount},
			"Idempotency-Key", o.key)
	}
	if acked < 50 {
		t.Fatalf("only %d transfers acknowledged before the kill: the load did not run", acked)
	}
	// Retried or not, every key moved the amount exactly once.
	var total int64
	for _, a := range []string{"a1", "a2", "a3"} {
		b := c2.balance("busy", a)
		units, err := strconv.ParseInt(b.Total[2:], 10, 64) // "0.xxxxxxxx"
		if err != nil {
			t.Fatalf("balance %q: %v", b.Total, err)
		}
		total += units
	}
	if want := int64(len(outcomes)); total != want {
		t.Fatalf("%d units moved for %d transfers (%d acknowledged, %d retried): applied twice or lost", total, want, acked, unknown)
	}
	assertSumsToZero(t, m.open(t, s2), "busy")
	t.Logf("%d transfers acknowledged before SIGKILL, %d unknown outcomes retried", acked, unknown)
}
