package ledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// commandGen draws random commands, valid and invalid, over a small world
// so that they often collide (same accounts, hold ids, keys, addresses,
// deposits and withdrawals).
type commandGen struct {
	r           *rand.Rand
	s           *ledger.State
	now         time.Time
	next        int
	holds       []string          // hold ids ever placed
	withdrawals []string          // withdrawal ids ever requested
	wtx         map[string]string // withdrawal id → the txid it is broadcast with
	outputs     map[string]output // what the chain says about each txid:vout
}

// output is the chain's view of one output paying the wallet.
type output struct {
	txid    string
	vout    uint32
	address string
	units   int64
	conf    int
	block   string
}

// The chain world: few transactions, outputs, blocks and addresses, so
// that observations repeat and collide.
const (
	genTxs   = 5
	genVouts = 2
)

func genTxID(i int) string  { return fmt.Sprintf("%064x", 0x7a000+i) }
func genBlock(i int) string { return fmt.Sprintf("%064x", 0xb10c00+i) }
func genAddress(i int) string {
	return fmt.Sprintf("addr-%d", i)
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

func (g *commandGen) withdrawalID() string {
	if len(g.withdrawals) > 0 && g.r.IntN(10) < 8 {
		return g.withdrawals[g.r.IntN(len(g.withdrawals))]
	}
	return g.id("w")
}

// address returns one of a few deposit addresses (addr-0..addr-5; the
// higher ones are rarely assigned) or, seldom, a malformed one.
func (g *commandGen) address() string {
	if g.r.IntN(40) == 0 {
		return "bad address"
	}
	return genAddress(g.r.IntN(6))
}

// observe returns the chain's next word on a random output: new outputs,
// more confirmations, reorgs back to the mempool or into another block,
// depths past the tracking depth, repeats, and now and then a report that
// contradicts the recorded amount or is malformed.
func (g *commandGen) observe() ledger.ObserveDeposit {
	txid, vout := genTxID(g.r.IntN(genTxs)), uint32(g.r.IntN(genVouts))
	id := ledger.DepositID(txid, vout)
	o, ok := g.outputs[id]
	if !ok {
		o = output{txid: txid, vout: vout, address: g.address(), units: 1 + g.r.Int64N(2_000_000)}
		if g.r.IntN(2) == 0 {
			o.conf = g.r.IntN(8)
		}
	} else {
		switch g.r.IntN(12) {
		case 0, 1, 2, 3, 4:
			o.conf += g.r.IntN(4)
		case 5: // reorged back into the mempool
			o.conf = 0
		case 6: // re-mined in another block
			o.conf = 1 + g.r.IntN(3)
			o.block = genBlock(g.r.IntN(4))
		case 7:
			o.conf = 95 + g.r.IntN(30)
		case 8, 9: // a repeat
		case 10: // contradicts the record (not kept)
			bad := o
			bad.units++
			return g.observation(bad)
		default: // malformed (not kept)
			bad := o
			switch g.r.IntN(3) {
			case 0:
				bad.conf = -1
			case 1:
				bad.txid = strings.ToUpper(bad.txid)
			default:
				bad.block = "nope"
				bad.conf = 1
			}
			return g.observation(bad)
		}
	}
	switch {
	case o.conf == 0:
		o.block = ""
	case o.block == "":
		o.block = genBlock(g.r.IntN(4))
	}
	g.outputs[id] = o
	return g.observation(o)
}

func (g *commandGen) observation(o output) ledger.ObserveDeposit {
	return ledger.ObserveDeposit{TxID: o.txid, Vout: o.vout, Address: o.address, Amount: btc(o.units),
		Confirmations: o.conf, BlockHash: o.block}
}

func (g *commandGen) reverse() ledger.ReverseDeposit {
	c := ledger.ReverseDeposit{TxID: genTxID(g.r.IntN(genTxs)), Vout: uint32(g.r.IntN(genVouts)), Reason: ledger.ReasonReorg}
	switch g.r.IntN(10) {
	case 0:
		c.Reason = "bogus"
	case 1, 2, 3, 4:
		c.Reason = ledger.ReasonDoubleSpend
	}
	return c
}

// fee returns a network fee for withdrawal id: often what the account can
// pay exactly or a little more (a shortfall), sometimes invalid.
func (g *commandGen) fee(id string) money.Amount {
	w, _ := g.s.Withdrawal(id)
	b, _ := g.s.Balance(w.Account)
	switch g.r.IntN(10) {
	case 0:
		return btc(0)
	case 1:
		return btc(-1)
	case 2:
		return btc(b.Available)
	case 3:
		return btc(b.Available + 1 + g.r.Int64N(500))
	case 4:
		return btc(w.Amount) // too much when it comes out of the amount
	}
	return btc(1 + g.r.Int64N(5000))
}

func (g *commandGen) broadcastTxID(id string) string {
	if tx, ok := g.wtx[id]; ok && g.r.IntN(10) < 8 {
		return tx
	}
	if g.r.IntN(20) == 0 {
		return "not-a-txid"
	}
	tx := fmt.Sprintf("%064x", 0xfee000+g.r.IntN(1000))
	g.wtx[id] = tx
	return tx
}

func (g *commandGen) holdID() string {
	if len(g.holds) > 0 && g.r.IntN(10) < 8 {
		return g.holds[g.r.IntN(len(g.holds))]
	}
	return g.id("h")
}

func (g *commandGen) command() ledger.Command {
	var c ledger.Command
	switch g.r.IntN(36) {
	case 0:
		c = ledger.OpenWallet{Name: "w", Coin: money.BTC, Permissions: allPerms}
	case 1, 2:
		c = ledger.OpenAccount{Name: g.account()}
	case 3, 4, 5:
		a := g.account()
		c = ledger.ImportBalance{ID: g.id("i"), Account: a, Amount: g.amount(a)}
	case 6, 7, 8, 9, 10:
		from := g.account()
		tr := ledger.Transfer{ID: g.id("t"), From: from, To: g.account(), Amount: g.amount(from)}
		if g.r.IntN(2) == 0 {
			tr.Now = g.now
		}
		c = tr
	case 11, 12, 13:
		a := g.account()
		h := ledger.PlaceHold{ID: g.holdID(), Account: a, Amount: g.amount(a), Now: g.now}
		if g.r.IntN(2) == 0 {
			h.ExpiresAt = g.now.Add(time.Duration(g.r.IntN(120)-10) * time.Minute)
		}
		g.holds = append(g.holds, h.ID)
		c = h
	case 14, 15:
		r := ledger.ReleaseHold{ID: g.holdID()}
		if g.r.IntN(2) == 0 {
			r.Now = g.now
		}
		c = r
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
	case 19:
		c = ledger.UnlockWallet{Reason: "again"}
	case 20, 21:
		c = ledger.AssignAddress{Account: g.account(), Address: g.address()}
	case 22, 23, 24, 25, 26:
		c = g.observe()
	case 27, 28:
		c = g.reverse()
	case 29, 30:
		a := g.account()
		addr := "out-1"
		if g.r.IntN(30) == 0 {
			addr = ""
		}
		w := ledger.RequestWithdrawal{ID: g.withdrawalID(), Account: a, Address: addr, Amount: g.amount(a), SubtractFee: g.r.IntN(3) == 0}
		if g.r.IntN(2) == 0 {
			w.Now = g.now
		}
		g.withdrawals = append(g.withdrawals, w.ID)
		c = w
	case 31:
		if g.r.IntN(4) == 0 {
			c = ledger.AbortBroadcast{ID: g.withdrawalID(), Reason: "node down"}
		} else {
			c = ledger.BeginBroadcast{ID: g.withdrawalID()}
		}
	case 32, 33:
		id := g.withdrawalID()
		c = ledger.RecordBroadcast{ID: id, TxID: g.broadcastTxID(id), Fee: g.fee(id)}
	case 34:
		if g.r.IntN(2) == 0 {
			c = ledger.MarkUnknown{ID: g.withdrawalID(), Reason: "timeout"}
		} else {
			c = ledger.FailWithdrawal{ID: g.withdrawalID(), Reason: "rejected"}
		}
	default:
		c = ledger.ConfirmWithdrawal{ID: g.withdrawalID(), Confirmations: g.r.IntN(7)}
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
	ledger.ErrAddressExists, ledger.ErrUnknownAddress, ledger.ErrDepositNotFound,
	ledger.ErrWithdrawalNotFound, ledger.ErrWithdrawalExists, ledger.ErrWithdrawalState,
}

// repeatable reports whether deciding c again right after it took effect
// must decide nothing: chain observations, reversals, address assignment,
// withdrawal transitions, locking, and any keyed command (a replay).
func repeatable(c ledger.Command) bool {
	if ledger.IdempotencyOf(c).Key != "" {
		return true
	}
	switch c.(type) {
	case ledger.AssignAddress, ledger.ObserveDeposit, ledger.ReverseDeposit,
		ledger.BeginBroadcast, ledger.AbortBroadcast, ledger.RecordBroadcast, ledger.MarkUnknown, ledger.FailWithdrawal, ledger.ConfirmWithdrawal,
		ledger.LockWallet, ledger.UnlockWallet:
		return true
	}
	return false
}

// checkChain checks the ledger against a model of the chain: what the
// wallet holds on chain (imported balances, plus deposits not reversed,
// minus what broadcast withdrawals paid out including their fees) equals
// the user accounts' totals minus their debts.
func checkChain(s *ledger.State) error {
	onChain, users := new(big.Int), new(big.Int)
	imp, _ := s.Balance(ledger.ImportAccount)
	onChain.Neg(big.NewInt(imp.Available))
	for tx := range genTxs {
		for vout := range uint32(genVouts) {
			if d, ok := s.Deposit(genTxID(tx), vout); ok && d.Status != ledger.DepositStatusReversed {
				onChain.Add(onChain, big.NewInt(d.Amount))
			}
		}
	}
	for _, st := range []ledger.WithdrawalStatus{ledger.WithdrawalStatusBroadcast, ledger.WithdrawalStatusConfirmed} {
		for _, w := range s.WithdrawalsByStatus(st) {
			onChain.Sub(onChain, big.NewInt(w.Amount))
			if !w.SubtractFee {
				onChain.Sub(onChain, big.NewInt(w.Fee))
			}
		}
	}
	for _, a := range s.Accounts() {
		b, _ := s.Balance(a)
		users.Add(users, big.NewInt(b.Available))
		users.Add(users, big.NewInt(b.Pending))
		users.Add(users, big.NewInt(b.Held))
		users.Sub(users, big.NewInt(s.Debt(a)))
	}
	if onChain.Cmp(users) != 0 {
		return fmt.Errorf("on chain %s, user balances less debts %s", onChain, users)
	}
	return nil
}

// tallyEvent counts the notable cases of e, so the test can insist the
// generator reached them.
func tallyEvent(s *ledger.State, e ledger.Event, seen tally) {
	seen[e.EventType()]++
	switch e := e.(type) {
	case ledger.DepositSeen:
		if d, ok := s.Deposit(e.TxID, e.Vout); ok && d.Status == ledger.DepositStatusReversed {
			seen["deposit seen again"]++
		}
	case ledger.DepositReversed:
		if e.Shortfall > 0 {
			seen["deposit shortfall"]++
		}
		if e.Bucket == ledger.Available {
			seen["confirmed deposit reversed"]++
		}
	case ledger.WithdrawalBroadcast:
		if e.FeeShortfall > 0 {
			seen["fee shortfall"]++
		}
		if e.SubtractFee {
			seen["fee out of the amount"]++
		}
	}
}

type tally map[string]int

// checkRandom applies steps random commands from seed, checking the ledger
// invariants after every event, that failed commands leave the state
// untouched, and finally that the events, encoded and decoded, rebuild
// the same state. It returns the events decided.
func checkRandom(t *testing.T, seed uint64, steps int, seen tally) []ledger.Event {
	t.Helper()
	g := &commandGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), s: ledger.NewState(), now: t0,
		wtx: map[string]string{}, outputs: map[string]output{}}
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
			// A keyed refusal is recorded and then answers every replay.
			if ev, ok := ledger.Refusal(c, err); ok {
				seen["refusal recorded"]++
				tallyEvent(s, ev, seen)
				ledger.Evolve(s, ev)
				log = append(log, ev)
				if err := s.Verify(); err != nil {
					t.Fatalf("seed %d step %d: after %+v: %v", seed, i, ev, err)
				}
				again, err2 := ledger.Decide(s, c)
				var re *ledger.RefusedError
				if again != nil || !errors.As(err2, &re) || re.Reason != ev.Reason || errors.Unwrap(err2) == nil {
					t.Fatalf("seed %d step %d: %T refused with %v, replay decided %v, %v", seed, i, c, err, again, err2)
				}
				for _, o := range outcomes {
					if errors.Is(err, o) != errors.Is(err2, o) {
						t.Fatalf("seed %d step %d: refusal %v replayed as %v", seed, i, err, err2)
					}
				}
			}
			continue
		}
		if len(events) == 0 {
			seen["no events"]++
		}
		if len(events) > 1 {
			if _, ok := events[0].(ledger.HoldExpired); ok {
				seen["hold expired by a spending command"]++
			}
		}
		for _, e := range events {
			var sum int64
			for _, p := range ledger.PostingsOf(e) {
				sum += p.Amount
			}
			if sum != 0 {
				t.Fatalf("seed %d step %d: %s postings sum to %d", seed, i, e.EventType(), sum)
			}
			tallyEvent(s, e, seen)
			ledger.Evolve(s, e)
			log = append(log, e)
			if err := s.Verify(); err != nil {
				t.Fatalf("seed %d step %d: after %s %+v: %v", seed, i, e.EventType(), e, err)
			}
			if err := checkChain(s); err != nil {
				t.Fatalf("seed %d step %d: after %s %+v: %v", seed, i, e.EventType(), e, err)
			}
		}
		if len(events) > 0 && repeatable(c) {
			again, err := ledger.Decide(s, c)
			if err != nil || len(again) != 0 {
				t.Fatalf("seed %d step %d: %T repeated decided %v, %v; want nothing", seed, i, c, again, err)
			}
			seen["repeat decided nothing"]++
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
	return log
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
		ledger.TypeAddressAssigned, ledger.TypeDepositSeen, ledger.TypeDepositConfirmed,
		ledger.TypeDepositConfirmationsChanged, ledger.TypeDepositReversed,
		ledger.TypeWithdrawalRequested, ledger.TypeWithdrawalBroadcastStarted, ledger.TypeWithdrawalBroadcast,
		ledger.TypeWithdrawalUnknown, ledger.TypeWithdrawalFailed, ledger.TypeWithdrawalConfirmed,
		ledger.ErrAddressExists.Error(), ledger.ErrUnknownAddress.Error(), ledger.ErrDepositNotFound.Error(),
		ledger.ErrWithdrawalNotFound.Error(), ledger.ErrWithdrawalExists.Error(), ledger.ErrWithdrawalState.Error(),
		"deposit seen again", "deposit shortfall", "confirmed deposit reversed", "fee shortfall",
		"fee out of the amount", "repeat decided nothing",
		ledger.TypeCommandRefused, "refusal recorded", "hold expired by a spending command",
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

// TestSnapshotPlusTailEqualsFullFold: for random command sequences, the
// state restored from a snapshot taken at any point, with the rest of the
// events folded into it, equals the state folded from the first event.
func TestSnapshotPlusTailEqualsFullFold(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for seed := range uint64(seeds) {
		log := roundTrip(t, checkRandom(t, 1000+seed, 400, tally{}))
		full := ledger.NewState()
		for _, e := range log {
			ledger.Evolve(full, e)
		}
		r := rand.New(rand.NewPCG(seed, 7))
		cuts := []int{0, len(log)}
		for range 4 {
			cuts = append(cuts, r.IntN(len(log)+1))
		}
		for _, cut := range cuts {
			head := ledger.NewState()
			for _, e := range log[:cut] {
				ledger.Evolve(head, e)
			}
			data, err := ledger.EncodeSnapshot(head)
			if err != nil {
				t.Fatalf("seed %d cut %d: %v", seed, cut, err)
			}
			restored, err := ledger.DecodeSnapshot(data)
			if err != nil {
				t.Fatalf("seed %d cut %d: %v", seed, cut, err)
			}
			if !reflect.DeepEqual(restored, head) {
				t.Fatalf("seed %d cut %d: restored state differs from the encoded one", seed, cut)
			}
			for _, e := range log[cut:] {
				ledger.Evolve(restored, e)
			}
			if !reflect.DeepEqual(restored, full) {
				t.Fatalf("seed %d cut %d of %d: snapshot plus tail differs from the full fold", seed, cut, len(log))
			}
		}
	}
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
