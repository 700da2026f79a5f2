package ledger_test

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// Test vocabulary: a BTC wallet "main" with accounts alice and bob.

var (
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	allPerms = ledger.AllPermissions()
)

func btc(units int64) money.Amount { return money.New(money.BTC, units) }

func key(k, hash string) ledger.Idempotency { return ledger.Idempotency{Key: k, RequestHash: hash} }

var (
	opened = ledger.WalletOpened{Wallet: "main", Coin: "BTC", Exponent: 8, Permissions: allPerms, Confirmations: 6}
	alice  = ledger.AccountOpened{Account: "alice"}
	bob    = ledger.AccountOpened{Account: "bob"}
	locked = ledger.WalletLocked{Reason: "audit"}
)

func imported(id, account string, units int64) ledger.BalanceImported {
	return ledger.BalanceImported{ID: id, Account: account, Amount: units, Postings: []ledger.Posting{
		{Account: ledger.ImportAccount, Bucket: ledger.Available, Amount: -units},
		{Account: account, Bucket: ledger.Available, Amount: units},
	}}
}

func transferred(id, from, to string, units int64) ledger.FundsTransferred {
	return ledger.FundsTransferred{ID: id, From: from, To: to, Amount: units, Postings: []ledger.Posting{
		{Account: from, Bucket: ledger.Available, Amount: -units},
		{Account: to, Bucket: ledger.Available, Amount: units},
	}}
}

func holdPlaced(id, account string, units int64, expires time.Time) ledger.HoldPlaced {
	return ledger.HoldPlaced{ID: id, Account: account, Amount: units, ExpiresAt: expires, Postings: []ledger.Posting{
		{Account: account, Bucket: ledger.Available, Amount: -units},
		{Account: account, Bucket: ledger.Held, Amount: units},
	}}
}

func heldBack(account string, units int64) []ledger.Posting {
	return []ledger.Posting{
		{Account: account, Bucket: ledger.Held, Amount: -units},
		{Account: account, Bucket: ledger.Available, Amount: units},
	}
}

// funded: wallet, alice with 1.00000000 BTC, bob empty.
func funded(more ...ledger.Event) []ledger.Event {
	return append([]ledger.Event{opened, alice, bob, imported("i-1", "alice", 100_000_000)}, more...)
}

type scenario struct {
	name  string
	given []ledger.Event
	when  ledger.Command
	then  []ledger.Event // nil with err == nil: no events
	err   []error        // every one must match with errors.Is
}

func run(t *testing.T, scenarios []scenario) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := ledger.NewState()
			for _, e := range sc.given {
				ledger.Evolve(s, e)
			}
			if err := s.Verify(); err != nil {
				t.Fatalf("given events break invariants: %v", err)
			}
			before := s.Clone()
			got, err := ledger.Decide(s, sc.when)
			if !reflect.DeepEqual(s, before) {
				t.Fatalf("Decide changed the state")
			}
			if len(sc.err) > 0 {
				for _, want := range sc.err {
					if !errors.Is(err, want) {
						t.Fatalf("error = %v; want %v", err, want)
					}
				}
				if got != nil {
					t.Fatalf("events %#v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, sc.then) {
				t.Fatalf("events\n got %#v\nwant %#v", got, sc.then)
			}
			for _, e := range got {
				ledger.Evolve(s, e)
			}
			if err := s.Verify(); err != nil {
				t.Fatalf("invariants after the events: %v", err)
			}
		})
	}
}

