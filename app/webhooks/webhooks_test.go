package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/outbox"
	"github.com/coinledger/coinledger/app/webhooks"
	"github.com/coinledger/coinledger/domain/egress"
	"github.com/coinledger/coinledger/domain/hook"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	rmsqlite "github.com/coinledger/coinledger/projections/sqlite"
	"github.com/coinledger/coinledger/test/background"
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// poster records the webhooks the outbox posts (the HTTP side is the
// webhook adapter's, tested end to end in test/).
type poster struct {
	mu     sync.Mutex
	posted []outbox.Webhook
}

func (p *poster) PostWebhook(_ context.Context, w outbox.Webhook) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.posted = append(p.posted, w)
	return 204, nil
}

func (p *poster) webhooks() []outbox.Webhook {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]outbox.Webhook(nil), p.posted...)
}

// world is a store with wallet shop (BTC), a hooks service, and a runner
// that drives the dispatcher and the outbox's follower, with the sender.
type world struct {
	store  eventstore.Store
	svc    *webhooks.Service
	n      *outbox.Notifier
	runner *projections.Runner
	posted *poster
	ledger *eventstore.Codec[ledger.Event]
	next   uint64
	stop   func() error
}

var loopback = egress.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func newWorld(t *testing.T) *world {
	w := startWorld(t, sqlitetest.Open(t), seal.Random(), filepath.Join(t.TempDir(), "read.db"), nil)
	w.append(t, ledger.WalletOpened{Wallet: "shop", Coin: "BTC", Exponent: 8})
	return w
}

// startWorld runs the followers and the sender over store and the
// read-model database at dbPath (their positions and snapshots).
func startWorld(t *testing.T, store eventstore.Store, keyring *seal.Keyring, dbPath string, owners webhooks.Owners) *world {
	p := &poster{}
	n := outbox.New(outbox.Config{Store: store, Hooks: p, HookSecrets: webhooks.NewSecrets(store, keyring, owners)})
	svc, d := webhooks.New(webhooks.Config{Store: store, Keyring: keyring, Policy: loopback}, n)
	db, err := rmsqlite.Open(context.Background(), dbPath)
	must(t, err)
	r := projections.NewRunner(db, store, projections.Options{RetryMin: time.Millisecond, RetryMax: 50 * time.Millisecond},
		projections.Follow(d), projections.Follow(n.Follower()))
	stopRunner := background.Run(t, true, r.Run)
	stopSender := background.Run(t, true, n.Run)
	return &world{store: store, svc: svc, n: n, runner: r, posted: p, ledger: eventstore.NewCodecOf(ledger.Events()...),
		stop: func() error { return errors.Join(stopSender(), stopRunner(), db.Close()) }}
}

// append appends ledger events to wallet-shop as its writer would.
func (w *world) append(t *testing.T, events ...ledger.Event) {
	t.Helper()
	data, err := w.ledger.Encode(eventstore.Metadata{Actor: "test"}, events)
	must(t, err)
	res, err := w.store.Append(context.Background(), ledger.Stream("shop"), eventstore.ExpectRevision(w.next), data...)
	must(t, err)
	w.next = res.NextRevision
}

// idle waits until both followers have read the log and nothing is left
// to send.
func (w *world) idle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must(t, w.runner.CaughtUp(ctx, webhooks.FollowerName))
	must(t, w.runner.CaughtUp(ctx, outbox.FollowerName))
	must(t, w.n.WaitIdle(ctx))
}

func deposit(account string, units int64, typ string) ledger.Event {
	ps := []ledger.Posting{{Account: ledger.ChainAccount, Bucket: ledger.Available, Amount: -units}, {Account: account, Bucket: ledger.Pending, Amount: units}}
	if typ == ledger.TypeDepositConfirmed {
		ps = []ledger.Posting{{Account: account, Bucket: ledger.Pending, Amount: -units}, {Account: account, Bucket: ledger.Available, Amount: units}}
		return ledger.DepositConfirmed{ID: "tx:0", TxID: "tx", Account: account, Amount: units, Confirmations: 2, BlockHash: "b", Postings: ps}
	}
	return ledger.DepositSeen{ID: "tx:0", TxID: "tx", Address: "addr", Account: account, Amount: units, Postings: ps}
}

