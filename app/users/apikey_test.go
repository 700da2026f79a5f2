package users_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
)

// follow runs a projection runner for f over a read-model database at
// path, fed from store, until the test ends, and returns the wiring's port
// for it (the runner's WaitFor).
func follow(tb testing.TB, store eventstore.Store, path string, f projections.Follower, opts projections.Options) func(context.Context, uint64) error {
	tb.Helper()
	at, _ := dbtest.RunFollowerAt(tb, store, path, f, opts)
	return at
}

// counted counts the events a follower is handed that it wants (the
// others come and go with the batches they share).
type counted struct {
	*users.Directory
	handled atomic.Int64
}

func (c *counted) Handle(ctx context.Context, e eventstore.Event) error {
	if c.Wants(e) {
		c.handled.Add(1)
	}
	return c.Directory.Handle(ctx, e)
}

// keyedLog registers users and issues and revokes keys in e's store; it
// returns the secrets issued and the whole log.
func keyedLog(t *testing.T, e *env) ([]string, []eventstore.Event) {
	t.Helper()
	e.mustRegister(t, "alice")
	e.mustRegister(t, "bob")
	e.mustRegister(t, "root", identity.RoleAdmin)
	var secrets []string
	for _, owner := range []string{"alice", "bob", "alice", "root", "bob"} {
		k, secret, err := e.svc.IssueAPIKey(ctx, admin, owner, "bot", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, secret)
		if owner == "bob" && len(secrets) == 2 {
			if err := e.svc.RevokeAPIKey(ctx, admin, owner, k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	events, err := e.store.ReadAll(ctx, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	return secrets, events
}

// sameLookups fails unless got finds the owner want finds for each secret.
func sameLookups(t *testing.T, what string, got, want *users.Directory, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		go1, ok1 := users.LookupAPIKey(got, s)
		want1, ok2 := users.LookupAPIKey(want, s)
		if go1 != want1 || ok1 != ok2 {
			t.Fatalf("%s: key %d: owner %q %v, full fold %q %v", what, len(s), go1, ok1, want1, ok2)
		}
	}
}

// TestDirectorySnapshotRoundTrip: for every cut of the log, the directory
// folded up to the cut, snapshotted, restored into a new index and fed the
// rest finds the same owners as a full fold; Restore(nil) empties it; a
// corrupt snapshot or an event it cannot open is an error that leaves it
// as it was.
func TestDirectorySnapshotRoundTrip(t *testing.T) {
	e := newEnv(t)
	secrets, events := keyedLog(t, e)
	unknown := users.APIKeyPrefix + strings.Repeat("B", 43)
	probe := append(secrets, unknown)

	full := users.NewDirectory(e.keys)
	for _, ev := range events {
		if err := full.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range secrets {
		if _, ok := users.LookupAPIKey(full, s); !ok {
			t.Fatalf("full fold misses key %d", i)
		}
	}
	if _, ok := users.LookupAPIKey(full, unknown); ok {
		t.Fatal("full fold finds an unknown key")
	}

	for cut := 0; cut <= len(events); cut++ {
		before := users.NewDirectory(e.keys)
		for _, ev := range events[:cut] {
			if err := before.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		snap, err := before.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		after := users.NewDirectory(e.keys)
		if err := after.Restore(snap); err != nil {
			t.Fatalf("cut %d: restore: %v", cut, err)
		}
		sameLookups(t, "restored", after, before, probe)
		for _, ev := range events[cut:] {
			if err := after.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		sameLookups(t, "restored and fed the rest", after, full, probe)
		for _, name := range []string{"alice", "bob", "root", "nobody"} {
			if got, want := users.UserSnapshot(after, name), users.UserSnapshot(full, name); !bytes.Equal(got, want) {
				t.Fatalf("cut %d: %s restored and fed the rest:\n%s\nfull fold:\n%s", cut, name, got, want)
			}
		}
	}

	snap, err := full.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for i, secret := range secrets {
		sum := sha256.Sum256([]byte(secret))
		if bytes.Contains(snap, sum[:]) || bytes.Contains(snap, []byte(hex.EncodeToString(sum[:]))) {
			t.Errorf("the snapshot shows the hash of key %d", i)
		}
	}
	x := users.NewDirectory(e.keys)
	if err := x.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if err := x.Restore(snap[:len(snap)-1]); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	sameLookups(t, "after a corrupt snapshot", x, full, probe)

	// An event sealed with a key this index lacks: an error, nothing changed.
	other := users.NewDirectory(seal.Random())
	var issued eventstore.Event
	for _, ev := range events {
		if ev.Type == identity.TypeAPIKeyIssued {
			issued = ev
		}
	}
	if err := other.Handle(ctx, issued); err == nil {
		t.Fatal("an event sealed with another key was handled")
	}
	if err := x.Handle(ctx, issued); err != nil {
		t.Fatal(err)
	}

	if err := x.Restore(nil); err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if _, ok := users.LookupAPIKey(x, s); ok {
			t.Fatalf("key %d found after Restore(nil)", i)
		}
	}
}

// TestJustIssuedAPIKeyAuthenticatesAtOnce: through a real runner on SQLite,
// a key authenticates right after IssueAPIKey returns, on the issuing
// service and on another instance over the same store; an unknown key is
// refused after the index caught up.
func TestJustIssuedAPIKeyAuthenticatesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	other := e.fresh()
	for i := range 20 {
		issuer, reader := e.svc, other
		if i%2 == 1 {
			issuer, reader = other, e.svc
		}
		key, secret, err := issuer.IssueAPIKey(ctx, admin, "alice", "bot", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, svc := range map[string]*users.Service{"issuer": issuer, "other instance": reader} {
			owner, k, err := svc.AuthenticateAPIKey(ctx, secret)
			if err != nil || owner != "alice" || k.ID != key.ID {
				t.Fatalf("key %d on the %s: %q %+v %v", i, name, owner, k, err)
			}
		}
	}
	if _, _, err := e.svc.AuthenticateAPIKey(ctx, users.APIKeyPrefix+strings.Repeat("C", 43)); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("unknown key: %v", err)
	}
}

// TestDirectoryRestartsFromItsSnapshot: a runner restarted over the same
// read-model database restores the index from its snapshot: it reads the
// log neither from position 0 nor again, handles nothing old, and the keys
// issued before the restart authenticate; a key issued after it is
// handled and found at once.
func TestDirectoryRestartsFromItsSnapshot(t *testing.T) {
	e := newEnv(t)
	secrets, events := keyedLog(t, e)
	counter := &storetest.LogCounter{Store: e.store}
	path := filepath.Join(t.TempDir(), "readmodels.db")
	opts := projections.Options{SnapshotEvery: 3}
	service := func(f *counted, at func(context.Context, uint64) error) *users.Service {
		return users.NewWithOptions(counter, users.Options{BcryptCost: bcrypt.MinCost, Now: e.clock.Now, Keyring: e.keys,
			Directory: f.Directory, DirectoryAt: at, SharedStore: true})
	}

	first := &counted{Directory: users.NewDirectory(e.keys)}
	at, stop := dbtest.RunFollowerAt(t, counter, path, first, opts)
	svc := service(first, at)
	if owner, _, err := svc.AuthenticateAPIKey(ctx, secrets[0]); err != nil || owner != "alice" {
		t.Fatalf("before the restart: %q %v", owner, err)
	}
	if got := first.handled.Load(); got != int64(len(events)) {
		t.Fatalf("first run handled %d user events, want %d", got, len(events))
	}
	stop()

	counter.Reset()
	second := &counted{Directory: users.NewDirectory(e.keys)}
	at, _ = dbtest.RunFollowerAt(t, counter, path, second, opts)
	svc = service(second, at)
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	head, err := e.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := at(waitCtx, head); err != nil {
		t.Fatal(err)
	}
	for i, s := range secrets {
		if owner, ok := users.LookupAPIKey(second.Directory, s); !ok || owner == "" {
			t.Fatalf("key %d not restored", i)
		}
	}
	if got := counter.FromStart(); got != 0 {
		t.Errorf("%d reads of the log from position 0 after the restart", got)
	}
	if got := second.handled.Load(); got != 0 {
		t.Errorf("after the restart %d old user events handled again", got)
	}
	if got := counter.Events(); got >= int64(len(events)) {
		t.Errorf("after the restart %d events read, the whole log is %d", got, len(events))
	}

	_, secret, err := e.svc.IssueAPIKey(ctx, admin, "alice", "late", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if owner, _, err := svc.AuthenticateAPIKey(ctx, secret); err != nil || owner != "alice" {
		t.Fatalf("key issued after the restart: %q %v", owner, err)
	}
	if got := second.handled.Load(); got != 1 {
		t.Errorf("after the restart %d user events handled, want the late key's", got)
	}
}