func TestOpenWallet(t *testing.T) {
	doge := money.DOGE
	run(t, []scenario{
		{
			name: "opens",
			when: ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: allPerms, Confirmations: 6},
			then: []ledger.Event{opened},
		},
		{
			name: "normalises permissions, allowlist and confirmations",
			when: ledger.OpenWallet{
				Name: "dogs_1", Coin: doge,
				Permissions: []ledger.Permission{"transfer", "read", "transfer"},
				IPAllowlist: []string{"10.1.2.3/8", "127.0.0.1", "10.0.0.0/8", "2001:db8::1/32"},
				Idempotency: key("k1", "h1"),
			},
			then: []ledger.Event{ledger.WalletOpened{
				Wallet: "dogs_1", Coin: "DOGE", Exponent: 8,
				Permissions:   []ledger.Permission{ledger.PermRead, ledger.PermTransfer},
				IPAllowlist:   []string{"10.0.0.0/8", "127.0.0.1", "2001:db8::/32"},
				Confirmations: ledger.DefaultConfirmations,
				Idempotency:   key("k1", "h1"),
			}},
		},
		{name: "exists", given: []ledger.Event{opened}, when: ledger.OpenWallet{Name: "main", Coin: money.BTC}, err: []error{ledger.ErrWalletExists}},
		{name: "empty name", when: ledger.OpenWallet{Coin: money.BTC}, err: []error{ledger.ErrValidation}},
		{name: "name with slash", when: ledger.OpenWallet{Name: "a/b", Coin: money.BTC}, err: []error{ledger.ErrValidation}},
		{name: "name starting with dash", when: ledger.OpenWallet{Name: "-a", Coin: money.BTC}, err: []error{ledger.ErrValidation}},
		{name: "no coin", when: ledger.OpenWallet{Name: "main"}, err: []error{ledger.ErrValidation}},
		{name: "unknown permission", when: ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: []ledger.Permission{"fly"}}, err: []error{ledger.ErrValidation}},
		{name: "bad allowlist entry", when: ledger.OpenWallet{Name: "main", Coin: money.BTC, IPAllowlist: []string{"10.0.0.0/33"}}, err: []error{ledger.ErrValidation}},
		{name: "hostname in allowlist", when: ledger.OpenWallet{Name: "main", Coin: money.BTC, IPAllowlist: []string{"localhost"}}, err: []error{ledger.ErrValidation}},
		{name: "negative confirmations", when: ledger.OpenWallet{Name: "main", Coin: money.BTC, Confirmations: -1}, err: []error{ledger.ErrValidation}},
		{name: "too many confirmations", when: ledger.OpenWallet{Name: "main", Coin: money.BTC, Confirmations: 1001}, err: []error{ledger.ErrValidation}},
	})
}

func TestOpenAccount(t *testing.T) {
	run(t, []scenario{
		{name: "opens", given: []ledger.Event{opened}, when: ledger.OpenAccount{Name: "alice"}, then: []ledger.Event{alice}},
		{name: "while locked", given: []ledger.Event{opened, locked}, when: ledger.OpenAccount{Name: "alice"}, then: []ledger.Event{alice}},
		{name: "no wallet", when: ledger.OpenAccount{Name: "alice"}, err: []error{ledger.ErrWalletNotFound}},
		{name: "exists", given: []ledger.Event{opened, alice}, when: ledger.OpenAccount{Name: "alice"}, err: []error{ledger.ErrAccountExists}},
		{name: "system name", given: []ledger.Event{opened}, when: ledger.OpenAccount{Name: ledger.ImportAccount}, err: []error{ledger.ErrValidation}},
		{name: "other @ name", given: []ledger.Event{opened}, when: ledger.OpenAccount{Name: "@mine"}, err: []error{ledger.ErrValidation}},
		{name: "empty name", given: []ledger.Event{opened}, when: ledger.OpenAccount{}, err: []error{ledger.ErrValidation}},
		{name: "space in name", given: []ledger.Event{opened}, when: ledger.OpenAccount{Name: "al ice"}, err: []error{ledger.ErrValidation}},
	})
}

