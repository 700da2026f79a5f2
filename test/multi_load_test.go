package test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	pgstore "github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/projections/postgres"
	"github.com/coinledger/coinledger/projections/wallet"
)

// retryLoad is the clients of the multi-instance tests. Each sends
// transfers with idempotency keys (every eighth operation a hold, then its
// release) to the instance a client-side round robin picks, then sends the
// same request again to a random other instance. A request that meets an
// outcome in tolerate (a dead instance: "transport"; a store outage: "503
// store_unavailable") is sent to another instance until it is answered;
// any other outcome is a test error. The answers to one request must be
// the same (id, position), every one after the first marked
// Idempotent-Replayed (the first too when an earlier attempt failed and
// may have been written).
type retryLoad struct {
	t        *testing.T
	cl       *cluster
	wallet   string
	accounts []string
	opening  int64 // minor units in each account before the load
	tolerate map[string]bool

	rr       atomic.Int64
	mu       sync.Mutex
	outcomes map[string]int // per attempt: "201", "transport", "503 store_unavailable", ...
	acked    map[string]ackedMove
	holds    map[string]ackedMove
	maxPos   uint64
}

// ackedMove is an acknowledged transfer or hold.
type ackedMove struct {
	key             string
	from, to        string // a hold: from is its account
	units           int64
	position        uint64
	released        bool
	releasePosition uint64
}

// answer is one successful answer to a request.
type answer struct {
	instance string
	id       string
	position uint64
	replayed bool
}

// newRetryLoad sets up wallet with accounts a0…a(n-1), opening each with
// 1 BTC, through the cluster's admin.
func newRetryLoad(t *testing.T, cl *cluster, wallet string, accounts int, tolerate ...string) *retryLoad {
	l := &retryLoad{t: t, cl: cl, wallet: wallet, opening: 100_000_000, tolerate: map[string]bool{},
		outcomes: map[string]int{}, acked: map[string]ackedMove{}, holds: map[string]ackedMove{}}
	for _, o := range tolerate {
		l.tolerate[o] = true
	}
	opening := map[string]string{}
	for i := range accounts {
		a := fmt.Sprintf("a%d", i)
		l.accounts = append(l.accounts, a)
		opening[a] = "1.00000000"
	}
	setUpWallet(t, cl.admin, wallet, opening, l.accounts...)
	return l
}

// run runs workers clients until more returns false for a client's next
// operation (w the client, i its operation), and waits for them.
func (l *retryLoad) run(workers int, more func(w, i int) bool) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; more(w, i); i++ {
				if !l.op(w, i) {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// acks counts the acknowledged transfers and holds so far.
func (l *retryLoad) acks() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked) + len(l.holds)
}

// outcome counts one attempt's outcome.
func (l *retryLoad) outcome(o string) {
	l.mu.Lock()
	l.outcomes[o]++
	l.mu.Unlock()
}

