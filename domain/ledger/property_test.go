package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// commandGen draws random commands, valid and invalid, over a small world
// so that they often collide (same accounts, hold ids and keys).
type commandGen struct {
	r     *rand.Rand
	s     *ledger.State
	now   time.Time
	next  int
	holds []string // hold ids ever placed
}

var names = []string{"alice", "bob", "carol", "dave", ledger.ImportAccount, ledger.ChainAccount, "ghost", "", "@x"}

func (g *commandGen) account() string {
	if g.r.IntN(10) < 8 {
		return names[g.r.IntN(4)]
	}
	return names[g.r.IntN(len(names))]
}

func (g *commandGen) amount(account string) money.Amount {
	b, _ := g.s.Balance(account)
	switch g.r.IntN(12) {
	case 0:
		return btc(0)
	case 1:
		return btc(-1 - g.r.Int64N(1000))
	case 2:
		return btc(math.MaxInt64 - g.r.Int64N(3))
	case 3:
		return money.New(money.LTC, 1+g.r.Int64N(1000))
	case 4, 5:
		return btc(b.Available) // exactly all (zero when empty)
	case 6:
		return btc(b.Available + 1)
	}
	return btc(1 + g.r.Int64N(1_000_000))
}

func (g *commandGen) id(prefix string) string {
	g.next++
	return fmt.Sprintf("%s-%d", prefix, g.next)
}

func (g *commandGen) holdID() string {
	if len(g.holds) > 0 && g.r.IntN(10) < 8 {
		return g.holds[g.r.IntN(len(g.holds))]
	}
	return g.id("h")
}

func (g *commandGen) command() ledger.Command {
	var c ledger.Command
	switch g.r.IntN(20) {
	case 0:
		c = ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: allPerms}
	case 1, 2:
		c = ledger.OpenAccount{Name: g.account()}
	case 3, 4, 5:
		a := g.account()
		c = ledger.ImportBalance{ID: g.id("i"), Account: a, Amount: g.amount(a)}
	case 6, 7, 8, 9, 10:
		from := g.account()
		c = ledger.Transfer{ID: g.id("t"), From: from, To: g.account(), Amount: g.amount(from)}
	case 11, 12, 13:
		a := g.account()
		h := ledger.PlaceHold{ID: g.holdID(), Account: a, Amount: g.amount(a), Now: g.now}
		if g.r.IntN(2) == 0 {
			h.ExpiresAt = g.now.Add(time.Duration(g.r.IntN(120)-10) * time.Minute)
		}
		g.holds = append(g.holds, h.ID)
		c = h
	case 14, 15:
		c = ledger.ReleaseHold{ID: g.holdID()}
	case 16:
		g.now = g.now.Add(time.Duration(g.r.IntN(90)) * time.Minute)
		if exp := g.s.ExpiredHolds(g.now); len(exp) > 0 && g.r.IntN(3) > 0 {
			c = ledger.ExpireHold{ID: exp[g.r.IntN(len(exp))].ID, Now: g.now}
		} else {
			c = ledger.ExpireHold{ID: g.holdID(), Now: g.now}
		}
	case 17:
		c = ledger.LockWallet{}
	case 18:
		c = ledger.UnlockWallet{}
	default:
		c = ledger.UnlockWallet{Reason: "again"}
	}
	if g.r.IntN(4) == 0 { // keyed: a small pool of keys and hashes, so replays and reuse happen
		return withKey(c, key(fmt.Sprintf("k%d", g.r.IntN(8)), fmt.Sprintf("h%d", g.r.IntN(2))))
	}
	return c
}

func withKey(c ledger.Command, k ledger.Idempotency) ledger.Command {
	v := reflect.New(reflect.TypeOf(c)).Elem()
	v.Set(reflect.ValueOf(c))
	v.FieldByName("Idempotency").Set(reflect.ValueOf(k))
	return v.Interface().(ledger.Command)
}

var outcomes = []error{
	ledger.ErrWalletNotFound, ledger.ErrWalletExists, ledger.ErrWalletLocked, ledger.ErrAccountNotFound,
	ledger.ErrAccountExists, ledger.ErrInsufficientFunds, ledger.ErrHoldNotFound, ledger.ErrHoldExists,
	ledger.ErrIdempotencyKeyReused, ledger.ErrValidation,
}

type tally map[string]int

