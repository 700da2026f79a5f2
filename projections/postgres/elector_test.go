package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/balance"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/electortest"
	"github.com/coinledger/coinledger/projections/postgres"
)

const testInterval = 200 * time.Millisecond

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startElector runs an elector of id on url (through a proxy of its own,
// returned, so a test can cut its connection) until t ends.
func startElector(t *testing.T, rawURL, id string) (*postgres.Elector, *dbtest.Proxy) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := dbtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	e, err := postgres.NewElector(u.String(), id, "test", postgres.ElectorOptions{Interval: testInterval, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("elector %s: Run: %v", id, err)
		}
	})
	return e, proxy
}

func TestElectorConformance(t *testing.T) {
	electortest.Run(t, func(t *testing.T) projections.Elector {
		e, _ := startElector(t, dbtest.PostgresURL(t), "solo")
		return e
	})
}

var testRoles = []string{"projections", "outbox", "chainsync:BTC"}

// holders returns, per role, the electors (by index) that lead it now.
func holders(es []*postgres.Elector) map[string][]int {
	out := map[string][]int{}
	for i, e := range es {
		for _, r := range e.Self().Roles {
			out[r] = append(out[r], i)
		}
	}
	return out
}

// TestElectorsOneLeaderPerRoleAndFailover: three electors on one database
// campaign for three roles. Sampled every 10 ms, no role ever has two
// leaders and each soon has one; the leader's connection is cut (as when
// its process is killed: Postgres releases its locks) and another takes
// each role it held within 5 s, with a greater epoch; the old one notices
// and ends its terms. Every instance sees all three in Instances.
func TestElectorsOneLeaderPerRoleAndFailover(t *testing.T) {
	base := dbtest.PostgresURL(t)
	var es []*postgres.Elector
	var proxies []*dbtest.Proxy
	terms := make([]map[string]chan projections.Term, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := range 3 {
		e, p := startElector(t, base, fmt.Sprintf("inst-%d", i))
		es, proxies = append(es, e), append(proxies, p)
		terms[i] = map[string]chan projections.Term{}
		for _, role := range testRoles {
			ch := make(chan projections.Term, 8)
			terms[i][role] = ch
			go func() {
				for {
					term, err := e.Lead(ctx, role)
					if err != nil {
						return
					}
					ch <- term
					select {
					case <-term.Done:
					case <-ctx.Done():
						return
					}
				}
			}()
		}
	}
	// Steady state: exactly one leader per role, never two.
	deadline := time.Now().Add(10 * time.Second)
	for {
		h := holders(es)
		for _, role := range testRoles {
			if len(h[role]) > 1 {
				t.Fatalf("role %s led by %v at once", role, h[role])
			}
		}
		if len(h) == len(testRoles) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every role led after 10 s: %v", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for role, who := range holders(es) {
			if len(who) != 1 {
				t.Fatalf("role %s led by %v", role, who)
			}
		}
	}
	in, err := es[0].Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids := instanceIDs(in); !slices.Equal(ids, []string{"inst-0", "inst-1", "inst-2"}) {
		t.Errorf("Instances: %v, want the three", ids)
	}

	// Failover: cut the connection of the leader of outbox.
	old := holders(es)["outbox"][0]
	var oldTerm projections.Term
	select {
	case oldTerm = <-terms[old]["outbox"]:
	default:
		t.Fatal("the leader of outbox got no term")
	}
	held := es[old].Self().Roles
	cut := time.Now()
	proxies[old].Cut()
	var took time.Duration
	for {
		h := holders(es)
		taken := true
		for _, role := range held {
			if len(h[role]) != 1 || h[role][0] == old {
				taken = false
			}
		}
		if taken {
			took = time.Since(cut)
			break
		}
		if time.Since(cut) > 5*time.Second {
			t.Fatalf("roles %v not taken over within 5 s of the cut: %v", held, h)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("failover after the leader's connection was cut: %v (roles %v, poll interval %v)", took, held, testInterval)
	select {
	case <-oldTerm.Done:
	case <-time.After(5 * time.Second):
		t.Fatal("the deposed leader's term is not done")
	}
	newLeader := holders(es)["outbox"][0]
	select {
	case nt := <-terms[newLeader]["outbox"]:
		if nt.Epoch <= oldTerm.Epoch {
			t.Errorf("new term epoch %d, old %d: want greater", nt.Epoch, oldTerm.Epoch)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the new leader of outbox got no term")
	}
	// The cut instance's heartbeat stops: it drops out of the live list.
	deadline = time.Now().Add(10 * time.Second)
	for {
		in, err := es[newLeader].Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(instanceIDs(in), fmt.Sprintf("inst-%d", old)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cut instance still listed as live: %v", instanceIDs(in))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// It comes back and stands by: still one leader per role.
	proxies[old].Restore()
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		for role, who := range holders(es) {
			if len(who) > 1 {
				t.Fatalf("after the old leader came back, role %s led by %v", role, who)
			}
		}
	}
}

func instanceIDs(in []projections.Instance) []string {
	var ids []string
	for _, i := range in {
		ids = append(ids, i.ID)
	}
	return ids
}

// TestElectorFencesADeposedLeader: a write under a term that is no longer
// current is refused (ErrDeposed) inside its transaction; the new term's
// goes through.
func TestElectorFencesADeposedLeader(t *testing.T) {
	ctx := context.Background()
	base := dbtest.PostgresURL(t)
	a, pa := startElector(t, base, "a")
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ta, err := a.Lead(lctx, "projections")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := startElector(t, base, "b")
	pa.Cut() // a is deposed; it does not know it yet when it writes below
	tb, err := b.Lead(lctx, "projections")
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fenced := func(f *postgres.Elector, term projections.Term) error {
		return db.Update(ctx, func(tx projections.Tx) error { return f.Fence(ctx, tx, term) })
	}
	if err := fenced(a, ta); !errors.Is(err, projections.ErrDeposed) {
		t.Errorf("write under the deposed term %d: %v, want ErrDeposed", ta.Epoch, err)
	}
	if err := fenced(b, tb); err != nil {
		t.Errorf("write under the current term %d: %v", tb.Epoch, err)
	}
}

// TestRunnersFailOverOneReadModel: two runners (two instances) share read
// models in one database, the projections electing a leader. Only the
// leader applies; the other stands by and its WaitFor follows the stored
// checkpoint. The leader's elector connection is cut: the other takes over
// and applies the rest, the deposed runner keeps running (standby, it does
// not exit), and every event is applied exactly once.
func TestRunnersFailOverOneReadModel(t *testing.T) {
	ctx := context.Background()
	base := dbtest.PostgresURL(t)
	store := dbtest.NewStore(t)
	type instance struct {
		r     *projections.Runner
		e     *postgres.Elector
		proxy *dbtest.Proxy
		done  chan error
		db    *postgres.DB
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var ins []*instance
	for i := range 2 {
		e, p := startElector(t, base, fmt.Sprintf("r%d", i))
		db, err := postgres.Open(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		roles := map[string]string{"counter": projections.RoleProjections, "balances": projections.RoleProjections}
		r := projections.NewRunner(db, dbtest.SmallBatches{Store: store, Size: 25}, projections.Options{
			RetryMin: 5 * time.Millisecond, RetryMax: 100 * time.Millisecond, MaxBatch: 50, Logger: quiet,
			Elector: e, Roles: roles, Shared: true}, &dbtest.Counter{}, balance.Balances{})
		in := &instance{r: r, e: e, proxy: p, done: make(chan error, 1), db: db}
		go func() { in.done <- r.Run(runCtx) }()
		ins = append(ins, in)
	}
	head := dbtest.AppendCredits(t, store, "wallet-a", 300, 5, 10)
	for _, in := range ins { // the leader applies; the other reads the stored checkpoint
		waitAll(t, in.r, head)
	}
	leader := -1
	for i, in := range ins {
		if slices.Contains(in.e.Self().Roles, projections.RoleProjections) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no runner leads the projections")
	}
	st, err := ins[1-leader].r.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.State != projections.StateStandby || !s.Ready || s.Position != head {
			t.Errorf("standby runner's %s: %+v, want standby, ready, at %d", s.Name, s, head)
		}
	}
	appended := make(chan uint64)
	go func() { appended <- dbtest.AppendCredits(t, store, "wallet-b", 500, 5, 5) }()
	time.Sleep(20 * time.Millisecond)
	cut := time.Now()
	ins[leader].proxy.Cut()
	head = <-appended
	waitAll(t, ins[1-leader].r, head)
	t.Logf("read models at the head %v after the leader's elector was cut", time.Since(cut))
	if !slices.Contains(ins[1-leader].e.Self().Roles, projections.RoleProjections) {
		t.Errorf("the standby did not take the projections: %+v", ins[1-leader].e.Self())
	}
	select {
	case err := <-ins[leader].done:
		t.Fatalf("the deposed runner's Run returned %v", err)
	default:
	}
	stop()
	for _, in := range ins {
		if err := <-in.done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	n, lo, hi, err := dbtest.CounterRows(ctx, ins[0].db)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(head) || lo != 1 || uint64(hi) != head {
		t.Errorf("counter has %d rows %d..%d, want %d rows 1..%d", n, lo, hi, head, head)
	}
	var sum int64
	if err := ins[0].db.QueryRow(ctx, `SELECT CAST(SUM(amount) AS BIGINT) FROM balances`).Scan(&sum); err != nil {
		t.Fatal(err)
	}
	if uint64(sum) != head {
		t.Errorf("balances sum to %d, want %d (one per event)", sum, head)
	}
}