func TestTransfer(t *testing.T) {
	tr := func(id, from, to string, units int64) ledger.Transfer {
		return ledger.Transfer{ID: id, From: from, To: to, Amount: btc(units)}
	}
	withMemo := transferred("t-1", "alice", "bob", 150000)
	withMemo.Memo = "rent"
	withMemo.Idempotency = key("k", "h")
	run(t, []scenario{
		{name: "moves available funds", given: funded(), when: tr("t-1", "alice", "bob", 150000), then: []ledger.Event{transferred("t-1", "alice", "bob", 150000)}},
		{
			name:  "memo and idempotency recorded",
			given: funded(),
			when:  ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(150000), Memo: "rent", Idempotency: key("k", "h")},
			then:  []ledger.Event{withMemo},
		},
		{name: "whole balance", given: funded(), when: tr("t-1", "alice", "bob", 100_000_000), then: []ledger.Event{transferred("t-1", "alice", "bob", 100_000_000)}},
		{name: "one satoshi too many", given: funded(), when: tr("t-1", "alice", "bob", 100_000_001), err: []error{ledger.ErrInsufficientFunds}},
		{name: "empty account", given: funded(), when: tr("t-1", "bob", "alice", 1), err: []error{ledger.ErrInsufficientFunds}},
		{
			name:  "held funds are not spendable",
			given: funded(holdPlaced("h-1", "alice", 60_000_000, time.Time{})),
			when:  tr("t-1", "alice", "bob", 50_000_000),
			err:   []error{ledger.ErrInsufficientFunds},
		},
		{name: "same account", given: funded(), when: tr("t-1", "alice", "alice", 1), err: []error{ledger.ErrValidation}},
		{name: "unknown from", given: funded(), when: tr("t-1", "carol", "bob", 1), err: []error{ledger.ErrAccountNotFound}},
		{name: "unknown to", given: funded(), when: tr("t-1", "alice", "carol", 1), err: []error{ledger.ErrAccountNotFound}},
		{name: "from a system account", given: funded(), when: tr("t-1", ledger.ImportAccount, "bob", 1), err: []error{ledger.ErrValidation}},
		{name: "to a system account", given: funded(), when: tr("t-1", "alice", ledger.FeeAccount, 1), err: []error{ledger.ErrValidation}},
		{name: "locked", given: funded(locked), when: tr("t-1", "alice", "bob", 1), err: []error{ledger.ErrWalletLocked}},
		{name: "unlocked again", given: funded(locked, ledger.WalletUnlocked{}), when: tr("t-1", "alice", "bob", 1), then: []ledger.Event{transferred("t-1", "alice", "bob", 1)}},
		{name: "zero", given: funded(), when: tr("t-1", "alice", "bob", 0), err: []error{ledger.ErrValidation, money.ErrZero}},
		{name: "negative", given: funded(), when: tr("t-1", "alice", "bob", -5), err: []error{ledger.ErrValidation, money.ErrNegative}},
		{
			name:  "other coin",
			given: funded(),
			when:  ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: money.New(money.LTC, 1)},
			err:   []error{ledger.ErrValidation, money.ErrAssetMismatch},
		},
		{
			name:  "no coin",
			given: funded(),
			when:  ledger.Transfer{ID: "t-1", From: "alice", To: "bob"},
			err:   []error{ledger.ErrValidation, money.ErrAssetMismatch},
		},
		{name: "empty id", given: funded(), when: tr("", "alice", "bob", 1), err: []error{ledger.ErrValidation}},
		{name: "id with space", given: funded(), when: tr("t 1", "alice", "bob", 1), err: []error{ledger.ErrValidation}},
		{
			name:  "memo too long",
			given: funded(),
			when:  ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(1), Memo: string(make([]byte, 501))},
			err:   []error{ledger.ErrValidation},
		},
		{name: "no wallet", when: tr("t-1", "alice", "bob", 1), err: []error{ledger.ErrWalletNotFound}},
		{
			name:  "receiver would overflow",
			given: []ledger.Event{opened, alice, bob, imported("i-1", "bob", math.MaxInt64), imported("i-2", "alice", 1)},
			when:  tr("t-1", "alice", "bob", 1),
			err:   []error{ledger.ErrValidation, money.ErrOverflow},
		},
	})
}

func TestImportBalance(t *testing.T) {
	imp := func(id, account string, units int64) ledger.ImportBalance {
		return ledger.ImportBalance{ID: id, Account: account, Amount: btc(units)}
	}
	withReason := imported("i-9", "bob", 5)
	withReason.Reason = "from old system"
	run(t, []scenario{
		{name: "credits from @import", given: []ledger.Event{opened, alice}, when: imp("i-1", "alice", 100_000_000), then: []ledger.Event{imported("i-1", "alice", 100_000_000)}},
		{name: "reason", given: funded(), when: ledger.ImportBalance{ID: "i-9", Account: "bob", Amount: btc(5), Reason: "from old system"}, then: []ledger.Event{withReason}},
		{name: "allowed while locked", given: funded(locked), when: imp("i-2", "bob", 7), then: []ledger.Event{imported("i-2", "bob", 7)}},
		{name: "unknown account", given: funded(), when: imp("i-2", "carol", 7), err: []error{ledger.ErrAccountNotFound}},
		{name: "into a system account", given: funded(), when: imp("i-2", ledger.ChainAccount, 7), err: []error{ledger.ErrValidation}},
		{name: "zero", given: funded(), when: imp("i-2", "bob", 0), err: []error{ledger.ErrValidation, money.ErrZero}},
		{name: "empty id", given: funded(), when: imp("", "bob", 1), err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: imp("i-1", "alice", 1), err: []error{ledger.ErrWalletNotFound}},
		{
			name:  "@import would overflow",
			given: []ledger.Event{opened, alice, bob, imported("i-1", "alice", math.MaxInt64), imported("i-2", "bob", 1)},
			when:  imp("i-3", "bob", 1),
			err:   []error{ledger.ErrValidation, money.ErrOverflow},
		},
	})
}

