package api_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/http/apitest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	rmsqlite "github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/projections/wallet"
)

type rebuildJob struct {
	ID              string     `json:"id"`
	Projection      string     `json:"projection"`
	State           string     `json:"state"`
	Reason          string     `json:"reason"`
	Position        uint64     `json:"position"`
	Head            uint64     `json:"head"`
	Events          uint64     `json:"events"`
	EventsPerSecond uint64     `json:"events_per_second"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	Error           string     `json:"error"`
}

type readModels struct {
	Projections []struct {
		Name       string `json:"name"`
		Version    int    `json:"version"`
		State      string `json:"state"`
		Position   uint64 `json:"position"`
		Lag        uint64 `json:"lag"`
		RebuildJob string `json:"rebuild_job"`
	} `json:"projections"`
}

// waitJob polls the job at location until it is no longer running.
func waitJob(t *testing.T, admin *apitest.Client, location string) rebuildJob {
	t.Helper()
	var j rebuildJob
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		admin.Get(strings.TrimPrefix(location, "/api/v1")).Expect(t, http.StatusOK).JSON(t, &j)
		if j.State != "running" {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still running: %+v", location, j)
		}
	}
}

// TestProjectionRebuildEndpoints: GET /api/v1/projections lists the read
// models with their versions; POST /api/v1/projections/{name}/rebuild
// answers 202 with the job and its Location, 409 while that read model is
// rebuilding and 404 for an unknown one; the job shows its progress until
// done and is listed under /api/v1/projections/jobs; every endpoint is
// admin-only (403).
func TestProjectionRebuildEndpoints(t *testing.T) {
	gate := make(chan struct{})
	ts := newTestServerWith(t, nil, &dbtest.Scaled{V: 1, Factor: 1, Gate: gate})
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	admin := ts.admin(t)

	var list readModels
	admin.Get("/projections").Expect(t, http.StatusOK).JSON(t, &list)
	names := map[string]int{}
	for _, p := range list.Projections {
		names[p.Name] = p.Version
	}
	if names["wallet"] != 1 || names["users"] != 1 || names["scaled"] != 1 {
		t.Errorf("read models %+v, want wallet, users and scaled at version 1", list)
	}

	res := admin.Post("/projections/scaled/rebuild", nil).Expect(t, http.StatusAccepted)
	var job rebuildJob
	res.JSON(t, &job)
	location := res.Header.Get("Location")
	if job.ID == "" || location != "/api/v1/projections/jobs/"+job.ID {
		t.Fatalf("Location %q for job %+v", location, job)
	}
	if job.Projection != "scaled" || job.State != "running" || job.Reason != "requested" || job.FinishedAt != nil {
		t.Errorf("job %+v, want a running requested rebuild of scaled", job)
	}
	admin.Post("/projections/scaled/rebuild", nil).ExpectProblem(t, http.StatusConflict, "projection_rebuilding")
	admin.Post("/projections/nope/rebuild", nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	admin.Get("/projections/jobs/nope").ExpectProblem(t, http.StatusNotFound, "not_found")
	var running rebuildJob
	admin.Get("/projections/jobs/"+job.ID).Expect(t, http.StatusOK).JSON(t, &running)
	if running.State != "running" {
		t.Errorf("job before the gate opens: %+v", running)
	}
	admin.Get("/projections").Expect(t, http.StatusOK).JSON(t, &list)
	if i := slices.IndexFunc(list.Projections, func(p struct {
		Name       string `json:"name"`
		Version    int    `json:"version"`
		State      string `json:"state"`
		Position   uint64 `json:"position"`
		Lag        uint64 `json:"lag"`
		RebuildJob string `json:"rebuild_job"`
	}) bool {
		return p.Name == "scaled"
	}); i < 0 || list.Projections[i].RebuildJob != job.ID {
		t.Errorf("read models while rebuilding: %+v, want scaled with rebuild_job %s", list, job.ID)
	}

	ts.addUser(t, admin, "carol")
	carol := ts.client(t).WithToken(ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken)
	carol.Get("/projections").ExpectProblem(t, http.StatusForbidden, "permission_denied")
	carol.Post("/projections/scaled/rebuild", nil).ExpectProblem(t, http.StatusForbidden, "permission_denied")
	carol.Get("/projections/jobs").ExpectProblem(t, http.StatusForbidden, "permission_denied")
	carol.Get("/projections/jobs/"+job.ID).ExpectProblem(t, http.StatusForbidden, "permission_denied")

	close(gate)
	done := waitJob(t, admin, location)
	head, err := ts.Store.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if done.State != "done" || done.Position == 0 || done.Position > head || done.Events == 0 || done.FinishedAt == nil || done.Error != "" {
		t.Errorf("finished job %+v (head %d)", done, head)
	}
	var jobs struct {
		Jobs []rebuildJob `json:"jobs"`
	}
	admin.Get("/projections/jobs").Expect(t, http.StatusOK).JSON(t, &jobs)
	if len(jobs.Jobs) != 1 || jobs.Jobs[0].ID != job.ID || jobs.Jobs[0].State != "done" {
		t.Errorf("jobs %+v, want the one done", jobs)
	}
	// Another rebuild of it may start now.
	admin.Post("/projections/scaled/rebuild", nil).Expect(t, http.StatusAccepted)
}

// walletTables are the wallet read model's tables.
var walletTables = []string{"wallets", "wallet_accounts", "wallet_entries", "wallet_times", "wallet_transfers", "wallet_imports", "wallet_holds"}

// TestRebuildUnderConcurrentHTTPReadsAndWrites: while the wallet read
// model is rebuilt, transfers go on over HTTP and balances are read; no
// read fails or finds the account missing, every balance read is one the
// account really had (a balance_after of one of its entries), and the
// rebuilt model ends identical to a fresh build of the same log.
func TestRebuildUnderConcurrentHTTPReadsAndWrites(t *testing.T) {
	ts := newTestServer(t, nil)
	admin := ts.admin(t)
	var keys atomic.Int64
	key := func() http.Header { return apitest.Header("Idempotency-Key", fmt.Sprintf("k-%d", keys.Add(1))) }
	admin.Post("/wallets", map[string]any{"name": "w", "coin": "BTC", "permissions": []string{"read", "transfer"}}).
		Expect(t, http.StatusCreated)
	for _, a := range []string{"a", "b"} {
		admin.Post("/wallets/w/accounts", map[string]any{"name": a}).Expect(t, http.StatusCreated)
		admin.Post("/wallets/w/accounts/"+a+"/imports", map[string]any{"amount": "1.00000000", "reason": "seed"}, key()).
			Expect(t, http.StatusCreated)
	}
	for i := range 100 { // some history to rebuild
		admin.Post("/wallets/w/transfers", map[string]any{"from": "a", "to": "b", "amount": fmt.Sprintf("0.0000%04d", i+1)}, key()).
			Expect(t, http.StatusCreated)
	}
	ctx := context.Background()
	head, err := ts.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Runner.WaitFor(ctx, "wallet", head); err != nil {
		t.Fatal(err)
	}

	load, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]map[string]bool{"a": {}, "b": {}} // balances read
	var reads, writes atomic.Int64
	for _, tr := range [][2]string{{"a", "b"}, {"b", "a"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil {
				admin.Post("/wallets/w/transfers", map[string]any{"from": tr[0], "to": tr[1], "amount": "0.00000003"}, key()).
					Expect(t, http.StatusCreated)
				writes.Add(1)
			}
		}()
	}
	for _, acct := range []string{"a", "b", "a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil {
				var got struct {
					Balance struct {
						Available string `json:"available"`
					} `json:"balance"`
				}
				if !admin.Get("/wallets/w/accounts/"+acct).Expect(t, http.StatusOK).JSON(t, &got) {
					return
				}
				mu.Lock()
				seen[acct][got.Balance.Available] = true
				mu.Unlock()
				reads.Add(1)
			}
		}()
	}

	res := admin.Post("/projections/wallet/rebuild", nil).Expect(t, http.StatusAccepted)
	before := writes.Load()
	job := waitJob(t, admin, res.Header.Get("Location"))
	time.Sleep(100 * time.Millisecond) // reads and writes on the swapped tables
	stop()
	wg.Wait()
	if job.State != "done" {
		t.Fatalf("rebuild %+v", job)
	}
	t.Logf("%d reads, %d writes (%d during the rebuild); rebuild of %d events at %d events/s",
		reads.Load(), writes.Load(), writes.Load()-before, job.Events, job.EventsPerSecond)
	if reads.Load() == 0 || writes.Load() == 0 {
		t.Fatal("no load ran")
	}

	// Every balance read is one the account had after one of its entries.
	for acct, values := range seen {
		had := map[string]bool{}
		cursor := ""
		for {
			var page struct {
				Entries []struct {
					BalanceAfter struct {
						Available string `json:"available"`
					} `json:"balance_after"`
				} `json:"entries"`
				Next string `json:"next"`
			}
			path := "/wallets/w/accounts/" + acct + "/entries?limit=500"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			admin.Get(path).Expect(t, http.StatusOK).JSON(t, &page)
			for _, e := range page.Entries {
				had[e.BalanceAfter.Available] = true
			}
			if cursor = page.Next; cursor == "" || len(page.Entries) == 0 {
				break
			}
		}
		for v := range values {
			if !had[v] {
				t.Errorf("account %s read with available %s, a balance it never had", acct, v)
			}
		}
	}

	// Identical to a fresh build of the same log.
	head, err = ts.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Runner.WaitFor(ctx, "wallet", head); err != nil {
		t.Fatal(err)
	}
	fresh, err := rmsqlite.Open(ctx, filepath.Join(t.TempDir(), "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	r := projections.NewRunner(fresh, ts.Store, projections.Options{}, wallet.New())
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	if err := r.WaitFor(ctx, "wallet", head); err != nil {
		t.Fatal(err)
	}
	got, want := dbtest.Dump(t, ts.DB, walletTables...), dbtest.Dump(t, fresh, walletTables...)
	for _, table := range walletTables {
		if !reflect.DeepEqual(got[table], want[table]) {
			t.Errorf("%s: %d rows after the rebuild, %d in a fresh build, or they differ", table, len(got[table]), len(want[table]))
		}
	}
	if n := len(got["wallet_entries"]); n < 200 {
		t.Errorf("only %d entries", n)
	}
}
