package users

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/coinledger/coinledger/domain/identity"
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
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"}); err != nil {
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
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"}); err != nil {
		t.Fatal(err)
	}
}

func newWildcardService(t *testing.T) (*Service, eventstore.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "e.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return New(store, 4), store
}

// TestGrapheneWildcardLeastPrivilege: the "*" entry of the seed allows
// network_broadcast_api, which maps to transfer and withdraw; imported
// without a flag the "*" user reads only, with WildcardWrites it gets
// what its API sets map to.
func TestGrapheneWildcardLeastPrivilege(t *testing.T) {
	ctx := context.Background()
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		writes bool
		want   []string
	}{
		{false, []string{"read"}},
		{true, []string{"read", "address", "transfer", "withdraw"}},
	} {
		s, _ := newWildcardService(t)
		r, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot", WildcardWrites: tc.writes})
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.Authenticate(ctx, "whoever", "anything")
		if err != nil || u.Username != Anonymous {
			t.Fatalf("writes=%v: unknown user: %v %v", tc.writes, u, err)
		}
		if got := u.WalletPermissions("hot"); !slices.Equal(got, tc.want) || !slices.Equal(r.WildcardPermissions, tc.want) {
			t.Errorf("writes=%v: * user holds %v (report %v), want %v", tc.writes, got, r.WildcardPermissions, tc.want)
		}
		// Re-running the import brings the grant in line with the flag.
		r, err = s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"})
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := s.Get(ctx, Anonymous); !slices.Equal(u.WalletPermissions("hot"), []string{"read"}) {
			t.Errorf("re-import without the flag leaves %v", u.WalletPermissions("hot"))
		}
	}
}

// TestHandMadeAnonymousIsNotTheWildcard: registering a user named
// anonymous does not switch the fallback on, and an import does not take
// such a user over.
func TestHandMadeAnonymousIsNotTheWildcard(t *testing.T) {
	ctx := context.Background()
	s, _ := newWildcardService(t)
	if err := s.Register(ctx, eventstore.Metadata{}, Anonymous, "", "password-anon", nil); err != nil {
		t.Fatal(err)
	}
	for _, password := range []string{"password-anon", "anything"} {
		if _, err := s.Authenticate(ctx, "whoever", password); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("unknown user with %q falls back to a hand-made anonymous: %v", password, err)
		}
	}
	if tg, err := s.LoginTarget(ctx, "whoever"); err != nil || tg != (LoginTarget{Account: "whoever"}) {
		t.Fatalf("login target %+v %v", tg, err)
	}
	// The user itself logs in as usual.
	if u, err := s.Authenticate(ctx, Anonymous, "password-anon"); err != nil || u.Wildcard() {
		t.Fatalf("anonymous by name: %v %v", u, err)
	}
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Wildcard != nil || !slices.Contains(r.Skipped, Skipped{"*", SkipAnonymousTaken}) {
		t.Fatalf("report %+v", r)
	}
	if _, err := s.Authenticate(ctx, "whoever", "anything"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("the import took the hand-made anonymous over: %v", err)
	}
}

// TestWildcardImportedBeforeDesignation: an Anonymous user written by an
// import that predates WildcardDesignated is no wildcard until the import
// is run again, which designates it.
func TestWildcardImportedBeforeDesignation(t *testing.T) {
	ctx := context.Background()
	s, _ := newWildcardService(t)
	old := func(u *identity.User) ([]identity.Event, error) {
		return identity.Register(u, Anonymous, "", anyPassword, nil)
	}
	if err := s.update(ctx, eventstore.Metadata{}, Anonymous, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "whoever", "anything"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("undesignated anonymous: %v", err)
	}
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"}); err != nil || r.Wildcard == nil {
		t.Fatalf("re-import: %+v %v", r, err)
	}
	if u, err := s.Authenticate(ctx, "whoever", "anything"); err != nil || u.Username != Anonymous {
		t.Fatalf("after re-import: %v %v", u, err)
	}
}

// TestWildcardLoginTarget: logins with made-up usernames count against
// the wildcard user; a disabled wildcard user is no fallback.
func TestWildcardLoginTarget(t *testing.T) {
	ctx := context.Background()
	s, _ := newWildcardService(t)
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]LoginTarget{
		"whoever":    {Account: Anonymous, Wildcard: true},
		"Not Valid!": {Account: Anonymous, Wildcard: true},
		Anonymous:    {Account: Anonymous, Wildcard: true},
		"bytemaster": {Account: "bytemaster"},
	} {
		if got, err := s.LoginTarget(ctx, name); err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", name, got, err, want)
		}
	}
	if err := s.Disable(ctx, eventstore.Metadata{}, Anonymous); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.LoginTarget(ctx, "whoever"); got != (LoginTarget{Account: "whoever"}) {
		t.Errorf("disabled wildcard: %+v", got)
	}
	if _, err := s.Authenticate(ctx, "whoever", "anything"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("disabled wildcard still a fallback: %v", err)
	}
}

// TestGrapheneImportKeepsAPISets: imported users, the "*" user included,
// keep their allowed_apis as their API sets; a user registered otherwise
// has none (not limited by API set).
func TestGrapheneImportKeepsAPISets(t *testing.T) {
	ctx := context.Background()
	s, _ := newWildcardService(t)
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportGraphene(ctx, eventstore.Metadata{}, m, ImportOptions{Wallet: "hot"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Register(ctx, eventstore.Metadata{}, "carol", "", "password-carol", nil); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"bytemaster": {"database_api", "history_api", "network_broadcast_api", "network_node_api"},
		Anonymous:    {"database_api", "history_api", "network_broadcast_api"},
		"carol":      nil,
	} {
		u, err := s.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.APISets(); !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("%s: api sets %v, want %v", name, got, want)
		}
	}
}