func TestHolds(t *testing.T) {
	later := t0.Add(time.Hour)
	hold := func(id, account string, units int64) ledger.PlaceHold {
		return ledger.PlaceHold{ID: id, Account: account, Amount: btc(units)}
	}
	expiring := ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(10), Reason: "review",
		ExpiresAt: later.In(time.FixedZone("CET", 3600)), Now: t0}
	placedExpiring := holdPlaced("h-1", "alice", 10, later)
	placedExpiring.Reason = "review"
	released := ledger.HoldReleased{ID: "h-1", Account: "alice", Amount: 10, Reason: "ok", Postings: heldBack("alice", 10)}
	expired := ledger.HoldExpired{ID: "h-1", Account: "alice", Amount: 10, ExpiresAt: later, Postings: heldBack("alice", 10)}
	run(t, []scenario{
		{name: "place", given: funded(), when: hold("h-1", "alice", 10), then: []ledger.Event{holdPlaced("h-1", "alice", 10, time.Time{})}},
		{name: "place expiring, stored in UTC", given: funded(), when: expiring, then: []ledger.Event{placedExpiring}},
		{name: "whole balance", given: funded(), when: hold("h-1", "alice", 100_000_000), then: []ledger.Event{holdPlaced("h-1", "alice", 100_000_000, time.Time{})}},
		{name: "insufficient", given: funded(), when: hold("h-1", "alice", 100_000_001), err: []error{ledger.ErrInsufficientFunds}},
		{name: "held twice is insufficient", given: funded(holdPlaced("h-1", "alice", 60_000_000, time.Time{})), when: hold("h-2", "alice", 50_000_000), err: []error{ledger.ErrInsufficientFunds}},
		{name: "locked", given: funded(locked), when: hold("h-1", "alice", 10), err: []error{ledger.ErrWalletLocked}},
		{name: "active id", given: funded(holdPlaced("h-1", "alice", 10, time.Time{})), when: hold("h-1", "alice", 10), err: []error{ledger.ErrHoldExists}},
		{name: "unknown account", given: funded(), when: hold("h-1", "carol", 10), err: []error{ledger.ErrAccountNotFound}},
		{name: "system account", given: funded(), when: hold("h-1", ledger.ImportAccount, 10), err: []error{ledger.ErrValidation}},
		{name: "negative", given: funded(), when: hold("h-1", "alice", -10), err: []error{ledger.ErrValidation, money.ErrNegative}},
		{name: "expiry in the past", given: funded(), when: ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(1), ExpiresAt: t0, Now: later}, err: []error{ledger.ErrValidation}},
		{name: "expiry equal to now", given: funded(), when: ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(1), ExpiresAt: t0, Now: t0}, err: []error{ledger.ErrValidation}},
		{name: "expiry without now", given: funded(), when: ledger.PlaceHold{ID: "h-1", Account: "alice", Amount: btc(1), ExpiresAt: later}, err: []error{ledger.ErrValidation}},
		{name: "no wallet", when: hold("h-1", "alice", 1), err: []error{ledger.ErrWalletNotFound}},

		{name: "release", given: funded(placedExpiring), when: ledger.ReleaseHold{ID: "h-1", Reason: "ok"}, then: []ledger.Event{released}},
		{name: "release while locked", given: funded(placedExpiring, locked), when: ledger.ReleaseHold{ID: "h-1", Reason: "ok"}, then: []ledger.Event{released}},
		{name: "release unknown", given: funded(), when: ledger.ReleaseHold{ID: "h-1"}, err: []error{ledger.ErrHoldNotFound}},
		{name: "release twice", given: funded(placedExpiring, released), when: ledger.ReleaseHold{ID: "h-1"}, err: []error{ledger.ErrHoldNotFound}},
		{name: "release expired", given: funded(placedExpiring, expired), when: ledger.ReleaseHold{ID: "h-1"}, err: []error{ledger.ErrHoldNotFound}},
		{name: "id reusable after release", given: funded(placedExpiring, released), when: hold("h-1", "alice", 10), then: []ledger.Event{holdPlaced("h-1", "alice", 10, time.Time{})}},

		{name: "expire at expiry", given: funded(placedExpiring), when: ledger.ExpireHold{ID: "h-1", Now: later}, then: []ledger.Event{expired}},
		{name: "expire after expiry while locked", given: funded(placedExpiring, locked), when: ledger.ExpireHold{ID: "h-1", Now: later.Add(time.Minute)}, then: []ledger.Event{expired}},
		{name: "expire too early", given: funded(placedExpiring), when: ledger.ExpireHold{ID: "h-1", Now: later.Add(-time.Nanosecond)}, err: []error{ledger.ErrValidation}},
		{name: "expire a hold without expiry", given: funded(holdPlaced("h-1", "alice", 10, time.Time{})), when: ledger.ExpireHold{ID: "h-1", Now: later}, err: []error{ledger.ErrValidation}},
		{name: "expire unknown", given: funded(), when: ledger.ExpireHold{ID: "h-1", Now: later}, err: []error{ledger.ErrHoldNotFound}},
		{name: "expire without now", given: funded(placedExpiring), when: ledger.ExpireHold{ID: "h-1"}, err: []error{ledger.ErrValidation}},
	})
}