// TestDispatcherDeliversWantedEvents: a hook gets exactly the events of
// its kinds and accounts, in log order, numbered 1, 2, ..., signed with its
// secret, their amounts decimal strings; a deleted hook gets nothing more.
// The secret is sealed in the log.
func TestDispatcherDeliversWantedEvents(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	h, _, err := w.svc.Register(ctx, eventstore.Metadata{Actor: "user:alice"}, webhooks.Registration{Wallet: "shop",
		Owner: "alice", URL: "http://127.0.0.1:9/hook", Kinds: []hook.Kind{hook.DepositSeen, hook.DepositConfirmed, hook.Transfer},
		Accounts: []string{"a"}})
	must(t, err)
	if !strings.HasPrefix(h.Secret, webhooks.SecretPrefix) {
		t.Fatalf("secret %q", h.Secret)
	}
	w.append(t, deposit("a", 50_000_000, ledger.TypeDepositSeen))
	w.append(t, deposit("b", 7, ledger.TypeDepositSeen)) // another account
	w.append(t, ledger.HoldPlaced{ID: "h1", Account: "a", Amount: 1})
	w.append(t, deposit("a", 50_000_000, ledger.TypeDepositConfirmed))
	w.append(t, ledger.FundsTransferred{ID: "t1", From: "b", To: "a", Amount: 25})
	w.idle(t)

	got := w.posted.webhooks()
	want := []struct{ event, amount string }{{"deposit.seen", "0.50000000"}, {"deposit.confirmed", "0.50000000"}, {"transfer", "0.00000025"}}
	if len(got) != len(want) {
		t.Fatalf("posted %d webhooks, want %d: %+v", len(got), len(want), got)
	}
	var last uint64
	for i, wh := range got {
		var p webhooks.Payload
		must(t, json.Unmarshal(wh.Body, &p))
		var data struct{ Amount string }
		must(t, json.Unmarshal(p.Data, &data))
		id := outbox.HookDeliveryID(string(h.ID), i+1)
		if wh.EventType != want[i].event || p.Event != want[i].event || data.Amount != want[i].amount ||
			wh.DeliveryID != id || p.DeliveryID != id || string(wh.Secret) != h.Secret || wh.URL != h.URL || p.Position <= last {
			t.Errorf("webhook %d: %+v %s, want %s of %s as %s", i+1, wh, wh.Body, want[i].event, want[i].amount, id)
		}
		last = p.Position
	}

	// The secret never reaches the log in the clear.
	events, err := w.store.ReadStream(ctx, h.ID.Stream(), 0, 10)
	must(t, err)
	if len(events) != 1 || strings.Contains(string(events[0].Data), h.Secret) || !strings.Contains(string(events[0].Data), `"sealed"`) {
		t.Fatalf("stored registration %s, want the secret sealed", events[0].Data)
	}

	_, err = w.svc.Delete(ctx, eventstore.Metadata{Actor: "user:bob"}, "shop", h.ID, "bob")
	if !errors.Is(err, hook.ErrNotFound) {
		t.Fatalf("bob deletes alice's hook: %v, want ErrNotFound", err)
	}
	_, err = w.svc.Delete(ctx, eventstore.Metadata{Actor: "user:alice"}, "shop", h.ID, "alice")
	must(t, err)
	w.append(t, ledger.FundsTransferred{ID: "t2", From: "b", To: "a", Amount: 1})
	w.idle(t)
	if n := len(w.posted.webhooks()); n != len(want) {
		t.Fatalf("a deleted hook got %d webhooks, want %d", n, len(want))
	}
	if _, err := w.svc.HookSecret(ctx, string(h.ID)); !errors.Is(err, outbox.ErrNotFound) {
		t.Fatalf("secret of a deleted hook: %v, want outbox.ErrNotFound", err)
	}
}

// TestRegisterRefusals: a URL the egress policy forbids is refused with
// egress.ErrForbidden, bad kinds with hook.ErrValidation, and an owner's
// hook beyond hook.MaxPerWallet with hook.ErrTooMany.
func TestRegisterRefusals(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	reg := func(url string, kinds ...hook.Kind) error {
		_, _, err := w.svc.Register(ctx, eventstore.Metadata{Actor: "user:alice"},
			webhooks.Registration{Wallet: "shop", Owner: "alice", URL: url, Kinds: kinds})
		return err
	}
	for _, url := range []string{"http://10.1.2.3/", "http://169.254.169.254/", "http://[::1]:80/", "http://[fd00::1]/"} {
		if err := reg(url, hook.Transfer); !errors.Is(err, egress.ErrForbidden) {
			t.Errorf("url %s: %v, want ErrForbidden", url, err)
		}
	}
	if err := reg("http://127.0.0.1/"); !errors.Is(err, hook.ErrValidation) {
		t.Errorf("no kinds: %v, want ErrValidation", err)
	}
	if err := reg("http://127.0.0.1/", "deposit.mined"); !errors.Is(err, hook.ErrValidation) {
		t.Errorf("unknown kind: %v, want ErrValidation", err)
	}
	for i := 0; i < hook.MaxPerWallet; i++ {
		must(t, reg("http://127.0.0.1/", hook.Hold))
	}
	w.idle(t)
	if err := reg("http://127.0.0.1/", hook.Hold); !errors.Is(err, hook.ErrTooMany) {
		t.Errorf("hook %d: %v, want ErrTooMany", hook.MaxPerWallet+1, err)
	}
	if n := len(w.svc.List("shop", "alice")); n != hook.MaxPerWallet {
		t.Errorf("List: %d hooks, want %d", n, hook.MaxPerWallet)
	}
}

