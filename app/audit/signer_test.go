package audit_test

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/liability"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// keys is a keyring the test may rotate.
type keys struct {
	mu sync.Mutex
	k  *audit.Keyring
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	k, err := audit.NewKeyring(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &keys{k: k}
}

func (k *keys) get() (*audit.Keyring, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.k, nil
}

func (k *keys) rotate(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	next, err := k.k.Rotate(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k.k = next
}

// stores opens each kind of event store the signer is tested on.
var stores = map[string]func(t *testing.T) eventstore.Store{
	"sqlite": func(t *testing.T) eventstore.Store { return sqlitetest.Open(t) },
	"esdb double": func(t *testing.T) eventstore.Store {
		srv := esdbtest.Start(t, esdbtest.Options{Links: true})
		store, err := esdb.Open(context.Background(), srv.URL(), esdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		return store
	},
}

// signer runs a signer over store with its snapshots in the read-model
// database at path, until stop or the end of the test.
type signerNode struct {
	s        *audit.Signer
	caughtUp func(context.Context) error
	stop     func()
}

func startSigner(t *testing.T, store eventstore.Store, path string, opts audit.SignerOptions) *signerNode {
	t.Helper()
	s := audit.NewSigner(store, opts)
	caughtUp, stopRunner := dbtest.RunFollower(t, store, path, s, projections.Options{SnapshotEvery: 3, RetryMin: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, caughtUp) }()
	var once sync.Once
	n := &signerNode{s: s, caughtUp: caughtUp, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("signer: %v", err)
			}
			stopRunner()
		})
	}}
	t.Cleanup(n.stop)
	return n
}

func appendEvents(t *testing.T, store eventstore.Store, n int) {
	t.Helper()
	for range n {
		if _, err := store.Append(context.Background(), "test-stream", eventstore.Any, eventstore.EventData{Type: "test.happened"}); err != nil {
			t.Fatal(err)
		}
	}
}

func checkpoints(t *testing.T, store eventstore.Store) []domain.Checkpoint {
	t.Helper()
	list, err := audit.ListCheckpoints(context.Background(), store, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func caughtUp(t *testing.T, n *signerNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.caughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSignerCheckpointsEveryNEvents: a checkpoint after every Every
// events, its own checkpoint events not counted; none while fewer have
// arrived; each signed over the tally of the log up to its position.
func TestSignerCheckpointsEveryNEvents(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { testSignerCheckpointsEveryNEvents(t, open(t)) })
	}
}

func testSignerCheckpointsEveryNEvents(t *testing.T, store eventstore.Store) {
	k := newKeys(t)
	n := startSigner(t, store, filepath.Join(t.TempDir(), "rm.db"), audit.SignerOptions{Keys: k.get, Every: 10, Interval: -1})
	appendEvents(t, store, 10)
	caughtUp(t, n)
	appendEvents(t, store, 10)
	caughtUp(t, n)
	appendEvents(t, store, 9)
	caughtUp(t, n)
	got := checkpoints(t, store)
	// 10 events: checkpoint 1 at 10, its event at 11; 10 more (12..21):
	// checkpoint 2 at 21, its event at 22; 9 more: none.
	if len(got) != 2 || got[0].Events != 10 || got[1].Events != 21 {
		t.Fatalf("checkpoints after %v events, want 1 after 10 and 2 after 21", counts(got))
	}
	kr, _ := k.get()
	for i, c := range got {
		if c.Number != uint64(i+1) {
			t.Errorf("checkpoint %d numbered %d", i+1, c.Number)
		}
		if err := c.Verify(kr.Verifying()); err != nil {
			t.Error(err)
		}
		tally, err := audit.FoldTo(context.Background(), store, c.Position)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := tally.Statement(c.Number, kr.SaltSecret())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(kr.Sign(want).Signature, c.Signature) {
			t.Errorf("checkpoint %d is not the statement of the log up to %d", c.Number, c.Position)
		}
	}
}

func positions(cs []domain.Checkpoint) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Position
	}
	return out
}

func counts(cs []domain.Checkpoint) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.Events
	}
	return out
}