// TestHoldExpiry: a hold counts as released from its expiry on. Commands
// that carry the time expire due holds before spending, ExpireHold ends a
// hold once, and a due hold cannot be released any more.
func TestHoldExpiry(t *testing.T) {
	later := t0.Add(time.Hour)
	placed := holdPlaced("h-1", "alice", 100_000_000, later) // all of alice's funds
	expired := ledger.HoldExpired{ID: "h-1", Account: "alice", Amount: 100_000_000, ExpiresAt: later, Postings: heldBack("alice", 100_000_000)}
	other := holdPlaced("h-0", "bob", 5, later)
	tr := func(now time.Time) ledger.Transfer {
		return ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(30), Now: now}
	}
	withKey := tr(later)
	withKey.Idempotency = key("k", "h")
	keyed := transferred("t-1", "alice", "bob", 30)
	keyed.Idempotency = key("k", "h")
	run(t, []scenario{
		{name: "expire", given: funded(placed), when: ledger.ExpireHold{ID: "h-1", Now: later}, then: []ledger.Event{expired}},
		{name: "expire twice", given: funded(placed, expired), when: ledger.ExpireHold{ID: "h-1", Now: later}, err: []error{ledger.ErrHoldNotFound}},
		{name: "release after expire", given: funded(placed, expired), when: ledger.ReleaseHold{ID: "h-1", Now: later}, err: []error{ledger.ErrHoldNotFound}},
		{name: "release when due, before the expiry is recorded", given: funded(placed), when: ledger.ReleaseHold{ID: "h-1", Now: later}, err: []error{ledger.ErrHoldNotFound}},
		{name: "release before expiry", given: funded(placed), when: ledger.ReleaseHold{ID: "h-1", Now: later.Add(-time.Nanosecond)},
			then: []ledger.Event{ledger.HoldReleased{ID: "h-1", Account: "alice", Amount: 100_000_000, Postings: heldBack("alice", 100_000_000)}}},
		{name: "transfer spends the funds of an expired hold", given: funded(placed), when: tr(later),
			then: []ledger.Event{expired, transferred("t-1", "alice", "bob", 30)}},
		{name: "the transfer's key is on its own event", given: funded(placed), when: withKey, then: []ledger.Event{expired, keyed}},
		{name: "transfer after the recorded expiry", given: funded(placed, expired), when: tr(later), then: []ledger.Event{transferred("t-1", "alice", "bob", 30)}},
		{name: "transfer before expiry", given: funded(placed), when: tr(later.Add(-time.Nanosecond)), err: []error{ledger.ErrInsufficientFunds}},
		{name: "transfer without the time", given: funded(placed), when: tr(time.Time{}), err: []error{ledger.ErrInsufficientFunds}},
		{name: "only the payer's holds expire", given: funded(placed, imported("i-2", "bob", 5), other), when: tr(later),
			then: []ledger.Event{expired, transferred("t-1", "alice", "bob", 30)}},
		{name: "refused transfer expires nothing", given: funded(placed), when: ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(100_000_001), Now: later},
			err: []error{ledger.ErrInsufficientFunds}},
		{name: "hold placed with the funds of an expired hold", given: funded(placed),
			when: ledger.PlaceHold{ID: "h-2", Account: "alice", Amount: btc(30), Now: later},
			then: []ledger.Event{expired, holdPlaced("h-2", "alice", 30, time.Time{})}},
		{name: "withdrawal with the funds of an expired hold", given: funded(placed),
			when: ledger.RequestWithdrawal{ID: "w-1", Account: "alice", Address: "out-1", Amount: btc(30), Now: later},
			then: []ledger.Event{expired, ledger.WithdrawalRequested{ID: "w-1", Account: "alice", Address: "out-1", Amount: 30,
				Postings: []ledger.Posting{{Account: "alice", Bucket: ledger.Available, Amount: -30}, {Account: "alice", Bucket: ledger.Held, Amount: 30}}}}},
		{name: "expiry before 2000", given: funded(),
			when: ledger.PlaceHold{ID: "h-2", Account: "alice", Amount: btc(1), ExpiresAt: time.Date(1999, 12, 31, 23, 59, 59, 0, time.UTC), Now: time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)},
			err:  []error{ledger.ErrValidation}},
	})
	if err := ledger.CheckHoldExpiry(time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), t0); !errors.Is(err, ledger.ErrValidation) {
		t.Errorf("CheckHoldExpiry(epoch) = %v", err)
	}
	if err := ledger.CheckHoldExpiry(later, t0); err != nil {
		t.Errorf("CheckHoldExpiry(+1h) = %v", err)
	}
	if err := ledger.CheckHoldExpiry(time.Time{}, t0); err != nil {
		t.Errorf("CheckHoldExpiry(zero) = %v", err)
	}
}

