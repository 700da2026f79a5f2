package wallets_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// open opens the SQLite event store at path and a wallet service over it;
// the returned func closes both.
func open(t *testing.T, path string) (*wallets.Service, eventstore.Store, func()) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := wallets.New(store, wallets.Options{})
	return svc, store, func() { svc.Close(); store.Close() }
}

func cmd(c ledger.Command) wallets.Build {
	return func(*ledger.State) (ledger.Command, error) { return c, nil }
}

func balance(t *testing.T, svc *wallets.Service, account string) ledger.Balance {
	t.Helper()
	var b ledger.Balance
	if err := svc.View(context.Background(), "main", func(s *ledger.State) error {
		b, _ = s.Balance(account)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRefusalIsTheAnswerForItsKey: a transfer refused for insufficient
// funds under key K stays refused after the account is funded, on the same
// service and on a new one over the reopened store; validation errors are
// not remembered.
func TestRefusalIsTheAnswerForItsKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	svc, store, closeAll := open(t, path)
	meta := eventstore.Metadata{Actor: "test"}
	for _, c := range []ledger.Command{
		ledger.OpenWallet{Name: "main", Coin: money.BTC, Permissions: ledger.AllPermissions()},
		ledger.OpenAccount{Name: "alice"},
		ledger.OpenAccount{Name: "bob"},
	} {
		if _, err := svc.Execute(ctx, meta, "main", cmd(c)); err != nil {
			t.Fatal(err)
		}
	}
	k := ledger.Idempotency{Key: "alice:K", RequestHash: "h"}
	transfer := ledger.Transfer{ID: "t-1", From: "alice", To: "bob", Amount: money.New(money.BTC, 10), Idempotency: k}

	_, err := svc.Execute(ctx, meta, "main", cmd(transfer))
	var re *ledger.RefusedError
	if !errors.Is(err, ledger.ErrInsufficientFunds) || errors.As(err, &re) {
		t.Fatalf("first transfer: %v; want insufficient funds, not a replay", err)
	}
	events, err := store.ReadStream(ctx, ledger.Stream("main"), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if last := events[len(events)-1]; last.Type != ledger.TypeCommandRefused || last.Metadata.Actor != "test" {
		t.Fatalf("last event %s by %q, want the recorded refusal", last.Type, last.Metadata.Actor)
	}

	if _, err := svc.Execute(ctx, meta, "main", cmd(ledger.ImportBalance{ID: "i-1", Account: "alice", Amount: money.New(money.BTC, 1000)})); err != nil {
		t.Fatal(err)
	}
	replay := func(svc *wallets.Service, when string) {
		t.Helper()
		_, err := svc.Execute(ctx, meta, "main", cmd(transfer))
		if !errors.Is(err, ledger.ErrInsufficientFunds) || !errors.As(err, &re) {
			t.Fatalf("%s: %v; want the recorded insufficient funds", when, err)
		}
		if b := balance(t, svc, "alice"); b.Available != 1000 {
			t.Fatalf("%s: alice %+v; nothing may move", when, b)
		}
		other := transfer
		other.Idempotency.RequestHash = "other"
		if _, err := svc.Execute(ctx, meta, "main", cmd(other)); !errors.Is(err, ledger.ErrIdempotencyKeyReused) {
			t.Fatalf("%s, other body: %v; want key reused", when, err)
		}
	}
	replay(svc, "after funding")
	closeAll()

	svc, _, closeAll = open(t, path)
	defer closeAll()
	replay(svc, "after reopening")

	// A validation error is not an answer: the key may be used again.
	bad := ledger.Transfer{ID: "t-2", From: "alice", To: "alice", Amount: money.New(money.BTC, 10), Idempotency: ledger.Idempotency{Key: "alice:V", RequestHash: "h"}}
	if _, err := svc.Execute(ctx, meta, "main", cmd(bad)); !errors.Is(err, ledger.ErrValidation) {
		t.Fatalf("bad transfer: %v", err)
	}
	good := bad
	good.To = "bob"
	if _, err := svc.Execute(ctx, meta, "main", cmd(good)); err != nil {
		t.Fatalf("key of a validation error used again: %v", err)
	}
}