// op is client w's operation i; false stops the client (an error was
// reported).
func (l *retryLoad) op(w, i int) bool {
	n := len(l.accounts)
	from := l.accounts[w%n]
	units := int64(1 + (w+i)%7)
	amount := fmt.Sprintf("0.%08d", units)
	if i%8 == 7 {
		key := fmt.Sprintf("hold-%d-%d", w, i)
		got, ok := l.twice(key, "POST", "/wallets/"+l.wallet+"/accounts/"+from+"/holds",
			map[string]string{"amount": amount, "reason": "multi"}, http.StatusCreated)
		if !ok {
			return false
		}
		pos, ok := l.release(got.id)
		if !ok {
			return false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.holds[got.id] = ackedMove{key: key, from: from, units: units, position: got.position, released: true, releasePosition: pos}
		l.maxPos = max(l.maxPos, pos)
		return true
	}
	to := l.accounts[(w%n+1+i%(n-1))%n]
	key := fmt.Sprintf("tr-%d-%d", w, i)
	got, ok := l.twice(key, "POST", "/wallets/"+l.wallet+"/transfers",
		map[string]string{"from": from, "to": to, "amount": amount}, http.StatusCreated)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, dup := l.acked[got.id]; dup {
		l.t.Errorf("transfer %s acknowledged for keys %s and %s", got.id, prev.key, key)
		return false
	}
	l.acked[got.id] = ackedMove{key: key, from: from, to: to, units: units, position: got.position}
	l.maxPos = max(l.maxPos, got.position)
	return true
}

// attempt sends one request to instance i: the answer when its status is
// want, retry when the outcome is tolerated, or an error reported.
func (l *retryLoad) attempt(i int, method, path string, body any, want int, header ...string) (r *response, retry bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := l.cl.nodes[i].c.tryCtx(ctx, method, path, body, header...)
	o := "transport"
	if err == nil {
		o = strconv.Itoa(r.Status)
		if r.Status != want {
			o += " " + r.problemCode()
		}
	}
	l.outcome(o)
	switch {
	case err == nil && r.Status == want:
		return r, false
	case err != nil && l.cl.exitedByItself(i):
		l.cl.reportExit(i)
	case l.tolerate[o]:
		return nil, true
	case err != nil:
		l.t.Errorf("%s %s on %s: %v", method, path, l.cl.nodes[i].id, err)
	default:
		l.t.Errorf("%s %s on %s: %d %s, want %d", method, path, l.cl.nodes[i].id, r.Status, r.Body, want)
	}
	return nil, false
}

// retryPause is how long a client waits before sending a request that met
// a tolerated failure to another instance.
const retryPause = 200 * time.Millisecond

// twice sends a request with an idempotency key until two instances
// answered it (see retryLoad), checks the answers agree, and returns the
// first.
func (l *retryLoad) twice(key, method, path string, body any, want int) (answer, bool) {
	var got []answer
	failed := false
	i := l.cl.pick(int(l.rr.Add(1)))
	for deadline := time.Now().Add(90 * time.Second); len(got) < 2; i = l.cl.other(i) {
		if time.Now().After(deadline) {
			l.t.Errorf("%s %s (key %s): %d answers within 90 s", method, path, key, len(got))
			return answer{}, false
		}
		r, retry := l.attempt(i, method, path, body, want, "Idempotency-Key", key)
		if retry {
			failed = failed || len(got) == 0 // before the first answer: it may have been written
			time.Sleep(retryPause)
			continue
		}
		if r == nil {
			return answer{}, false
		}
		var created struct {
			ID       string
			Position uint64
		}
		if err := json.Unmarshal(r.Body, &created); err != nil || created.ID == "" || created.Position == 0 {
			l.t.Errorf("%s %s: %s (%v)", method, path, r.Body, err)
			return answer{}, false
		}
		if h := r.Header.Get("Event-Position"); h != strconv.FormatUint(created.Position, 10) {
			l.t.Errorf("%s %s: Event-Position %q, body position %d", method, path, h, created.Position)
		}
		got = append(got, answer{instance: l.cl.nodes[i].id, id: created.ID, position: created.Position,
			replayed: r.Header.Get("Idempotent-Replayed") == "true"})
	}
	first, retried := got[0], got[1]
	if retried.id != first.id || retried.position != first.position || !retried.replayed || (first.replayed && !failed) {
		l.t.Errorf("%s %s (key %s): answers differ: %+v then %+v; want the same id and position, the retry replayed, the first not (unless an attempt before it failed)",
			method, path, key, first, retried)
		return answer{}, false
	}
	return first, true
}

// release releases hold id, then sends the release again to another
// instance. A release takes no idempotency key: the repeat is answered 404
// hold_not_found, as is an attempt after one that failed but was written.
func (l *retryLoad) release(id string) (uint64, bool) {
	path := "/wallets/" + l.wallet + "/holds/" + id + "/release"
	var pos uint64
	failed := false
	i := l.cl.pick(int(l.rr.Add(1)))
	for deadline := time.Now().Add(90 * time.Second); pos == 0; i = l.cl.other(i) {
		if time.Now().After(deadline) {
			l.t.Errorf("release %s: no answer within 90 s", id)
			return 0, false
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := l.cl.nodes[i].c.tryCtx(ctx, "POST", path, nil)
		cancel()
		if err == nil && r.Status == http.StatusNotFound && r.problemCode() == "hold_not_found" && failed {
			// Written by the attempt that failed: its position is in the log.
			l.outcome("404 hold_not_found")
			return 0, true
		}
		if err != nil || r.Status != http.StatusOK {
			l.outcome(outcomeOf(r, err))
			if err != nil && l.cl.exitedByItself(i) {
				l.cl.reportExit(i)
				return 0, false
			}
			if l.tolerate[outcomeOf(r, err)] {
				failed = true
				time.Sleep(retryPause)
				continue
			}
			l.t.Errorf("release %s on %s: %s %v", id, l.cl.nodes[i].id, outcomeOf(r, err), err)
			return 0, false
		}
		l.outcome("200")
		var p struct{ Position uint64 }
		if err := json.Unmarshal(r.Body, &p); err != nil || p.Position == 0 {
			l.t.Errorf("release %s: %s (%v)", id, r.Body, err)
			return 0, false
		}
		pos = p.Position
	}
	for j := l.cl.other(i); ; j = l.cl.other(j) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		r, err := l.cl.nodes[j].c.tryCtx(ctx, "POST", path, nil)
		cancel()
		o := outcomeOf(r, err)
		l.outcome(o)
		if o == "404 hold_not_found" {
			return pos, true
		}
		if err != nil && l.cl.exitedByItself(j) {
			l.cl.reportExit(j)
			return 0, false
		}
		if !l.tolerate[o] {
			l.t.Errorf("release %s again on %s: %s %v, want 404 hold_not_found", id, l.cl.nodes[j].id, o, err)
			return 0, false
		}
		time.Sleep(retryPause)
	}
}

// outcomeOf names an attempt's outcome: "transport", "200", or the status
// and problem code of a refusal.
func outcomeOf(r *response, err error) string {
	switch {
	case err != nil:
		return "transport"
	case r.Status < 300:
		return strconv.Itoa(r.Status)
	}
	return strconv.Itoa(r.Status) + " " + r.problemCode()
}

// summary is the count of each outcome, for the test log.
func (l *retryLoad) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(l.outcomes)) {
		parts = append(parts, fmt.Sprintf("%s: %d", o, l.outcomes[o]))
	}
	return fmt.Sprintf("%d transfers, %d holds; attempts %s", len(l.acked), len(l.holds), strings.Join(parts, ", "))
}

