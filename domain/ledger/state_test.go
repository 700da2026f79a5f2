package ledger_test

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// examples holds one event of every type with every field set.
func examples() []ledger.Event {
	k := key("key-1", "hash-1")
	placed := holdPlaced("h-1", "alice", 10, t0.Add(time.Hour))
	placed.Reason, placed.Idempotency = "review", k
	tr := transferred("t-1", "alice", "bob", 5)
	tr.Memo, tr.Idempotency = "rent", k
	imp := imported("i-1", "alice", 100)
	imp.Reason, imp.Idempotency = "opening", k
	return []ledger.Event{
		ledger.WalletOpened{Wallet: "main", Coin: "BTC", Exponent: 8, Permissions: allPerms,
			IPAllowlist: []string{"10.0.0.0/8"}, Confirmations: 3, Idempotency: k},
		ledger.AccountOpened{Account: "alice", Idempotency: k},
		tr, imp, placed,
		ledger.HoldReleased{ID: "h-1", Account: "alice", Amount: 10, Reason: "ok", Postings: heldBack("alice", 10), Idempotency: k},
		ledger.HoldExpired{ID: "h-1", Account: "alice", Amount: 10, ExpiresAt: t0, Postings: heldBack("alice", 10), Idempotency: k},
		ledger.WalletLocked{Reason: "audit", Idempotency: k},
		ledger.WalletUnlocked{Reason: "done", Idempotency: k},
		ledger.CommandRefused{Command: "transfer", ID: "t-1", Reason: "insufficient_funds", Idempotency: k},
		ledger.AddressAssigned{Account: "alice", Address: addrA, Idempotency: k},
		withKeyEvent(depositSeen(txA, 1, addrA, "alice", 500, 1, blk1), k),
		withKeyEvent(depositConfirmed(txA, 1, "alice", 500, 6, blk1), k),
		ledger.DepositConfirmationsChanged{ID: ledger.DepositID(txA, 1), TxID: txA, Vout: 1, Account: "alice",
			Status: ledger.DepositStatusConfirmed, Confirmations: 7, BlockHash: blk1, Idempotency: k},
		ledger.DepositReversed{ID: ledger.DepositID(txA, 1), TxID: txA, Vout: 1, Account: "alice", Amount: 500,
			Reason: ledger.ReasonReorg, Bucket: ledger.Available, Shortfall: 200, Idempotency: k, Postings: []ledger.Posting{
				{Account: "alice", Bucket: ledger.Available, Amount: -300}, {Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: 300}}},
		ledger.WithdrawalRequested{ID: "w-1", Account: "alice", Address: addrOut, Amount: 40, SubtractFee: true,
			Postings: withdrawalHold("alice", 40), Idempotency: k},
		ledger.WithdrawalBroadcastStarted{ID: "w-1", Account: "alice", Idempotency: k},
		ledger.WithdrawalBroadcastAborted{ID: "w-1", Account: "alice", Reason: "node down", Idempotency: k},
		ledger.WithdrawalBroadcast{ID: "w-1", Account: "alice", Address: addrOut, Amount: 40, TxID: txB, Fee: 3,
			SubtractFee: true, FeeShortfall: 1, Idempotency: k, Postings: []ledger.Posting{
				{Account: "alice", Bucket: ledger.Held, Amount: -40}, {Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: 37},
				{Account: ledger.FeeAccount, Bucket: ledger.Available, Amount: 3}}},
		ledger.WithdrawalUnknown{ID: "w-1", Account: "alice", Amount: 40, Reason: "timeout", Idempotency: k},
		ledger.WithdrawalFailed{ID: "w-1", Account: "alice", Amount: 40, Reason: "rejected", Postings: heldBack("alice", 40), Idempotency: k},
		ledger.WithdrawalConfirmed{ID: "w-1", Account: "alice", TxID: txB, Confirmations: 6, Idempotency: k},
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func TestEventsJSON(t *testing.T) {
	types := map[string]bool{}
	for _, e := range ledger.Events() {
		name := e.EventType()
		if !strings.HasPrefix(name, "ledger.") || !snake.MatchString(strings.TrimPrefix(name, "ledger.")) || types[name] {
			t.Errorf("bad or duplicate event type %q", name)
		}
		types[name] = true
	}
	for _, e := range examples() {
		t.Run(e.EventType(), func(t *testing.T) {
			if !types[e.EventType()] {
				t.Fatalf("%T missing from Events()", e)
			}
			delete(types, e.EventType())
			data, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			if err := json.Unmarshal(data, &fields); err != nil {
				t.Fatal(err)
			}
			for k := range fields {
				if !snake.MatchString(k) {
					t.Errorf("field %q is not snake_case in %s", k, data)
				}
			}
			if fields["idempotency_key"] != "key-1" || fields["request_hash"] != "hash-1" {
				t.Errorf("idempotency not inlined: %s", data)
			}
			// Decode as a codec does: into a new value of the same type.
			ptr := reflect.New(reflect.TypeOf(e))
			if err := json.Unmarshal(data, ptr.Interface()); err != nil {
				t.Fatal(err)
			}
			if got := ptr.Elem().Interface(); !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip\n got %#v\nwant %#v", got, e)
			}
		})
	}
	if len(types) != 0 {
		t.Errorf("no example for %v", types)
	}
}

func TestEventJSONShape(t *testing.T) {
	data, err := json.Marshal(transferred("t-1", "alice", "bob", 150000))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"t-1","from":"alice","to":"bob","amount":150000,"postings":[{"account":"alice","bucket":"available","amount":-150000},{"account":"bob","bucket":"available","amount":150000}]}`
	if string(data) != want {
		t.Fatalf("got  %s\nwant %s", data, want)
	}
	data, _ = json.Marshal(holdPlaced("h", "alice", 1, time.Time{}))
	if strings.Contains(string(data), "expires_at") {
		t.Fatalf("zero expires_at not omitted: %s", data)
	}
}

func TestPostingsOf(t *testing.T) {
	for _, e := range examples() {
		ps := ledger.PostingsOf(e)
		var sum int64
		for _, p := range ps {
			sum += p.Amount
		}
		if sum != 0 {
			t.Errorf("%s: postings sum to %d", e.EventType(), sum)
		}
		switch e.(type) {
		case ledger.FundsTransferred, ledger.BalanceImported, ledger.HoldPlaced, ledger.HoldReleased, ledger.HoldExpired,
			ledger.DepositSeen, ledger.DepositConfirmed, ledger.DepositReversed,
			ledger.WithdrawalRequested, ledger.WithdrawalBroadcast, ledger.WithdrawalFailed:
			if len(ps) == 0 {
				t.Errorf("%s: no postings", e.EventType())
			}
		default:
			if ps != nil {
				t.Errorf("%s: postings %v", e.EventType(), ps)
			}
		}
	}
}

func TestQueries(t *testing.T) {
	s := ledger.NewState()
	if s.Opened() || s.Version() != 0 {
		t.Fatal("new state opened")
	}
	for _, e := range funded(
		ledger.AccountOpened{Account: "aaron"},
		holdPlaced("h-2", "alice", 20, t0.Add(2*time.Hour)),
		holdPlaced("h-1", "alice", 10, t0.Add(time.Hour)),
		holdPlaced("h-3", "alice", 30, time.Time{}),
		transferred("t-1", "alice", "bob", 40),
		locked,
	) {
		ledger.Evolve(s, e)
	}
	w := s.Wallet()
	if !s.Opened() || w.Name != "main" || w.Coin != money.BTC || s.Coin() != money.BTC || !w.Locked || !s.Locked() || w.Confirmations != 6 {
		t.Fatalf("wallet %+v", w)
	}
	if !w.Allows(ledger.PermTransfer) {
		t.Error("Allows(transfer) false")
	}
	w.Permissions[0] = "changed"
	if s.Wallet().Permissions[0] == "changed" {
		t.Error("Wallet() shares its slices with the state")
	}
	if got := s.Accounts(); !reflect.DeepEqual(got, []string{"aaron", "alice", "bob"}) {
		t.Errorf("Accounts() = %v", got)
	}
	if b, ok := s.Balance("alice"); !ok || b != (ledger.Balance{Available: 100_000_000 - 60 - 40, Held: 60}) || b.Total() != 100_000_000-40 {
		t.Errorf("alice %+v %v", b, ok)
	}
	if b, ok := s.Balance(ledger.ImportAccount); !ok || b.Available != -100_000_000 {
		t.Errorf("@import %+v %v", b, ok)
	}
	for _, name := range ledger.SystemAccounts() {
		if _, ok := s.Balance(name); !ok || !ledger.IsSystemAccount(name) {
			t.Errorf("system account %s missing", name)
		}
	}
	if _, ok := s.Balance("carol"); ok {
		t.Error("carol exists")
	}
	if h, ok := s.Hold("h-1"); !ok || h.Amount != 10 || h.Account != "alice" {
		t.Errorf("Hold(h-1) = %+v %v", h, ok)
	}
	ids := func(hs []ledger.Hold) (out []string) {
		for _, h := range hs {
			out = append(out, h.ID)
		}
		return out
	}
	if got := ids(s.Holds()); !reflect.DeepEqual(got, []string{"h-1", "h-2", "h-3"}) {
		t.Errorf("Holds() = %v", got)
	}
	if got := ids(s.ExpiredHolds(t0.Add(time.Hour))); !reflect.DeepEqual(got, []string{"h-1"}) {
		t.Errorf("ExpiredHolds(+1h) = %v", got)
	}
	if got := ids(s.ExpiredHolds(t0.Add(3 * time.Hour))); !reflect.DeepEqual(got, []string{"h-1", "h-2"}) {
		t.Errorf("ExpiredHolds(+3h) = %v", got)
	}
	if got := s.ExpiredHolds(t0); len(got) != 0 {
		t.Errorf("ExpiredHolds(t0) = %v", got)
	}
	if err := s.Verify(); err != nil {
		t.Fatal(err)
	}
}

func TestClone(t *testing.T) {
	s := ledger.NewState()
	for _, e := range funded(holdPlaced("h-1", "alice", 10, time.Time{}), holdPlaced("h-2", "alice", 10, t0)) {
		ledger.Evolve(s, e)
	}
	c := s.Clone()
	if !reflect.DeepEqual(s, c) {
		t.Fatal("clone differs")
	}
	ledger.Evolve(c, transferred("t-1", "alice", "bob", 5))
	ledger.Evolve(c, ledger.HoldReleased{ID: "h-1", Account: "alice", Amount: 10, Postings: heldBack("alice", 10)})
	ledger.Evolve(c, ledger.HoldExpired{ID: "h-2", Account: "alice", Amount: 10, ExpiresAt: t0, Postings: heldBack("alice", 10)})
	ledger.Evolve(c, locked)
	if b, _ := s.Balance("alice"); b.Available != 100_000_000-20 || b.Held != 20 {
		t.Errorf("original changed: %+v", b)
	}
	if _, ok := s.Hold("h-1"); !ok || s.Locked() || s.Version() != 6 || len(s.ExpiredHolds(t0)) != 1 {
		t.Error("original changed")
	}
	if err := s.Verify(); err != nil {
		t.Errorf("original: %v", err)
	}
	if err := c.Verify(); err != nil {
		t.Errorf("clone: %v", err)
	}
}

func TestVerifyFindsViolations(t *testing.T) {
	cases := map[string]ledger.Event{
		"unbalanced": ledger.FundsTransferred{ID: "x", Postings: []ledger.Posting{{Account: "bob", Bucket: ledger.Available, Amount: 1}}},
		"negative user balance": ledger.FundsTransferred{ID: "x", Postings: []ledger.Posting{
			{Account: "bob", Bucket: ledger.Available, Amount: -1}, {Account: "alice", Bucket: ledger.Available, Amount: 1}}},
		"held without a hold": ledger.BalanceImported{ID: "x", Postings: []ledger.Posting{
			{Account: "alice", Bucket: ledger.Available, Amount: -1}, {Account: "alice", Bucket: ledger.Held, Amount: 1}}},
		"hold without held funds": ledger.HoldPlaced{ID: "x", Account: "alice", Amount: 5},
		"pending without a deposit": ledger.BalanceImported{ID: "x", Postings: []ledger.Posting{
			{Account: "alice", Bucket: ledger.Available, Amount: -1}, {Account: "alice", Bucket: ledger.Pending, Amount: 1}}},
		"deposit without pending funds": ledger.DepositSeen{ID: "x", TxID: "x", Account: "alice", Amount: 5},
		"withdrawal without held funds": ledger.WithdrawalRequested{ID: "x", Account: "alice", Amount: 5},
		"address of an unknown account": ledger.AddressAssigned{Account: "carol", Address: "a"},
		"debt of a system account":      ledger.DepositReversed{ID: "x", Account: ledger.ChainAccount, Shortfall: 5},
		"withdrawal of an unknown account": ledger.WithdrawalRequested{ID: "x", Account: "carol", Amount: 5, Postings: []ledger.Posting{
			{Account: "alice", Bucket: ledger.Available, Amount: -5}, {Account: "alice", Bucket: ledger.Held, Amount: 5}}},
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			s := ledger.NewState()
			for _, e := range funded() {
				ledger.Evolve(s, e)
			}
			if err := s.Verify(); err != nil {
				t.Fatal(err)
			}
			if err := ledger.Evolve(s, bad).Verify(); err == nil {
				t.Fatal("Verify found nothing")
			}
		})
	}
}

func TestEvolveNil(t *testing.T) {
	s := ledger.Evolve(nil, opened)
	if s == nil || !s.Opened() || s.Version() != 1 {
		t.Fatal("Evolve(nil, …) did not start a state")
	}
	if _, err := ledger.Decide(nil, ledger.OpenWallet{Name: "w", Coin: money.BTC}); err != nil {
		t.Fatalf("Decide(nil, open): %v", err)
	}
	if _, err := ledger.Execute(nil, ledger.OpenWallet{Name: "w", Coin: money.BTC}); err == nil {
		t.Fatal("Execute(nil, …) succeeded")
	}
}

// TestFoldForgetsKeysOnly: a NewFold state folds every event as NewState
// does (balances, holds, Verify) but remembers no idempotency key, stays a
// fold when cloned, and Decide refuses it.
func TestFoldForgetsKeysOnly(t *testing.T) {
	full, fold := ledger.NewState(), ledger.NewFold()
	for _, c := range []ledger.Command{
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Idempotency: key("k-1", "h-1")},
		ledger.OpenAccount{Name: "alice", Idempotency: key("k-2", "h-2")},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: btc(100), Idempotency: key("k-3", "h-3")},
		ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(10), Idempotency: key("k-4", "h-4")},
	} {
		events, err := ledger.Execute(full, c)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			ledger.Evolve(fold, e)
		}
	}
	if full.IdempotencyKeys() != 4 || fold.IdempotencyKeys() != 0 {
		t.Errorf("keys: state %d, fold %d; want 4, 0", full.IdempotencyKeys(), fold.IdempotencyKeys())
	}
	b, _ := fold.Balance("alice")
	if want, _ := full.Balance("alice"); b != want || !reflect.DeepEqual(fold.Holds(), full.Holds()) || fold.Version() != full.Version() {
		t.Errorf("fold: alice %+v, holds %v, version %d; state: %+v, %v, %d", b, fold.Holds(), fold.Version(), want, full.Holds(), full.Version())
	}
	if err := fold.Verify(); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for _, s := range []*ledger.State{fold, fold.Clone()} {
		if _, err := ledger.Decide(s, ledger.OpenAccount{Name: "bob"}); err == nil {
			t.Errorf("Decide on a fold: no error")
		}
	}
}
