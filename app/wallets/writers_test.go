package wallets_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/postgres"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// TestTwoWritersSQLite runs the two-writer retry suite on one SQLite
// store shared by two services (two batchers, each with its own cache).
func TestTwoWritersSQLite(t *testing.T) {
	t.Parallel()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	runTwoWriters(t, store, store)
}

// TestTwoWritersPostgres runs it on two Postgres stores (as two processes
// have) on one database.
func TestTwoWritersPostgres(t *testing.T) {
	t.Parallel()
	url := dbtest.PostgresURL(t)
	open := func() eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	runTwoWriters(t, open(), open())
}

// TestTwoWritersEventStoreDB runs it on two adapters (clients) of one
// EventStoreDB double.
func TestTwoWritersEventStoreDB(t *testing.T) {
	t.Parallel()
	srv := esdbtest.Start(t, esdbtest.Options{})
	open := func() eventstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := esdb.Open(ctx, srv.URL(), esdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	runTwoWriters(t, open(), open())
}

// kind is a keyed wallet command under test: cmd builds it for subject
// id with the request's idempotency and amount; setup, if set, prepares
// what the command acts on (the hold a release ends) through svc.
type kind struct {
	name  string
	setup func(t *testing.T, svc *wallets.Service, id string)
	cmd   func(id string, idem ledger.Idempotency, amount int64) ledger.Command
}

func btc(units int64) money.Amount { return money.New(money.BTC, units) }

var kinds = []kind{
	{name: "transfer", cmd: func(id string, idem ledger.Idempotency, n int64) ledger.Command {
		return ledger.Transfer{ID: id, From: "alice", To: "bob", Amount: btc(n), Idempotency: idem}
	}},
	{name: "hold", cmd: func(id string, idem ledger.Idempotency, n int64) ledger.Command {
		return ledger.PlaceHold{ID: id, Account: "alice", Amount: btc(n), Idempotency: idem}
	}},
	{name: "release", setup: func(t *testing.T, svc *wallets.Service, id string) {
		mustExecute(t, svc, eventstore.Metadata{}, ledger.PlaceHold{ID: id, Account: "alice", Amount: btc(3)})
	}, cmd: func(id string, idem ledger.Idempotency, n int64) ledger.Command {
		return ledger.ReleaseHold{ID: id, Reason: fmt.Sprint("reason ", n), Idempotency: idem}
	}},
	{name: "withdrawal", cmd: func(id string, idem ledger.Idempotency, n int64) ledger.Command {
		return ledger.RequestWithdrawal{ID: id, Account: "alice", Address: "1BoatSLRHtKNngkdXEeobR76b53LETtpyT", Amount: btc(n), Idempotency: idem}
	}},
	{name: "import", cmd: func(id string, idem ledger.Idempotency, n int64) ledger.Command {
		return ledger.ImportBalance{ID: id, Account: "alice", Amount: btc(n), Idempotency: idem}
	}},
}

func mustExecute(t *testing.T, svc *wallets.Service, meta eventstore.Metadata, c ledger.Command) wallets.Result {
	t.Helper()
	res, err := svc.Execute(context.Background(), meta, "main", cmd(c))
	if err != nil {
		t.Fatalf("%T: %v", c, err)
	}
	return res
}

// attempt is one request: a command under an idempotency key, with the
// request's hash and the metadata the HTTP layer gives it.
type attempt struct {
	svc  *wallets.Service
	meta eventstore.Metadata
	cmd  ledger.Command
}

type answer struct {
	res wallets.Result
	err error
}

func (a attempt) run() answer {
	res, err := a.svc.Execute(context.Background(), a.meta, "main", cmd(a.cmd))
	return answer{res, err}
}

// runTwoWriters is the suite of exact idempotent retries across writers:
// two wallet services (two batchers with their own caches, as two
// instances have) over storeA and storeB, one ledger. For every command
// kind, a request under an idempotency key is retried on the other
// writer, interleaved (the retry's writer holds a stale state) and
// concurrently (both writers start from a cold load), with the same and
// with a different request. The same request is applied once and answered
// alike (id, position), as a replay on the second; a different request
// under the key is refused (ErrIdempotencyKeyReused) and applies nothing.
// Afterwards a fresh load of the ledger verifies (zero-sum, holds) and
// every key has the events of one application.
func runTwoWriters(t *testing.T, storeA, storeB eventstore.Store) {
	a, b := &storetest.AppendCounter{Store: storeA}, &storetest.AppendCounter{Store: storeB}
	svcA, svcB := wallets.New(a, wallets.Options{}), wallets.New(b, wallets.Options{})
	t.Cleanup(func() { svcA.Close(); svcB.Close() })
	for _, c := range []ledger.Command{
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "alice"},
		ledger.OpenAccount{Name: "bob"},
		ledger.ImportBalance{ID: "funding", Account: "alice", Amount: btc(1_000_000)},
	} {
		mustExecute(t, svcA, eventstore.Metadata{}, c)
	}
	var keys []string // every key applied once
	n := 0
	request := func(svc *wallets.Service, k kind, id, key, hash string, amount int64, corr string) attempt {
		return attempt{svc: svc, meta: eventstore.Metadata{Actor: "user:alice", IdempotencyKey: key, CorrelationID: corr},
			cmd: k.cmd(id, ledger.Idempotency{Key: key, RequestHash: hash}, amount)}
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			// next returns a fresh subject and key, with what the command
			// needs prepared through B: B's append leaves its cache at
			// the head, where A, then stale, will reload and append.
			next := func() (id, key string) {
				n++
				id, key = fmt.Sprintf("%s-%d", k.name, n), fmt.Sprintf("alice:%s-%d", k.name, n)
				if k.setup != nil {
					k.setup(t, svcB, id)
				} else {
					mustExecute(t, svcB, eventstore.Metadata{}, ledger.ImportBalance{ID: "sync-" + id, Account: "bob", Amount: btc(1)})
				}
				keys = append(keys, key)
				return id, key
			}

			// Interleaved, same request (the client resends it, request id
			// and all): B decides on a stale state the same events, which
			// the store recognises where A's went; B reloads and replays.
			id, key := next()
			retriesBefore := b.Retries()
			first := request(svcA, k, id, key, "h1", 5, "req-"+key).run()
			second := request(svcB, k, id, key, "h1", 5, "req-"+key).run()
			third := request(svcA, k, id, key, "h1", 5, "req-"+key).run()
			sameAnswers(t, "interleaved", id, first, second, third)
			if b.Retries() == retriesBefore {
				t.Errorf("interleaved: B's append of the same events was not recognised as a retry")
			}

			// Interleaved, the same request under a new request id, and
			// a different request under the key: B's stale decision has
			// other contents, so other ids: a conflict, then the replay
			// or the refusal.
			id, key = next()
			first = request(svcA, k, id, key, "h1", 5, "req-1").run()
			second = request(svcB, k, id, key, "h1", 5, "req-2").run()
			sameAnswers(t, "interleaved, new request id", id, first, second)
			id2, key2 := next()
			first = request(svcA, k, id2, key2, "h1", 5, "req-1").run()
			other := request(svcB, k, id2, key2, "h2", 6, "req-2").run()
			if first.err != nil || !errors.Is(other.err, ledger.ErrIdempotencyKeyReused) {
				t.Errorf("interleaved, other request: %+v then %+v; want success then key reused", first, other)
			}

			// Concurrent: two fresh writers (cold loads, as two instances)
			// take the same key at once, same and different requests.
			for round := range 8 {
				ca, cb := wallets.New(a, wallets.Options{}), wallets.New(b, wallets.Options{})
				id, key := next()
				same := round%2 == 0
				reqA := request(ca, k, id, key, "h1", 5, "req-"+key)
				reqB := request(cb, k, id, key, "h1", 5, "req-"+key)
				if !same {
					reqB = request(cb, k, id, key, "h2", 6, "req-other")
				}
				var got [2]answer
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i, r := range []attempt{reqA, reqB} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						got[i] = r.run()
					}()
				}
				close(start)
				wg.Wait()
				ca.Close()
				cb.Close()
				if same {
					fresh := 0
					for _, g := range got {
						if g.err == nil && !g.res.Replayed {
							fresh++
						}
					}
					if got[0].err != nil || got[1].err != nil || got[0].res.ID != id || got[0].res.Position != got[1].res.Position ||
						fresh != 1 {
						t.Errorf("concurrent round %d: %+v and %+v; want the same id %s and position, one of them replayed", round, got[0], got[1], id)
					}
					continue
				}
				ok, reused := 0, 0
				for _, g := range got {
					switch {
					case g.err == nil && !g.res.Replayed:
						ok++
					case errors.Is(g.err, ledger.ErrIdempotencyKeyReused):
						reused++
					}
				}
				if ok != 1 || reused != 1 {
					t.Errorf("concurrent round %d, other request: %+v and %+v; want one applied, one key reused", round, got[0], got[1])
				}
			}
		})
	}
	verifyOnce(t, storeA, keys)
}

