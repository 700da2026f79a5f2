package test

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/webhook"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestClusterRetriesOnAnotherInstance: three `coinledger serve` processes
// on one Postgres (event store and read models), 64 clients sending
// transfers, holds and releases through a client-side round robin, every
// request sent again to a random other instance. Nothing is lost or
// applied twice (counted in the log by id and by idempotency key), the
// two answers to a request agree (id, position; the second replayed),
// holds are released to zero, balances conserve and agree on every
// instance, and `audit verify` on the shared store is clean.
func TestClusterRetriesOnAnotherInstance(t *testing.T) {
	cl := startCluster(t, 3, dbtest.PostgresURL(t), dbtest.PostgresURL(t), "COINLEDGER_CHECKPOINT_EVERY=500")
	l := newRetryLoad(t, cl, "multi", 16)
	const clients, ops = 64, 16
	start := time.Now()
	l.run(clients, func(w, i int) bool { return i < ops && !t.Failed() })
	t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), l.summary())
	if ex := cl.exited(); len(ex) > 0 {
		t.Fatalf("instances %v exited during the load:\n%s", ex, cl.logs())
	}
	l.verify()
}

// singletonRoles are the singleton workers' roles, one holder each.
var singletonRoles = []string{"projections", "outbox", "alerts", "expiry", "checkpoint_signer", "chainsync:BTC"}