func TestLock(t *testing.T) {
	run(t, []scenario{
		{name: "lock", given: []ledger.Event{opened}, when: ledger.LockWallet{Reason: "audit"}, then: []ledger.Event{locked}},
		{name: "lock locked: nothing", given: []ledger.Event{opened, locked}, when: ledger.LockWallet{}, then: nil},
		{name: "unlock", given: []ledger.Event{opened, locked}, when: ledger.UnlockWallet{Reason: "done"}, then: []ledger.Event{ledger.WalletUnlocked{Reason: "done"}}},
		{name: "unlock unlocked: nothing", given: []ledger.Event{opened}, when: ledger.UnlockWallet{}, then: nil},
		{name: "lock without wallet", when: ledger.LockWallet{}, err: []error{ledger.ErrWalletNotFound}},
		{name: "unlock without wallet", when: ledger.UnlockWallet{}, err: []error{ledger.ErrWalletNotFound}},
	})
}

func TestIdempotency(t *testing.T) {
	first := transferred("t-1", "alice", "bob", 10)
	first.Idempotency = key("k-1", "h-1")
	again := ledger.Transfer{ID: "t-2", From: "alice", To: "bob", Amount: btc(10), Idempotency: key("k-1", "h-1")}
	run(t, []scenario{
		{name: "replay decides nothing", given: funded(first), when: again, then: nil},
		{name: "replay even when it would now fail", given: funded(first, locked), when: again, then: nil},
		{
			name:  "other body",
			given: funded(first),
			when:  ledger.Transfer{ID: "t-2", From: "alice", To: "bob", Amount: btc(11), Idempotency: key("k-1", "h-2")},
			err:   []error{ledger.ErrIdempotencyKeyReused},
		},
		{
			name:  "key of another kind of command",
			given: funded(first),
			when:  ledger.ImportBalance{ID: "i-2", Account: "bob", Amount: btc(1), Idempotency: key("k-1", "h-9")},
			err:   []error{ledger.ErrIdempotencyKeyReused},
		},
		{
			name:  "other key goes ahead",
			given: funded(first),
			when:  ledger.Transfer{ID: "t-2", From: "alice", To: "bob", Amount: btc(10), Idempotency: key("k-2", "h-1")},
			then: []ledger.Event{func() ledger.Event {
				e := transferred("t-2", "alice", "bob", 10)
				e.Idempotency = key("k-2", "h-1")
				return e
			}()},
		},
		{
			name:  "key too long",
			given: funded(),
			when:  ledger.Transfer{ID: "t-2", From: "alice", To: "bob", Amount: btc(10), Idempotency: key(string(make([]byte, 256)), "h")},
			err:   []error{ledger.ErrValidation},
		},
		{name: "unknown command", given: funded(), when: &ledger.Transfer{}, err: []error{ledger.ErrValidation}},
		{name: "nil command", given: funded(), when: nil, err: []error{ledger.ErrValidation}},
	})
}

