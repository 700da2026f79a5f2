package identity

import (
	"reflect"
	"testing"
)

// TestUserSnapshotRoundTrip: at every point of a history touching every
// part of a user's state, the state decoded from its snapshot equals the
// state, and folding the rest of the history into it ends where the full
// fold does.
func TestUserSnapshotRoundTrip(t *testing.T) {
	history := []Event{
		root,
		RolesChanged{Roles: []string{RoleAdmin, RoleAuditor}},
		granted("main", "read", "transfer"),
		granted("other", "read"),
		WalletRevoked{Wallet: "other"},
		issued(key("k1", hashA, []string{RoleAuditor}, wg("main", "read"))),
		issued(key("k2", hashB, nil)),
		APIKeyRevoked{ID: "k1"},
		session("f1"),
		RefreshRotated{Family: "f1", OldTokenID: "f1.1", NewTokenID: "f1.2", At: at(10), ExpiresAt: at(250)},
		session("f2"),
		RefreshFamilyRevoked{Family: "f2", Reason: RevokedLogout},
		PasswordChanged{PasswordHash: "h2"},
		UserDisabled{},
		UserEnabled{},
		WildcardDesignated{},
		SessionsRevoked{At: at(20)},
	}
	full := given(history...)
	for cut := range len(history) + 1 {
		head := given(history[:cut]...)
		data, err := EncodeSnapshot(head)
		if err != nil {
			t.Fatal(err)
		}
		restored, err := DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(restored, head) {
			t.Fatalf("cut %d: restored %+v, encoded %+v", cut, restored, head)
		}
		for _, e := range history[cut:] {
			restored = Evolve(restored, e)
		}
		if !reflect.DeepEqual(restored, full) {
			t.Fatalf("cut %d: snapshot plus tail %+v, full fold %+v", cut, restored, full)
		}
	}
	if n := reflect.TypeOf(User{}).NumField(); n != reflect.TypeOf(userSnapshot{}).NumField() {
		t.Fatalf("User has %d fields, the snapshot %d: extend userSnapshot and bump SnapshotSchema", n, reflect.TypeOf(userSnapshot{}).NumField())
	}
}

func TestDecodeUserSnapshotRefusesDamage(t *testing.T) {
	if _, err := DecodeSnapshot([]byte(`{"registered":tr`)); err == nil {
		t.Fatal("decoded a damaged snapshot")
	}
}