// TestDispatcherResumesAfterRestart: restarted from its stored position
// and snapshot, the dispatcher numbers a hook's deliveries on from where it
// was and queues nothing twice; the hook's secret, sealed in the log, still
// signs.
func TestDispatcherResumesAfterRestart(t *testing.T) {
	store, keyring, dbPath := sqlitetest.Open(t), seal.Random(), filepath.Join(t.TempDir(), "read.db")
	w := startWorld(t, store, keyring, dbPath, nil)
	w.append(t, ledger.WalletOpened{Wallet: "shop", Coin: "BTC", Exponent: 8})
	ctx := context.Background()
	h, _, err := w.svc.Register(ctx, eventstore.Metadata{Actor: "user:alice"}, webhooks.Registration{Wallet: "shop",
		Owner: "alice", URL: "http://127.0.0.1:9/hook", Kinds: []hook.Kind{hook.Transfer}})
	must(t, err)
	w.append(t, ledger.FundsTransferred{ID: "t1", From: "a", To: "b", Amount: 1})
	w.append(t, ledger.FundsTransferred{ID: "t2", From: "a", To: "b", Amount: 2})
	w.idle(t)
	must(t, w.stop())

	again := startWorld(t, store, keyring, dbPath, nil)
	again.next = w.next
	again.append(t, ledger.FundsTransferred{ID: "t3", From: "a", To: "b", Amount: 3})
	again.idle(t)
	got := again.posted.webhooks()
	if len(got) != 1 || got[0].DeliveryID != outbox.HookDeliveryID(string(h.ID), 3) || string(got[0].Secret) != h.Secret {
		t.Fatalf("after the restart posted %+v, want only delivery 3, signed with the hook's secret", got)
	}
	ds, err := again.n.HookDeliveries(ctx, string(h.ID))
	must(t, err)
	if len(ds) != 3 {
		t.Fatalf("delivery log has %d deliveries, want 3", len(ds))
	}
	for i, d := range ds {
		if d.Status != outbox.StatusDelivered || len(d.Attempts) != 1 {
			t.Errorf("delivery %d: %s after %d attempts, want delivered at the first", i+1, d.Status, len(d.Attempts))
		}
	}
}

// owners is a hand-set webhooks.Owners: who may receive what.
type owners struct {
	mu      sync.Mutex
	allowed map[string]bool // owner → may receive
}

func (o *owners) MayReceive(_ context.Context, owner, _ string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.allowed[owner], nil
}

func (o *owners) set(owner string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.allowed[owner] = ok
}

// TestOwnerWhoLostAccessGetsNothing: once a hook's owner may no longer
// receive the wallet's events (grant revoked, user disabled), its
// deliveries give up instead of being sent.
func TestOwnerWhoLostAccessGetsNothing(t *testing.T) {
	o := &owners{allowed: map[string]bool{"alice": true}}
	w := startWorld(t, sqlitetest.Open(t), seal.Random(), filepath.Join(t.TempDir(), "read.db"), o)
	w.append(t, ledger.WalletOpened{Wallet: "shop", Coin: "BTC", Exponent: 8})
	ctx := context.Background()
	h, _, err := w.svc.Register(ctx, eventstore.Metadata{Actor: "user:alice"}, webhooks.Registration{Wallet: "shop",
		Owner: "alice", URL: "http://127.0.0.1:9/hook", Kinds: []hook.Kind{hook.Transfer}})
	must(t, err)
	w.append(t, ledger.FundsTransferred{ID: "t1", From: "a", To: "b", Amount: 1})
	w.idle(t)
	o.set("alice", false)
	w.append(t, ledger.FundsTransferred{ID: "t2", From: "a", To: "b", Amount: 2})
	w.idle(t)
	if got := w.posted.webhooks(); len(got) != 1 {
		t.Fatalf("posted %d webhooks, want only the one before access was lost", len(got))
	}
	ds, err := w.n.HookDeliveries(ctx, string(h.ID))
	must(t, err)
	if len(ds) != 2 || ds[1].Status != outbox.StatusGaveUp || !strings.Contains(ds[1].Reason, "no longer receive") {
		t.Fatalf("deliveries %+v, want the second given up", ds)
	}
}
