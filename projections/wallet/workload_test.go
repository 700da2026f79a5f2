package wallet_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
)

// workload makes random but valid wallet activity with the real decider:
// imports, transfers, holds placed, released and expired (hold ids are
// sometimes reused once a hold ended), locks and new accounts. Commands the
// decider refuses (a transfer from a locked wallet) are dropped.
type workload struct {
	r     *rand.Rand
	l     *ledgers
	clk   *clock
	now   time.Time
	next  int
	ended map[string][]string // hold ids no longer active, per wallet
}

func newWorkload(l *ledgers, clk *clock, seed uint64) *workload {
	return &workload{r: rand.New(rand.NewPCG(seed, 1)), l: l, clk: clk, now: clk.Now(), ended: map[string][]string{}}
}

func (w *workload) id(prefix string) string {
	w.next++
	return fmt.Sprintf("%s-%d", prefix, w.next)
}

// open creates a wallet with accounts funded by imports.
func (w *workload) open(tb testing.TB, name string, accounts int) {
	tb.Helper()
	cmds := []ledger.Command{ledger.OpenWallet{Name: name, Coin: money.BTC, Permissions: ledger.AllPermissions()}}
	for i := range accounts {
		acct := fmt.Sprintf("acct-%d", i)
		cmds = append(cmds, ledger.OpenAccount{Name: acct},
			ledger.ImportBalance{ID: w.id("imp"), Account: acct, Amount: btc(1000 + w.r.Int64N(1_000_000)), Reason: "opening"})
	}
	w.l.do(tb, name, cmds...)
}

// step appends one to three random commands to a random one of wallets.
func (w *workload) step(tb testing.TB, wallets []string) {
	tb.Helper()
	name := wallets[w.r.IntN(len(wallets))]
	s := w.l.states[name]
	w.now = w.now.Add(time.Duration(w.r.IntN(30)) * time.Second) // sometimes the same time
	w.clk.Set(w.now)
	version := s.Version()
	var events []ledger.Event
	for range 1 + w.r.IntN(3) {
		c := w.command(name, s)
		if c == nil {
			continue
		}
		evs, err := ledger.Execute(s, c)
		if err != nil {
			continue // refused (locked wallet, insufficient funds): not an event
		}
		for _, e := range evs {
			switch e := e.(type) {
			case ledger.HoldReleased:
				w.ended[name] = append(w.ended[name], e.ID)
			case ledger.HoldExpired:
				w.ended[name] = append(w.ended[name], e.ID)
			case ledger.HoldPlaced:
				w.ended[name] = slices.DeleteFunc(w.ended[name], func(id string) bool { return id == e.ID })
			}
		}
		events = append(events, evs...)
	}
	if len(events) == 0 {
		return
	}
	data, err := w.l.codec.Encode(eventstore.Metadata{}, events)
	must(tb, err)
	if _, err := w.l.store.Append(context.Background(), "wallet-"+name, eventstore.ExpectRevision(version), data...); err != nil {
		tb.Fatal(err)
	}
}

func (w *workload) command(name string, s *ledger.State) ledger.Command {
	accts := s.Accounts()
	acct := accts[w.r.IntN(len(accts))]
	bal, _ := s.Balance(acct)
	switch n := w.r.IntN(100); {
	case n < 50:
		to := accts[w.r.IntN(len(accts))]
		if to == acct || bal.Available == 0 {
			return nil
		}
		return ledger.Transfer{ID: w.id("t"), From: acct, To: to, Amount: btc(1 + w.r.Int64N(bal.Available)), Memo: fmt.Sprint("memo ", n)}
	case n < 58:
		return ledger.ImportBalance{ID: w.id("imp"), Account: acct, Amount: btc(1 + w.r.Int64N(10_000))}
	case n < 72:
		if bal.Available < 2 {
			return nil
		}
		id := w.id("h")
		if ended := w.ended[name]; len(ended) > 0 && w.r.IntN(3) == 0 {
			id = ended[w.r.IntN(len(ended))] // reuse an ended hold's id
		}
		c := ledger.PlaceHold{ID: id, Account: acct, Amount: btc(1 + w.r.Int64N(bal.Available/2)), Reason: "r " + id}
		if w.r.IntN(2) == 0 {
			c.Now, c.ExpiresAt = w.now, w.now.Add(time.Duration(1+w.r.IntN(20))*time.Minute)
		}
		return c
	case n < 82:
		holds := s.Holds()
		if len(holds) == 0 {
			return nil
		}
		return ledger.ReleaseHold{ID: holds[w.r.IntN(len(holds))].ID, Reason: "done"}
	case n < 90:
		expired := s.ExpiredHolds(w.now)
		if len(expired) == 0 {
			return nil
		}
		return ledger.ExpireHold{ID: expired[0].ID, Now: w.now}
	case n < 92:
		return ledger.LockWallet{Reason: "check"}
	case n < 98:
		return ledger.UnlockWallet{}
	}
	return ledger.OpenAccount{Name: w.id("new")}
}