// checkRandom applies steps random commands from seed, checking the ledger
// invariants after every event, that failed commands leave the state
// untouched, and finally that the events, encoded and decoded, rebuild
// the same state.
func checkRandom(t *testing.T, seed uint64, steps int, seen tally) {
	t.Helper()
	g := &commandGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), s: ledger.NewState(), now: t0}
	s := g.s
	var log []ledger.Event
	if seed%5 != 0 { // usually start from an open wallet
		events, _ := ledger.Execute(s, ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: allPerms})
		log = append(log, events...)
	}
	for i := 0; i < steps; i++ {
		c := g.command()
		before := s.Clone()
		events, err := ledger.Decide(s, c)
		if err != nil {
			if !reflect.DeepEqual(s, before) {
				t.Fatalf("seed %d step %d: failed %T changed the state", seed, i, c)
			}
			known := false
			for _, o := range outcomes {
				if errors.Is(err, o) {
					known = true
					seen[o.Error()]++
				}
			}
			if !known {
				t.Fatalf("seed %d step %d: %T: error matches no sentinel: %v", seed, i, c, err)
			}
			continue
		}
		if len(events) == 0 {
			seen["no events"]++
		}
		for _, e := range events {
			var sum int64
			for _, p := range ledger.PostingsOf(e) {
				sum += p.Amount
			}
			if sum != 0 {
				t.Fatalf("seed %d step %d: %s postings sum to %d", seed, i, e.EventType(), sum)
			}
			ledger.Evolve(s, e)
			log = append(log, e)
			seen[e.EventType()]++
			if err := s.Verify(); err != nil {
				t.Fatalf("seed %d step %d: after %s %+v: %v", seed, i, e.EventType(), e, err)
			}
		}
	}
	if s.Version() != uint64(len(log)) {
		t.Fatalf("seed %d: version %d after %d events", seed, s.Version(), len(log))
	}
	rebuilt := ledger.NewState()
	for _, e := range roundTrip(t, log) {
		ledger.Evolve(rebuilt, e)
	}
	if !reflect.DeepEqual(rebuilt, s) {
		t.Fatalf("seed %d: state rebuilt from stored events differs", seed)
	}
}

// roundTrip encodes events to JSON and decodes them by type name, as the
// event store codec does.
func roundTrip(t *testing.T, events []ledger.Event) []ledger.Event {
	t.Helper()
	byName := map[string]reflect.Type{}
	for _, e := range ledger.Events() {
		byName[e.EventType()] = reflect.TypeOf(e)
	}
	out := make([]ledger.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		v := reflect.New(byName[e.EventType()])
		if err := json.Unmarshal(data, v.Interface()); err != nil {
			t.Fatal(err)
		}
		out[i] = v.Elem().Interface().(ledger.Event)
	}
	return out
}

func TestInvariantsUnderRandomCommands(t *testing.T) {
	seeds, steps := 120, 400
	if testing.Short() {
		seeds = 20
	}
	seen := tally{}
	for seed := range uint64(seeds) {
		checkRandom(t, seed, steps, seen)
	}
	// The generator must reach every rule, or the test proves little.
	for _, want := range []string{
		ledger.TypeAccountOpened, ledger.TypeBalanceImported, ledger.TypeFundsTransferred,
		ledger.TypeHoldPlaced, ledger.TypeHoldReleased, ledger.TypeHoldExpired,
		ledger.TypeWalletLocked, ledger.TypeWalletUnlocked, "no events",
		ledger.ErrInsufficientFunds.Error(), ledger.ErrWalletLocked.Error(), ledger.ErrAccountNotFound.Error(),
		ledger.ErrHoldNotFound.Error(), ledger.ErrHoldExists.Error(), ledger.ErrIdempotencyKeyReused.Error(),
		ledger.ErrValidation.Error(), ledger.ErrAccountExists.Error(), ledger.ErrWalletExists.Error(),
		ledger.ErrWalletNotFound.Error(),
	} {
		if seen[want] == 0 {
			t.Errorf("random commands never produced %q", want)
		}
	}
	t.Logf("outcomes: %v", seen)
}

func FuzzInvariants(f *testing.F) {
	f.Add(uint64(1), uint16(200))
	f.Add(uint64(42), uint16(1000))
	f.Fuzz(func(t *testing.T, seed uint64, steps uint16) {
		checkRandom(t, seed, int(steps%2000), tally{})
	})
}

func BenchmarkTransfer(b *testing.B) {
	s := ledger.NewState()
	setup := []ledger.Command{
		ledger.OpenWallet{Name: "w", Coin: money.BTC},
		ledger.OpenAccount{Name: "alice"},
		ledger.OpenAccount{Name: "bob"},
		ledger.ImportBalance{ID: "i", Account: "alice", Amount: btc(math.MaxInt64 / 2)},
	}
	for i := range 10_000 { // a wallet with many accounts
		setup = append(setup, ledger.OpenAccount{Name: fmt.Sprintf("user-%d", i)})
	}
	for _, c := range setup {
		if _, err := ledger.Execute(s, c); err != nil {
			b.Fatal(err)
		}
	}
	c := ledger.Transfer{ID: "t", From: "alice", To: "bob", Amount: btc(1)}
	b.ReportAllocs()
	for b.Loop() {
		events, err := ledger.Decide(s, c)
		if err != nil {
			b.Fatal(err)
		}
		ledger.Evolve(s, events[0])
	}
}