// TestSignerOnDemandAndInterval: Checkpoint makes one at the head at once;
// the interval makes one when events arrived since, and a quiet log gets
// no more (its own checkpoint events do not count).
func TestSignerOnDemandAndInterval(t *testing.T) {
	store := sqlitetest.Open(t)
	k := newKeys(t)
	n := startSigner(t, store, filepath.Join(t.TempDir(), "rm.db"),
		audit.SignerOptions{Keys: k.get, Every: -1, Interval: 20 * time.Millisecond})
	// The three events in one append: one by one, a slow fsync on a
	// loaded machine lets the interval fire between two of them.
	test := eventstore.EventData{Type: "test.happened"}
	if _, err := store.Append(context.Background(), "test-stream", eventstore.Any, test, test, test); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for len(checkpoints(t, store)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint by interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	caughtUp(t, n)
	time.Sleep(150 * time.Millisecond) // several intervals of a quiet log
	caughtUp(t, n)
	got := checkpoints(t, store)
	if len(got) != 1 || got[0].Position != 3 {
		t.Fatalf("checkpoints at %v, want one at 3", positions(got))
	}
	appendEvents(t, store, 2)
	head, _ := store.Head(ctx)
	c, err := n.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// At the head the call found (or later, if the interval made one
	// meanwhile): the log's newest.
	got = checkpoints(t, store)
	if c.Position < head || !bytes.Equal(got[len(got)-1].Signature, c.Signature) {
		t.Fatalf("on demand: checkpoint %d at %d, head was %d; the log's newest is %d", c.Number, c.Position, head, got[len(got)-1].Number)
	}
}

// TestSignerIdempotentOverRestart: a signer that starts over from the
// start of the log (its snapshot lost) makes the identical checkpoints
// again, which the store recognises: nothing is appended, nothing
// conflicts, and it carries on numbering after them. A restart from its
// snapshot does the same. On SQLite and on the EventStoreDB double (sparse
// positions, system events interleaved).
func TestSignerIdempotentOverRestart(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { testSignerIdempotentOverRestart(t, open(t)) })
	}
}

func testSignerIdempotentOverRestart(t *testing.T, store eventstore.Store) {
	k := newKeys(t)
	ctx := context.Background()
	opts := audit.SignerOptions{Keys: k.get, Every: 5, Interval: -1}
	rm := filepath.Join(t.TempDir(), "rm.db")
	n := startSigner(t, store, rm, opts)
	for range 3 {
		appendEvents(t, store, 5)
		caughtUp(t, n)
	}
	n.stop()
	before := checkpoints(t, store)
	head, _ := store.Head(ctx)
	if len(before) != 3 {
		t.Fatalf("%d checkpoints, want 3", len(before))
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "fresh.db"), rm} {
		n := startSigner(t, store, path, opts)
		caughtUp(t, n)
		n.stop()
		if h, _ := store.Head(ctx); h != head {
			t.Fatalf("%s: head %d after the replay, was %d", path, h, head)
		}
	}
	// The replayed append of checkpoint 2 is the identical event.
	kr, _ := k.get()
	tally, err := audit.FoldTo(ctx, store, before[1].Position)
	if err != nil {
		t.Fatal(err)
	}
	st, _, _ := tally.Statement(2, kr.SaltSecret())
	if c := kr.Sign(st); !bytes.Equal(c.Signature, before[1].Signature) {
		t.Fatal("signing the same tally twice gave two checkpoints")
	}
	// And it carries on: the next five events make checkpoint 4.
	n = startSigner(t, store, rm, opts)
	appendEvents(t, store, 5)
	caughtUp(t, n)
	after := checkpoints(t, store)
	if len(after) != 4 || after[3].Number != 4 {
		t.Fatalf("checkpoints %v after the restart", positions(after))
	}
}

// TestSignerAdoptsATakenNumber: a signer that has not seen the checkpoint
// another one made under the next number makes its own under that number:
// the store keeps the first (one number, one event), the late signer
// adopts it and numbers after it.
func TestSignerAdoptsATakenNumber(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) { testSignerAdoptsATakenNumber(t, open(t)) })
	}
}

