package users

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// The seed's example map: bytemaster with a real password, "*" with any.
const seedMap = `{"permission_map": [
  ["bytemaster", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
                  "password_salt_b64": "INDdM6iCi/8=",
                  "allowed_apis": ["database_api", "network_broadcast_api", "history_api", "network_node_api"]}],
  ["*", {"password_hash_b64": "*", "password_salt_b64": "*",
         "allowed_apis": ["database_api", "network_broadcast_api", "history_api"]}]
]}`

func TestGrapheneWildcardFallback(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := New(store, 4)
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, "hot"); err != nil {
		t.Fatal(err)
	}
	// The known user with the right password logs in as itself.
	u, err := s.Authenticate(ctx, "bytemaster", "supersecret")
	if err != nil || u.Username != "bytemaster" {
		t.Fatalf("bytemaster: %v %v", u, err)
	}
	// A known user with a wrong password does not fall back to "*".
	if _, err := s.Authenticate(ctx, "bytemaster", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("known user, wrong password: %v", err)
	}
	// An unknown user falls back to "*", which accepts any password.
	u, err = s.Authenticate(ctx, "whoever", "anything")
	if err != nil || u.Username != Anonymous {
		t.Fatalf("unknown user: %v %v", u, err)
	}
	if perms := u.WalletPermissions("hot"); len(perms) == 0 {
		t.Fatalf("anonymous has no grant on hot")
	}
	// Re-running the import changes nothing.
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, "hot"); err != nil {
		t.Fatal(err)
	}
}