// sameAnswers checks the answers to one request sent several times: all
// succeed with the subject id and one position, the first fresh, the
// others replays.
func sameAnswers(t *testing.T, what, id string, answers ...answer) {
	t.Helper()
	for i, a := range answers {
		if a.err != nil || a.res.ID != id || a.res.Position != answers[0].res.Position || a.res.Position == 0 || a.res.Replayed != (i > 0) {
			t.Errorf("%s: answer %d is %+v, %v; want id %s at position %d, replayed: %v", what, i, a.res, a.err, id, answers[0].res.Position, i > 0)
		}
	}
}

// verifyOnce loads the ledger afresh and checks it: sound (zero-sum,
// holds and balances agree) and one application of each key, i.e. one
// event carrying it.
func verifyOnce(t *testing.T, store eventstore.Store, keys []string) {
	t.Helper()
	svc := wallets.New(store, wallets.Options{})
	defer svc.Close()
	if err := svc.View(context.Background(), "main", func(s *ledger.State) error { return s.Verify() }); err != nil {
		t.Fatalf("ledger after the retries: %v", err)
	}
	perKey := map[string]int{}
	for _, e := range storetest.MustRead(t, store, ledger.Stream("main")) {
		if e.Metadata.IdempotencyKey != "" {
			perKey[e.Metadata.IdempotencyKey]++
		}
	}
	for _, k := range keys {
		if perKey[k] != 1 {
			t.Errorf("key %s has %d events, want the 1 of one application", k, perKey[k])
		}
	}
}