func testSignerAdoptsATakenNumber(t *testing.T, store eventstore.Store) {
	k := newKeys(t)
	ctx := context.Background()
	appendEvents(t, store, 4)
	a := startSigner(t, store, filepath.Join(t.TempDir(), "a.db"), audit.SignerOptions{Keys: k.get, Every: -1, Interval: -1})
	first, err := a.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.stop()
	// b is handed the log by hand: at event 2 it makes "checkpoint 1".
	b := audit.NewSigner(store, audit.SignerOptions{Keys: k.get, Every: 2, Interval: -1})
	events, err := store.ReadAll(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := b.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got := checkpoints(t, store)
	if len(got) != 1 || !bytes.Equal(got[0].Signature, first.Signature) {
		t.Fatalf("checkpoints after %v events, want only a's after 4", counts(got))
	}
	appendEvents(t, store, 2)
	events, err = store.ReadAll(ctx, events[len(events)-1].Position, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := b.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got = checkpoints(t, store)
	if len(got) != 2 || got[1].Number != 2 || got[1].Events != 7 {
		t.Fatalf("checkpoints after %v events, want a's after 4 and b's after 7", counts(got))
	}
}

// TestKeyRotationKeepsOldCheckpointsVerifiable: after a rotation the new
// key signs, and the checkpoints of the old key still verify with the
// keys the keyring lists; with the new key alone they do not.
func TestKeyRotationKeepsOldCheckpointsVerifiable(t *testing.T) {
	store := sqlitetest.Open(t)
	k := newKeys(t)
	ctx := context.Background()
	n := startSigner(t, store, filepath.Join(t.TempDir(), "rm.db"), audit.SignerOptions{Keys: k.get, Every: -1, Interval: -1})
	appendEvents(t, store, 2)
	first, err := n.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := k.get()
	k.rotate(t)
	appendEvents(t, store, 2)
	second, err := n.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kr, _ := k.get()
	if first.KeyID != old.KeyID() || second.KeyID != kr.KeyID() || first.KeyID == second.KeyID {
		t.Fatalf("key ids %s, %s; old %s, new %s", first.KeyID, second.KeyID, old.KeyID(), kr.KeyID())
	}
	if !bytes.Equal(kr.SaltSecret(), old.SaltSecret()) {
		t.Fatal("the rotation changed the salt secret")
	}
	pubs := kr.PublicKeys()
	if len(pubs) != 2 || !pubs[0].Current || pubs[1].Current || pubs[1].ID != old.KeyID() {
		t.Fatalf("public keys %+v", pubs)
	}
	// Through the published form, as an auditor receives them.
	doc, err := audit.MarshalPublicKeys(pubs)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := audit.ParsePublicKeys(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checkpoints(t, store) {
		if err := c.Verify(audit.VerifyingKeys(parsed)); err != nil {
			t.Errorf("checkpoint %d: %v", c.Number, err)
		}
	}
	if err := first.Verify(audit.VerifyingKeys(parsed[:1])); !errors.Is(err, domain.ErrUnknownKey) {
		t.Fatalf("old checkpoint with the new key only: %v", err)
	}
	// The keyring file form keeps all of it.
	b, err := audit.MarshalKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	back, err := audit.ParseKeyring(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.KeyID() != kr.KeyID() || len(back.PublicKeys()) != 2 || !bytes.Equal(back.SaltSecret(), kr.SaltSecret()) {
		t.Fatal("keyring file round trip lost something")
	}
	if s := kr.String(); bytes.Contains([]byte(s), []byte("private_key")) || len(s) > 100 {
		t.Fatalf("String shows %q", s)
	}
}

// TestProofsVerifyAgainstTheSignedRoot: for every account of generated
// wallet traffic, the proof at the newest checkpoint (the signer's trees)
// and at an older one (rebuilt from the log) verifies against the signed
// root; unknown accounts and checkpoints are refused.
func TestProofsVerifyAgainstTheSignedRoot(t *testing.T) {
	store := sqlitetest.Open(t)
	k := newKeys(t)
	ctx := context.Background()
	if _, err := loadgen.WalletTraffic(ctx, store, loadgen.WalletOptions{Events: 600, Wallets: 2, Accounts: 8}); err != nil {
		t.Fatal(err)
	}
	n := startSigner(t, store, filepath.Join(t.TempDir(), "rm.db"), audit.SignerOptions{Keys: k.get, Every: -1, Interval: -1})
	older, err := n.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, store, 3) // another checkpoint number: other salts, another tree
	newest, err := n.s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prover := audit.NewProver(store, k.get, n.s)
	for _, c := range []domain.Checkpoint{newest, older} {
		tally, err := audit.FoldTo(ctx, store, c.Position)
		if err != nil {
			t.Fatal(err)
		}
		checked := 0
		for wallet, book := range tally.Books().Wallets() {
			root, ok := c.Liability(book.Coin)
			if !ok {
				t.Fatalf("checkpoint %d has no root for %s", c.Number, book.Coin)
			}
			for account, bal := range book.Accounts {
				number := c.Number
				if c.Number == newest.Number {
					number = 0 // the newest by default
				}
				got, proof, err := prover.Proof(ctx, number, wallet, account)
				if account[0] == '@' {
					if !errors.Is(err, audit.ErrUnknownAccount) {
						t.Errorf("system account %s/%s: %v", wallet, account, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s/%s at %d: %v", wallet, account, c.Number, err)
				}
				if got.Number != c.Number || proof.Balance != max(bal.Total(), 0) {
					t.Errorf("%s/%s: checkpoint %d balance %d, want %d and %d", wallet, account, got.Number, proof.Balance, c.Number, bal.Total())
				}
				if err := liability.Verify(proof, root, audit.LiabilityAccount(wallet, account)); err != nil {
					t.Errorf("%s/%s: %v", wallet, account, err)
				}
				if err := liability.Verify(proof, root, audit.LiabilityAccount(wallet, account+"x")); err == nil {
					t.Errorf("%s/%s: the proof verifies for another account", wallet, account)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Fatalf("checkpoint %d: no account checked", c.Number)
		}
	}
	if _, _, err := prover.Proof(ctx, 0, "nowallet", "nobody"); !errors.Is(err, audit.ErrUnknownAccount) {
		t.Fatalf("unknown account: %v", err)
	}
	if _, _, err := prover.Proof(ctx, 99, "w", "a"); !errors.Is(err, audit.ErrUnknownCheckpoint) {
		t.Fatalf("unknown checkpoint: %v", err)
	}
	if _, _, err := audit.NewProver(sqlitetest.Open(t), k.get, nil).Proof(ctx, 0, "w", "a"); !errors.Is(err, audit.ErrUnknownCheckpoint) {
		t.Fatalf("no checkpoint yet: %v", err)
	}
}

// TestSignerSnapshotRoundTrips: a restored signer snapshots to the same
// bytes; a corrupt snapshot is refused.
func TestSignerSnapshotRoundTrips(t *testing.T) {
	store := sqlitetest.Open(t)
	k := newKeys(t)
	ctx := context.Background()
	if _, err := loadgen.WalletTraffic(ctx, store, loadgen.WalletOptions{Events: 400, Wallets: 2, Accounts: 5}); err != nil {
		t.Fatal(err)
	}
	s := audit.NewSigner(store, audit.SignerOptions{Keys: k.get, Every: 150, Interval: -1})
	events, err := store.ReadAll(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if err := s.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	other := audit.NewSigner(store, audit.SignerOptions{Keys: k.get})
	if err := other.Restore(snap); err != nil {
		t.Fatal(err)
	}
	again, _ := other.Snapshot()
	if !bytes.Equal(snap, again) {
		t.Fatal("snapshot changed over a restore")
	}
	if len(snap) > 40*len(events) {
		t.Errorf("snapshot of %d bytes for %d events", len(snap), len(events))
	}
	for _, bad := range [][]byte{snap[:len(snap)-1], append([]byte{9}, snap[1:]...), append(bytes.Clone(snap), 0)} {
		if err := other.Restore(bad); err == nil {
			t.Errorf("corrupt snapshot of %d bytes restored", len(bad))
		}
	}
	if again, _ := other.Snapshot(); !bytes.Equal(snap, again) {
		t.Fatal("a refused restore changed the state")
	}
}

// TestSignerFoldsWhatItCannotRead: an unreadable checkpoint event is folded
// (the chain covers it) without parking the signer; a wallet event the
// books cannot decode is an error, and handing it again retries only the
// books: the chain does not take it twice.
func TestSignerFoldsWhatItCannotRead(t *testing.T) {
	store := sqlitetest.Open(t)
	k := newKeys(t)
	ctx := context.Background()
	if _, err := store.Append(ctx, domain.Stream, eventstore.NoStream, eventstore.EventData{Type: domain.TypeCheckpointSigned, Data: []byte(`{"number":1}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, ledger.StreamPrefix+"w", eventstore.NoStream, eventstore.EventData{Type: ledger.TypeWalletOpened, Data: []byte(`[1]`)}); err != nil {
		t.Fatal(err)
	}
	events, err := store.ReadAll(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	s := audit.NewSigner(store, audit.SignerOptions{Keys: k.get, Every: -1, Interval: -1})
	if err := s.Handle(ctx, events[0]); err != nil {
		t.Fatalf("unreadable checkpoint event: %v", err)
	}
	var snaps [][]byte
	for range 2 {
		if err := s.Handle(ctx, events[1]); err == nil {
			t.Fatal("an undecodable wallet event was folded")
		}
		snap, _ := s.Snapshot()
		snaps = append(snaps, snap)
	}
	if !bytes.Equal(snaps[0], snaps[1]) {
		t.Fatal("handing the failed event again changed the state")
	}
	want := audit.NewTally()
	for _, e := range events {
		want.Add(e)
	}
	restored := audit.NewTally()
	if err := restored.UnmarshalBinary(snaps[1][4:]); err != nil { // after the signer's 1-byte version and three 1-byte counters
		t.Fatal(err)
	}
	if restored.Chain != want.Chain {
		t.Fatalf("chain %+v, want %+v", restored.Chain, want.Chain)
	}
}

// BenchmarkSignerFold measures what the signer adds to every event the
// service writes: folding it into the tally (chain, stream head, books).
func BenchmarkSignerFold(b *testing.B) {
	ctx := context.Background()
	store, events := trafficStore(b, loadgen.WalletOptions{Events: 20_000, Wallets: 4, Accounts: 500})
	keys, _ := audit.NewKeyring(nil, time.Now())
	b.ResetTimer()
	for b.Loop() {
		s := audit.NewSigner(store, audit.SignerOptions{Keys: func() (*audit.Keyring, error) { return keys, nil }, Every: -1, Interval: -1})
		for _, e := range events {
			if err := s.Handle(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(events))/b.Elapsed().Seconds(), "events/s")
}
