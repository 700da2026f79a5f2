package users_test

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"golang.org/x/crypto/bcrypt"
)

// TestUserSnapshotsAreSealedAndLoadTheTail: with a snapshot every 5
// events, a user of 13 events is snapshotted at 10; the snapshot holds no
// password hash, API key hash or refresh token id in the clear; a new
// service's cold load (token check, Get) reads the snapshot's event and
// the 3-event tail and sees the same user as a full fold.
func TestUserSnapshotsAreSealedAndLoadTheTail(t *testing.T) {
	e := newEnv(t)
	snaps := eventstore.NewMemorySnapshots()
	withSnapshots := func(store eventstore.Store) *users.Service {
		return users.NewWithOptions(store, users.Options{BcryptCost: bcrypt.MinCost, Now: e.clock.Now, Keyring: e.keys,
			Snapshots: snaps, SnapshotEvery: 5})
	}
	svc := withSnapshots(e.store)
	if err := svc.Register(ctx, admin, "alice", "", "password-alice", nil); err != nil {
		t.Fatal(err)
	}
	_, _, err := svc.IssueAPIKey(ctx, admin, "alice", "bot", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := t0.Add(4 * time.Hour)
	if err := svc.StartSession(ctx, admin, "alice", "fam-1", "refresh-token-id-0", exp); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ { // 13 events in all
		if err := svc.Rotate(ctx, admin, "alice", "fam-1", fmt.Sprintf("refresh-token-id-%d", i-1), fmt.Sprintf("refresh-token-id-%d", i), exp); err != nil {
			t.Fatal(err)
		}
	}
	svc.WaitSnapshots()
	snap, ok, err := snaps.Load(ctx, identity.Stream("alice"))
	if err != nil || !ok || snap.Version != 9 || snap.Schema != identity.SnapshotSchema {
		t.Fatalf("snapshot at %d (%s), %v, %v; want one at revision 9", snap.Version, snap.Schema, ok, err)
	}
	full, err := e.fresh().Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	for what, secret := range map[string]string{
		"password hash": full.PasswordHash,
		"api key hash":  full.APIKeys()[0].Hash,
		"refresh token": "refresh-token-id-",
		"username":      "alice",
	} {
		if bytes.Contains(snap.Data, []byte(secret)) {
			t.Errorf("the snapshot holds the %s in the clear", what)
		}
	}

	counting := &storetest.ReadCounter{Store: e.store}
	cold := withSnapshots(counting)
	if _, err := cold.TokenAccess(ctx, "alice", t0.Add(time.Minute), "fam-1"); err != nil {
		t.Fatal(err)
	}
	if got := counting.Read(); got != 1+3 {
		t.Fatalf("cold token check read %d events, want 4 (the snapshot's event and the 3-event tail)", got)
	}
	counting.Reset()
	got, err := cold.Get(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, full) {
		t.Fatalf("from the snapshot %+v, full fold %+v", got, full)
	}
	if counting.Read() > 1+3 {
		t.Fatalf("Get read %d events", counting.Read())
	}
}