// TestClusterLeaderKilled: the load of TestClusterRetriesOnAnotherInstance
// while the leader (the instance holding projections, per /status) is
// killed with SIGKILL and restarted, 10 times. Every ~100 ms every running
// instance's /status is sampled: no role is ever held by two instances,
// and after each kill projections and outbox are held again within 5 s
// (the failover times are logged). Meanwhile alerts fire (price ticks
// cross their targets) into a local webhook receiver: each firing arrives
// under one delivery id (a repeat of that id is the outbox's
// at-least-once, counted), no alert fires twice; withdrawals requested
// meanwhile are begun and sent at most once each (the log's
// withdrawal_broadcast_started, and the send's log line across every
// process's lives). Then the ledger checks of the load.
func TestClusterLeaderKilled(t *testing.T) {
	hooks := newAlertReceiver(t, "webhook-secret-of-the-test-0123456789")
	config := filepath.Join(t.TempDir(), "coinledger.yml")
	yml := fmt.Sprintf(`
notify:
  webhook_secret: %q
  retry: [300ms, 500ms, 1s, 1s, 1s, 1s, 2s, 2s, 2s, 2s, 2s, 2s]
  webhooks:
    allow_http: true
    allow_cidrs: ["127.0.0.0/8", "::1/128"]
`, hooks.secret)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cl := startCluster(t, 3, dbtest.PostgresURL(t), dbtest.PostgresURL(t), "COINLEDGER_CONFIG="+config, "COINLEDGER_CHECKPOINT_EVERY=500")
	l := newRetryLoad(t, cl, "multi", 16, "transport")
	cl.admin.expect(http.StatusCreated, "POST", "/wallets/multi/accounts", map[string]string{"name": "payer"})
	cl.admin.expect(http.StatusCreated, "POST", "/wallets/multi/accounts/payer/imports",
		map[string]string{"amount": "1.00000000", "reason": "withdrawals"}, "Idempotency-Key", "open-payer")

	// Alerts of alice's, one per 10 USD from 1000; the feeder pushes a
	// tick below them all, then one over the next target every 2 s.
	users := map[string]*client{}
	for _, u := range []struct{ name, role string }{{"alice", ""}, {"feeder", "price_feeder"}} {
		body := map[string]any{"username": u.name, "email": u.name + "@example.test", "password": "password-" + u.name}
		if u.role != "" {
			body["roles"] = []string{u.role}
		}
		cl.admin.expect(http.StatusCreated, "POST", "/users", body)
		c := newClient(t, cl.nodes[0].srv)
		c.login(u.name, "password-"+u.name)
		users[u.name] = c
	}
	const alerts = 24
	alertIDs := make([]string, alerts)
	for k := range alerts {
		var a struct{ ID string }
		users["alice"].expect(http.StatusCreated, "POST", "/alerts", map[string]any{"pair": "BTC-USD", "direction": "above",
			"target": fmt.Sprint(1000 + 10*k), "channels": map[string]any{"webhook": hooks.url()}}).JSON(t, &a)
		alertIDs[k] = a.ID
	}
	feeder := func(i int) *client { c := cl.clientOn(i); c.token = users["feeder"].token; return c }
	tickAt := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tick := func(n int, price int) {
		body := map[string]any{"pair": "BTC-USD", "price": fmt.Sprint(price), "source": "test", "at": tickAt.Add(time.Duration(n) * time.Second)}
		i := cl.pick(n)
		for range 50 {
			if cl.up(i) {
				r, err := feeder(i).try("POST", "/prices", body)
				if err == nil && (r.Status == http.StatusCreated || r.Status == http.StatusConflict) {
					return
				}
				if err == nil {
					t.Errorf("tick %d on %s: %d %s", n, cl.nodes[i].id, r.Status, r.Body)
					return
				}
			}
			i = cl.other(i)
			time.Sleep(retryPause)
		}
		t.Errorf("tick %d: no instance took it", n)
	}
	tick(0, 990)

	var stop atomic.Bool
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		l.run(64, func(w, i int) bool { return !stop.Load() && !t.Failed() })
	}()
	var (
		wmu         sync.Mutex
		withdrawals []string
	)
	bg.Add(1)
	go func() { // ticks and withdrawals
		defer bg.Done()
		for n := 1; n <= alerts; n++ {
			if stop.Load() {
				break
			}
			tick(n, 995+10*n)
			key := fmt.Sprintf("wd-%d", n)
			if wd, ok := l.twice(key, "POST", "/wallets/multi/withdrawals",
				map[string]string{"account": "payer", "address": fmt.Sprintf("ext%d", n), "amount": "0.00100000"}, http.StatusAccepted); ok {
				wmu.Lock()
				withdrawals = append(withdrawals, wd.id)
				wmu.Unlock()
			}
			time.Sleep(2 * time.Second)
		}
	}()

	// The sampler: which running instance holds which role, every 100 ms.
	var (
		smu      sync.Mutex
		samples  int
		overlaps []string
	)
	sampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			at := time.Now()
			held := cl.roles(time.Second)
			smu.Lock()
			samples++
			for _, r := range slices.Sorted(maps.Keys(held)) {
				if len(held[r]) > 1 {
					overlaps = append(overlaps, fmt.Sprintf("%s: %s held by %v", at.Format("15:04:05.000"), r, held[r]))
				}
			}
			smu.Unlock()
			select {
			case <-sampling:
				return
			case <-time.After(time.Until(at.Add(100 * time.Millisecond))):
			}
		}
	}()

	const kills = 10
	var failovers []time.Duration
	noRoles := false
	for k := range kills {
		if t.Failed() {
			break
		}
		if k == 0 {
			time.Sleep(time.Second) // later, the restart was the pause
		}
		victim := cl.holder("projections")
		if victim < 0 {
			if !noRoles {
				t.Errorf("kill %d: no running instance says in /status that it holds projections", k+1)
			}
			noRoles = true
			victim = k % len(cl.nodes)
		}
		killedAt := time.Now()
		cl.kill(victim)
		if !noRoles {
			for {
				held := cl.roles(time.Second)
				if len(held["projections"]) > 0 && len(held["outbox"]) > 0 {
					failovers = append(failovers, time.Since(killedAt))
					break
				}
				if time.Since(killedAt) > 15*time.Second {
					t.Errorf("kill %d of %s: projections and outbox not held by another instance within 15 s: %v", k+1, cl.nodes[victim].id, held)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		if ex := cl.exited(); len(ex) > 0 {
			t.Errorf("kill %d: instances %v exited by themselves", k+1, ex)
			break
		}
		cl.restart(victim)
	}
	stop.Store(true)
	bg.Wait()
	for n := len(withdrawals) + 1; n <= alerts; n++ { // the ticks the kills left out
		tick(n, 995+10*n)
	}
	held := cl.roles(2 * time.Second)
	close(sampling)
	sampler.Wait()

	t.Logf("%d kills; failovers %v; %d role samples; %s", kills, failovers, samples, l.summary())
	for _, f := range failovers {
		if f > 5*time.Second {
			t.Errorf("a failover took %v, want < 5 s", f)
		}
	}
	if len(overlaps) > 0 {
		t.Errorf("roles held by two instances at once (%d samples):\n%s", len(overlaps), strings.Join(overlaps, "\n"))
	}
	for _, r := range singletonRoles {
		if len(held[r]) != 1 {
			t.Errorf("after the kills role %s is held by %v, want one instance", r, held[r])
		}
	}
	if ex := cl.exited(); len(ex) > 0 {
		t.Fatalf("instances %v exited by themselves:\n%s", ex, cl.logs())
	}

	// Every alert fired once, its webhook under one delivery id.
	waitFor(t, "every alert to fire and its webhook to arrive", func() bool {
		var list struct{ Alerts []alertJSON }
		r, err := users["alice"].try("GET", "/alerts", nil)
		if err != nil || r.Status != http.StatusOK {
			return false
		}
		r.JSON(t, &list)
		fired := 0
		for _, a := range list.Alerts {
			if a.Status == "triggered" {
				fired++
			}
			if a.Fired > 1 {
				t.Fatalf("alert %s fired %d times", a.ID, a.Fired)
			}
		}
		return fired == alerts && hooks.alerts() == alerts
	})
	dups := hooks.check(t, alertIDs)
	t.Logf("webhooks: %d alerts, %d repeated deliveries (same delivery id)", alerts, dups)
	if dups > kills {
		t.Errorf("%d webhook deliveries repeated, more than the %d kills explain", dups, kills)
	}

	// Every withdrawal begun and sent at most once.
	wmu.Lock()
	wds := slices.Clone(withdrawals)
	wmu.Unlock()
	c := cl.nodes[cl.running()].c
	for _, id := range wds {
		waitFor(t, "withdrawal "+id+" to leave requested", func() bool {
			var w withdrawalJSON
			r, err := c.try("GET", "/wallets/multi/withdrawals/"+id, nil)
			if err != nil || r.Status != http.StatusOK {
				return false
			}
			r.JSON(t, &w)
			return w.Status != "requested" && w.Status != "broadcasting"
		})
	}
	begun := map[string]int{}
	for _, e := range walletLog(t, cl.store, "multi") {
		var w struct{ ID string }
		switch e.Type {
		case ledger.TypeWithdrawalBroadcastStarted, ledger.TypeWithdrawalBroadcast:
			json.Unmarshal(e.Data, &w)
			begun[e.Type+" "+w.ID]++
		case ledger.TypeWithdrawalBroadcastAborted:
			json.Unmarshal(e.Data, &w)
			begun[ledger.TypeWithdrawalBroadcastStarted+" "+w.ID]--
		}
	}
	for k, n := range begun {
		if n > 1 {
			t.Errorf("%s %d times in the log", k, n)
		}
	}
	logs := cl.logs()
	for _, id := range wds {
		sends := 0
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, id) && (strings.Contains(line, "withdrawal broadcast") || strings.Contains(line, "withdrawal rejected by the node")) {
				sends++
			}
		}
		if sends > 1 {
			t.Errorf("withdrawal %s sent %d times (server logs)", id, sends)
		}
	}
	t.Logf("%d withdrawals", len(wds))
	l.verify()
}

