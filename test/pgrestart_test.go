package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections/postgres"
	"github.com/coinledger/coinledger/projections/wallet"
)

// projectionJSON is a read model's line in /api/v1/status.
type projectionJSON struct {
	Name     string
	Position uint64
	Lag      uint64
	Running  bool
	State    string
	Error    string
	ParkedAt uint64 `json:"parked_at"`
	Failures uint64
}

// statusJSON is the part of /api/v1/status the fault tests read.
type statusJSON struct {
	Store       struct{ Head uint64 }
	Projections []projectionJSON
	Instance    instanceJSON   // the instance that answers
	Instances   []instanceJSON // every live instance, by id
}

// status reads /api/v1/status; an error (not a failure) when it does not
// answer 200.
func (c *client) status() (statusJSON, error) {
	return c.statusCtx(context.Background())
}

// statusCtx is status within ctx.
func (c *client) statusCtx(ctx context.Context) (statusJSON, error) {
	var st statusJSON
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := c.tryCtx(ctx, "GET", "/status", nil)
	if err != nil {
		return st, err
	}
	if r.Status != http.StatusOK {
		return st, fmt.Errorf("GET /status: %d %s", r.Status, r.Body)
	}
	return st, json.Unmarshal(r.Body, &st)
}

// waitCaughtUp waits until every read model and follower in /status runs at
// the store's head, at most timeout.
func (c *client) waitCaughtUp(t *testing.T, timeout time.Duration) statusJSON {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.status()
		behind := ""
		switch {
		case err != nil:
			behind = err.Error()
		default:
			for _, p := range st.Projections {
				if p.State != "running" || p.Position < st.Store.Head {
					behind = fmt.Sprintf("%+v at head %d", p, st.Store.Head)
					break
				}
			}
		}
		if behind == "" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the read models did not catch up within %v: %s", timeout, behind)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresRestartUnderLoad: the read-model Postgres is stopped (pg_ctl
// stop -m fast) and started again while clients transfer over HTTP. The
// API keeps accepting transfers (they go to the embedded event store),
// /status shows the read models retrying, the process never exits; after
// the restart every read model catches up, and the wallet read model holds
// every acknowledged transfer exactly once: one transfer row and one entry
// per side each, balances equal to the sums of the acknowledged transfers.
// The cluster is private to the test: the shared one must never stop.
func TestPostgresRestartUnderLoad(t *testing.T) {
	pg := startPGCluster(t)
	s, c := adminServer(t, "", "COINLEDGER_READ_MODELS="+pg.URL())
	const opening = 100_000_000 // 1 BTC in a0, moved one unit at a time
	accounts := []string{"a0", "a1", "a2", "a3"}
	setUpWallet(t, c, "busy", map[string]string{"a0": "1.00000000"}, accounts...)

	// Phases of the load, by when a transfer was acknowledged.
	const (
		before = iota
		down   // Postgres stopped
		after  // Postgres started again
	)
	var phase atomic.Int32
	type transfer struct{ id, to string }
	var (
		mu      sync.Mutex
		acked   []transfer
		byPhase [3]int
	)
	ackedIn := func(p int) int {
		mu.Lock()
		defer mu.Unlock()
		return byPhase[p]
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const clients = 6
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				to := accounts[1+(w+i)%3]
				key := fmt.Sprintf("pg-%d-%d", w, i)
				r, err := c.try("POST", "/wallets/busy/transfers", map[string]string{"from": "a0", "to": to, "amount": "0.00000001"},
					"Idempotency-Key", key)
				if err != nil {
					t.Errorf("transfer %s (phase %d): %v", key, phase.Load(), err)
					return
				}
				if r.Status != http.StatusCreated {
					t.Errorf("transfer %s (phase %d): %d %s, want 201: writes go to the event store", key, phase.Load(), r.Status, r.Body)
					return
				}
				var created struct{ ID string }
				if err := json.Unmarshal(r.Body, &created); err != nil || created.ID == "" {
					t.Errorf("transfer %s: %s: %v", key, r.Body, err)
					return
				}
				mu.Lock()
				acked = append(acked, transfer{id: created.ID, to: to})
				byPhase[phase.Load()]++
				mu.Unlock()
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	waitAcks := func(p, n int, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); ackedIn(p) < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d transfers acknowledged in phase %d within %v, want %d", ackedIn(p), p, within, n)
			}
		}
	}
	waitAcks(before, 100, 30*time.Second)

	pg.stop(t)
	phase.Store(down)
	downAt := time.Now()
	// The outage lasts at least 3 s, until a read model was seen retrying
	// and transfers were acknowledged meanwhile.
	sawRetrying, readyz := false, map[int]int{}
	for time.Since(downAt) < 3*time.Second || !sawRetrying || ackedIn(down) < clients {
		if time.Since(downAt) > 20*time.Second {
			t.Fatalf("during the outage: retrying seen %v, %d transfers acknowledged", sawRetrying, ackedIn(down))
		}
		st, err := c.status()
		if err != nil {
			t.Fatalf("/status during the outage: %v", err)
		}
		for _, p := range st.Projections {
			if p.State == "parked" {
				t.Fatalf("%s parked during the outage: %+v; an outage must be waited out", p.Name, p)
			}
			sawRetrying = sawRetrying || (p.State == "retrying" && p.Error != "")
		}
		code, _ := get(t, s.URL+"/readyz")
		readyz[code]++
		time.Sleep(100 * time.Millisecond)
	}
	outage := time.Since(downAt)
	pg.start(t)
	phase.Store(after)
	waitAcks(after, 50, 30*time.Second)
	stopLoad()
	select {
	case <-s.exited:
		t.Fatalf("coinledger exited during the Postgres restart:\n%s", s.Log())
	default:
	}
	if t.Failed() {
		return
	}

	st := c.waitCaughtUp(t, 45*time.Second)
	for _, p := range st.Projections {
		if p.Error != "" || !p.Running {
			t.Errorf("%s after the restart: %+v, want running without an error", p.Name, p)
		}
	}

	// Against the read model itself: nothing lost, nothing applied twice.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]int64{"a0": opening}
	ackedIDs := make(map[string]string, len(acked)) // id -> to
	for _, tr := range acked {
		if _, dup := ackedIDs[tr.id]; dup {
			t.Fatalf("transfer id %s acknowledged twice", tr.id)
		}
		ackedIDs[tr.id] = tr.to
		want["a0"]--
		want[tr.to]++
	}
	rows, err := db.Query(ctx, `SELECT id, COUNT(*) FROM wallet_transfers WHERE wallet = ? GROUP BY id`, "busy")
	if err != nil {
		t.Fatal(err)
	}
	transfers := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		transfers[id] = n
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for id := range ackedIDs {
		if transfers[id] != 1 {
			t.Errorf("transfer %s has %d rows in wallet_transfers, want 1", id, transfers[id])
		}
	}
	if len(transfers) != len(ackedIDs) {
		t.Errorf("wallet_transfers has %d transfers, %d were acknowledged", len(transfers), len(ackedIDs))
	}

	// One entry per side of each transfer, and of the opening import (into
	// a0, out of a system account).
	rows, err = db.Query(ctx, `SELECT a.account, e.kind, e.reference FROM wallet_entries e
		JOIN wallet_accounts a ON a.id = e.account_id WHERE a.wallet = ?`, "busy")
	if err != nil {
		t.Fatal(err)
	}
	type side struct{ account, kind string }
	entries := map[string][]side{} // reference -> entries
	imports := map[string]int{}    // account -> import entries
	for rows.Next() {
		var account, kind, ref string
		if err := rows.Scan(&account, &kind, &ref); err != nil {
			t.Fatal(err)
		}
		if kind == wallet.KindImport {
			imports[account]++
			continue
		}
		entries[ref] = append(entries[ref], side{account, kind})
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	twice := false
	for _, n := range imports {
		twice = twice || n != 1
	}
	if len(imports) != 2 || imports["a0"] != 1 || twice {
		t.Errorf("import entries by account %v, want one into a0 and one out of a system account", imports)
	}
	for id, to := range ackedIDs {
		got := entries[id]
		if len(got) != 2 || !((got[0] == side{"a0", wallet.KindTransferOut} && got[1] == side{to, wallet.KindTransferIn}) ||
			(got[1] == side{"a0", wallet.KindTransferOut} && got[0] == side{to, wallet.KindTransferIn})) {
			t.Errorf("entries of transfer %s to %s: %+v, want one out of a0 and one into %s", id, to, got, to)
		}
	}
	if len(entries) != len(ackedIDs) {
		t.Errorf("entries reference %d transfers, %d were acknowledged", len(entries), len(ackedIDs))
	}

	// Balances, in the table and over HTTP, equal the acknowledged sums.
	for _, a := range accounts {
		var available, pending, held int64
		err := db.QueryRow(ctx, `SELECT available, pending, held FROM wallet_accounts WHERE wallet = ? AND account = ?`,
			"busy", a).Scan(&available, &pending, &held)
		if err != nil {
			t.Fatalf("balance of %s: %v", a, err)
		}
		if available != want[a] || pending != 0 || held != 0 {
			t.Errorf("%s holds available %d pending %d held %d, want %d available", a, available, pending, held, want[a])
		}
		if b, w := c.balance("busy", a), fmt.Sprintf("%d.%08d", want[a]/opening, want[a]%opening); b.Total != w {
			t.Errorf("GET balance of %s: %+v, want %s", a, b, w)
		}
	}
	assertSumsToZero(t, db, "busy")
	select {
	case <-s.exited:
		t.Fatalf("coinledger exited:\n%s", s.Log())
	default:
	}
	t.Logf("%d transfers acknowledged (%d before, %d during the %v outage, %d after); /readyz during it: %v",
		len(acked), ackedIn(before), ackedIn(down), outage.Round(time.Millisecond), ackedIn(after), readyz)
}