func TestReplay(t *testing.T) {
	s := ledger.NewState()
	for _, e := range funded() { // revisions 0..3
		ledger.Evolve(s, e)
	}
	tr := ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(10), Idempotency: key("k-1", "h-1")}
	if _, seen, err := s.Replay("k-1", "h-1"); seen || err != nil {
		t.Fatalf("unknown key: seen %v, %v", seen, err)
	}
	if _, err := ledger.Execute(s, tr); err != nil {
		t.Fatal(err)
	}
	want := ledger.Result{EventType: ledger.TypeFundsTransferred, ID: "t-1", Revision: 4}
	if got, seen, err := s.Replay("k-1", "h-1"); !seen || err != nil || got != want {
		t.Fatalf("Replay = %+v, %v, %v; want %+v", got, seen, err, want)
	}
	if _, seen, err := s.Replay("k-1", "other"); !seen || !errors.Is(err, ledger.ErrIdempotencyKeyReused) {
		t.Fatalf("other hash: seen %v, %v", seen, err)
	}
	if _, seen, err := s.Replay("", ""); seen || err != nil {
		t.Fatalf("empty key: seen %v, %v", seen, err)
	}
	if s.Version() != 5 || s.IdempotencyKeys() != 1 {
		t.Fatalf("Version %d, keys %d", s.Version(), s.IdempotencyKeys())
	}
	// A command that failed validation is not remembered: its key may be
	// retried (refusals are, once recorded: TestRefusalRecordedAndReplayed).
	bad := ledger.Transfer{ID: "t 2", From: "bob", To: "alice", Amount: btc(50), Idempotency: key("k-2", "h-2")}
	if _, err := ledger.Execute(s, bad); !errors.Is(err, ledger.ErrValidation) {
		t.Fatalf("want a validation error, got %v", err)
	}
	if _, ok := ledger.Refusal(bad, ledger.ErrValidation); ok {
		t.Fatal("validation error recorded as a refusal")
	}
	if _, seen, _ := s.Replay("k-2", "h-2"); seen {
		t.Fatal("failed command remembered")
	}
	if _, err := ledger.Execute(s, ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(5), Idempotency: key("k-2", "h-2")}); err != nil {
		t.Fatalf("retry with the key: %v", err)
	}
}

// TestBatch decides several commands on one in-memory state, as a writer
// batching commands into one append does.
func TestBatch(t *testing.T) {
	s := ledger.NewState()
	cmds := []ledger.Command{
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: allPerms},
		ledger.OpenAccount{Name: "alice"},
		ledger.OpenAccount{Name: "bob"},
		ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: btc(100)},
		ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(60), Idempotency: key("k", "h")},
		ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: btc(60), Idempotency: key("k", "h")}, // retried in the same batch
		ledger.Transfer{ID: "t-2", From: "bob", To: "alice", Amount: btc(60)},                             // needs t-1 evolved
	}
	var all []ledger.Event
	for i, c := range cmds {
		events, err := ledger.Execute(s, c)
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		all = append(all, events...)
	}
	if len(all) != 6 || s.Version() != 6 {
		t.Fatalf("%d events, version %d; want 6, 6", len(all), s.Version())
	}
	a, _ := s.Balance("alice")
	b, _ := s.Balance("bob")
	imp, _ := s.Balance(ledger.ImportAccount)
	if a.Available != 100 || b.Available != 0 || imp.Available != -100 {
		t.Fatalf("balances alice %+v bob %+v @import %+v", a, b, imp)
	}
	// A command failing mid-batch leaves the state as it was.
	before := s.Clone()
	if _, err := ledger.Execute(s, ledger.Transfer{ID: "t-3", From: "bob", To: "alice", Amount: btc(1)}); !errors.Is(err, ledger.ErrInsufficientFunds) {
		t.Fatalf("want insufficient funds, got %v", err)
	}
	if !reflect.DeepEqual(s, before) {
		t.Fatal("failed Execute changed the state")
	}
}