// TestClusterPostgresRestart: the cluster's own Postgres (event store and
// read models; a private server, not the shared one) is stopped under load
// and started again. While it is down the instances answer 503
// store_unavailable (no 500, no exit: the load treats any other answer as
// an error, and /status and a balance read are probed on every instance);
// after, they serve again by themselves and the ledger checks of the load
// hold.
func TestClusterPostgresRestart(t *testing.T) {
	pg := startPGCluster(t)
	cl := startCluster(t, 3, pg.schemaURL("events"), pg.schemaURL("models"))
	l := newRetryLoad(t, cl, "multi", 16, "503 store_unavailable")
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(32, func(w, i int) bool { return !stop.Load() && !t.Failed() })
	}()
	defer func() { stop.Store(true); <-done }()
	waitAcks := func(n int, within time.Duration) {
		t.Helper()
		for deadline := time.Now().Add(within); l.acks() < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) || t.Failed() {
				t.Fatalf("%d operations acknowledged within %v, want %d (%s)", l.acks(), within, n, l.summary())
			}
		}
	}
	waitAcks(200, 60*time.Second)

	pg.stop(t)
	downAt := time.Now()
	probes := map[string]int{}
	for time.Since(downAt) < 4*time.Second || probes["503 store_unavailable"] == 0 {
		if time.Since(downAt) > 20*time.Second {
			t.Fatalf("no 503 store_unavailable within 20 s of the outage: probes %v, %s", probes, l.summary())
		}
		for i, in := range cl.nodes {
			for _, path := range []string{"/status", "/wallets/multi/accounts/a0"} {
				r, err := in.c.try("GET", path, nil)
				o := outcomeOf(r, err)
				probes[o]++
				if o != "200" && o != "503 store_unavailable" {
					t.Errorf("GET %s on %s while Postgres is down: %s %v", path, in.id, o, err)
				}
			}
			if !cl.up(i) {
				t.Fatalf("instance %s exited while Postgres was down:\n%s", in.id, in.log())
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	outage := time.Since(downAt)
	before := l.acks()
	pg.start(t)
	upAt := time.Now()
	waitAcks(before+1, 60*time.Second)
	recovered := time.Since(upAt)
	waitAcks(before+200, 60*time.Second)
	stop.Store(true)
	<-done
	if ex := cl.exited(); len(ex) > 0 {
		t.Fatalf("instances %v exited:\n%s", ex, cl.logs())
	}
	t.Logf("outage %v, probes %v; first acknowledgement %v after the restart; %s",
		outage.Round(time.Millisecond), probes, recovered.Round(time.Millisecond), l.summary())
	l.verify()
}

// alertReceiver is a local endpoint for alert webhooks: it checks each delivery's
// signature and counts deliveries by delivery id.
type alertReceiver struct {
	secret string
	srv    *httptest.Server
	mu     sync.Mutex
	byID   map[string]int    // delivery id -> times received
	alert  map[string]string // delivery id -> alert id
}

func newAlertReceiver(t *testing.T, secret string) *alertReceiver {
	h := &alertReceiver{secret: secret, byID: map[string]int{}, alert: map[string]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header, body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p struct {
			DeliveryID string `json:"delivery_id"`
			Alert      struct{ ID string }
		}
		if err := json.Unmarshal(body, &p); err != nil || p.DeliveryID != r.Header.Get(webhook.HeaderDelivery) {
			t.Errorf("webhook body %s (%v), delivery header %q", body, err, r.Header.Get(webhook.HeaderDelivery))
		}
		h.mu.Lock()
		h.byID[p.DeliveryID]++
		h.alert[p.DeliveryID] = p.Alert.ID
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *alertReceiver) url() string { return h.srv.URL + "/hook" }

// alerts counts the alerts with a delivery.
func (h *alertReceiver) alerts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range h.alert {
		seen[a] = true
	}
	return len(seen)
}

// check fails unless each alert of ids arrived under exactly one delivery
// id; it returns how many deliveries were repeats of an id.
func (h *alertReceiver) check(t *testing.T, ids []string) (repeats int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	per := map[string][]string{}
	for d, a := range h.alert {
		per[a] = append(per[a], d)
		repeats += h.byID[d] - 1
	}
	for _, id := range ids {
		if len(per[id]) != 1 {
			t.Errorf("alert %s arrived under delivery ids %v, want one", id, per[id])
		}
	}
	return repeats
}

// logs is every instance's log.
func (cl *cluster) logs() string {
	var b strings.Builder
	for _, in := range cl.nodes {
		b.WriteString(in.log())
	}
	return b.String()
}