// walletLog reads the wallet's stream from the shared store.
func walletLog(t *testing.T, storeURL, w string) []eventstore.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, err := pgstore.Open(ctx, storeURL, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var out []eventstore.Event
	for {
		page, err := store.ReadStream(ctx, ledger.Stream(w), uint64(len(out)), 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			return out
		}
		out = append(out, page...)
	}
}

// verify checks the ledger after the load: in the shared log every
// acknowledged transfer and hold once (by id and by idempotency key) and
// nothing else, every hold released once; on every running instance the
// balances are what the acknowledged transfers make them with nothing held;
// the read models sum to zero; `coinledger audit verify` on the shared
// store finds nothing.
func (l *retryLoad) verify() {
	t := l.t
	t.Helper()
	codec := wallet.Codec()
	transfers, holds, released, keys := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	var head uint64
	for _, e := range walletLog(t, l.cl.store, l.wallet) {
		head = e.Position
		ev, err := codec.Decode(e)
		if err != nil {
			t.Fatalf("decode %s: %v", e, err)
		}
		switch ev := ev.(type) {
		case ledger.FundsTransferred:
			transfers[ev.ID]++
			keys[ev.Key]++
		case ledger.HoldPlaced:
			holds[ev.ID]++
			keys[ev.Key]++
		case ledger.HoldReleased:
			released[ev.ID]++
		case ledger.HoldExpired:
			t.Errorf("hold %s expired: the load's holds have no expiry", ev.ID)
		}
	}
	for key, n := range keys {
		if n != 1 {
			t.Errorf("idempotency key %s applied %d times", key, n)
		}
	}
	want := map[string]int64{}
	for _, a := range l.accounts {
		want[a] = l.opening
	}
	for id, m := range l.acked {
		if transfers[id] != 1 {
			t.Errorf("acknowledged transfer %s (key %s) is %d times in the log", id, m.key, transfers[id])
		}
		want[m.from] -= m.units
		want[m.to] += m.units
	}
	if len(transfers) != len(l.acked) {
		t.Errorf("%d transfers in the log, %d acknowledged", len(transfers), len(l.acked))
	}
	for id, h := range l.holds {
		if holds[id] != 1 || released[id] != 1 {
			t.Errorf("hold %s (key %s): placed %d times, released %d times in the log, want once each", id, h.key, holds[id], released[id])
		}
	}
	if len(holds) != len(l.holds) || len(released) != len(l.holds) {
		t.Errorf("%d holds placed and %d released in the log, %d acknowledged", len(holds), len(released), len(l.holds))
	}

	// The balances, on every running instance, once its read models have
	// the whole stream.
	q := "?min_position=" + strconv.FormatUint(head, 10)
	for i, in := range l.cl.nodes {
		if !l.cl.up(i) {
			continue
		}
		for _, a := range l.accounts {
			var acct struct{ Balance balanceJSON }
			r, err := in.c.try("GET", "/wallets/"+l.wallet+"/accounts/"+a+q, nil)
			if err != nil || r.Status != http.StatusOK {
				t.Errorf("balance of %s on %s: %s %v", a, in.id, outcomeOf(r, err), err)
				continue
			}
			r.JSON(t, &acct)
			if w := fmt.Sprintf("%d.%08d", want[a]/100_000_000, want[a]%100_000_000); acct.Balance.Available != w ||
				acct.Balance.Held != "0.00000000" || acct.Balance.Pending != "0.00000000" {
				t.Errorf("%s on %s: %+v, want %s available, nothing held or pending", a, in.id, acct.Balance, w)
			}
		}
	}
	var total int64
	for _, v := range want {
		total += v
	}
	if total != l.opening*int64(len(l.accounts)) {
		t.Errorf("the acknowledged transfers do not conserve: %d in the accounts, %d opened", total, l.opening*int64(len(l.accounts)))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, l.cl.models)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	assertSumsToZero(t, db, l.wallet)
	l.cl.auditVerify()
}

// auditVerify runs `coinledger audit verify` on the cluster's shared store
// and read models, with the cluster's keyring: it exits non-zero, failing
// the test, on any finding.
func (cl *cluster) auditVerify() {
	cl.t.Helper()
	out := cli(cl.t, "", []string{"COINLEDGER_EVENT_STORE=" + cl.store, "COINLEDGER_READ_MODELS=" + cl.models,
		"COINLEDGER_SEAL_KEY=0123456789abcdef0123456789abcdef", "COINLEDGER_AUDIT_KEY_FILE=" + cl.keyring,
		"COINLEDGER_DATA_DIR=" + cl.t.TempDir(), "COINLEDGER_LISTEN=" + freePort(cl.t)},
		"audit", "verify", "-chains=false")
	if !strings.Contains(out, "ok: ") {
		cl.t.Errorf("audit verify on the shared store said:\n%s", out)
	}
}
