package users_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"golang.org/x/crypto/bcrypt"
)

var (
	ctx   = context.Background()
	t0    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	admin = eventstore.Metadata{Actor: "user:admin"}
)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

type env struct {
	tb    testing.TB
	store *sqlite.Store
	svc   *users.Service
	clock *clock
	keys  *seal.Keyring // the seal key every service of the env shares
}

// newEnv returns a service over a fresh SQLite event store in a temp dir.
func newEnv(t testing.TB) *env {
	t.Helper()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := &env{tb: t, store: store, clock: &clock{now: t0}, keys: seal.Random()}
	e.svc = e.fresh()
	return e
}

// fresh returns another service over the same store, as a restart or a
// second instance would see it: its user directory is fed by a runner of
// its own.
func (e *env) fresh() *users.Service {
	dir := users.NewDirectory(e.keys)
	return users.NewWithOptions(e.store, users.Options{BcryptCost: bcrypt.MinCost, Now: e.clock.Now, Keyring: e.keys,
		Directory: dir, DirectoryAt: follow(e.tb, e.store, filepath.Join(e.tb.TempDir(), "readmodels.db"), dir, projections.Options{}),
		SharedStore: true})
}

func (e *env) mustRegister(t testing.TB, name string, roles ...string) {
	t.Helper()
	if err := e.svc.Register(ctx, admin, name, "", "password-"+name, roles); err != nil {
		t.Fatal(err)
	}
}

func (e *env) mustGet(t testing.TB, name string) *identity.User {
	t.Helper()
	u, err := e.fresh().Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// stream returns the stored events of user name.
func (e *env) stream(t testing.TB, name string) []eventstore.Event {
	t.Helper()
	events, err := e.store.ReadStream(ctx, identity.Stream(name), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func types(events []eventstore.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type)
	}
	return out
}

func TestRegisterAuthenticate(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	if u, err := e.svc.Authenticate(ctx, "alice", "password-alice"); err != nil || u.Username != "alice" {
		t.Fatalf("login: %v %v", u, err)
	}
	for _, tc := range [][2]string{{"alice", "wrong"}, {"bob", "password-alice"}, {"Alice!", "x"}, {"", ""}} {
		if _, err := e.svc.Authenticate(ctx, tc[0], tc[1]); !errors.Is(err, users.ErrBadCredentials) {
			t.Errorf("login %q/%q: err %v", tc[0], tc[1], err)
		}
	}
	if err := e.svc.Register(ctx, admin, "alice", "", "password-2", nil); !errors.Is(err, identity.ErrUserExists) {
		t.Fatalf("register twice: %v", err)
	}
}

func TestDisabledUserCannotLogIn(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	if err := e.svc.Grant(ctx, admin, "alice", "main", []string{"read"}); err != nil {
		t.Fatal(err)
	}
	_, secret, err := e.svc.IssueAPIKey(ctx, admin, "alice", "bot", nil, []identity.WalletGrant{{Wallet: "main", Permissions: []string{"read"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.StartSession(ctx, admin, "alice", "f1", "t1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if err := e.svc.Disable(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if !e.mustGet(t, "alice").Disabled() {
		t.Fatal("not disabled")
	}
	// The right password learns that the user is disabled; a wrong one
	// learns nothing.
	if _, err := e.svc.Authenticate(ctx, "alice", "password-alice"); !errors.Is(err, identity.ErrUserDisabled) ||
		errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("disabled user logs in: %v", err)
	}
	if _, err := e.svc.Authenticate(ctx, "alice", "wrong-password"); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("disabled user, wrong password: %v", err)
	}
	if _, _, err := e.svc.AuthenticateAPIKey(ctx, secret); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("disabled user's api key works: %v", err)
	}
	if err := e.svc.StartSession(ctx, admin, "alice", "f2", "t1", t0.Add(time.Hour)); !errors.Is(err, identity.ErrUserDisabled) {
		t.Fatalf("disabled user starts a session: %v", err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "t2", t0.Add(time.Hour)); !errors.Is(err, identity.ErrUserDisabled) ||
		!errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("disabled user refreshes: %v", err)
	}
	// Disabling again appends nothing; enabling restores logins.
	before := len(e.stream(t, "alice"))
	if err := e.svc.Disable(ctx, admin, "alice"); err != nil || len(e.stream(t, "alice")) != before {
		t.Fatalf("second disable: %v", err)
	}
	if err := e.svc.Enable(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Authenticate(ctx, "alice", "password-alice"); err != nil {
		t.Fatalf("enabled user: %v", err)
	}
	// Disabling ended every credential for good: enabling brings back
	// neither the API key, nor the refresh family, nor tokens issued before.
	if _, _, err := e.svc.AuthenticateAPIKey(ctx, secret); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("api key of before the disable works again: %v", err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "t3", e.clock.Now().Add(time.Hour)); !errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("refresh family of before the disable works again: %v", err)
	}
	if _, err := e.svc.TokenAccess(ctx, "alice", t0, ""); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("token of before the disable works again: %v", err)
	}
	if _, err := e.svc.TokenAccess(ctx, "alice", e.clock.Now(), ""); err != nil {
		t.Fatalf("token issued after enabling: %v", err)
	}
	if err := e.svc.Disable(ctx, admin, "nobody"); !errors.Is(err, identity.ErrUserNotFound) {
		t.Fatalf("disable unknown: %v", err)
	}
}

func TestRefreshRotation(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	exp := func() time.Time { return e.clock.Now().Add(4 * time.Hour) }
	if err := e.svc.StartSession(ctx, admin, "alice", "f1", "t1", exp()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Minute)
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "t2", exp()); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(30 * time.Minute)
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t2", "t3", exp()); err != nil {
		t.Fatal(err)
	}
	f, ok := e.mustGet(t, "alice").Family("f1")
	if !ok || f.Current != "t3" || f.Rotations != 2 || !reflect.DeepEqual(f.Spent, []string{"t1", "t2"}) ||
		!f.ExpiresAt.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("family %+v", f)
	}
	// Unknown family, a token never issued, and an expired token are invalid
	// and change nothing.
	n := len(e.stream(t, "alice"))
	for _, tc := range [][2]string{{"f2", "t3"}, {"f1", "zzz"}} {
		if err := e.svc.Rotate(ctx, admin, "alice", tc[0], tc[1], "t9", exp()); !errors.Is(err, identity.ErrRefreshInvalid) ||
			errors.Is(err, identity.ErrRefreshReused) {
			t.Errorf("rotate %v: %v", tc, err)
		}
	}
	e.clock.Advance(4 * time.Hour)
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t3", "t4", exp()); !errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	if len(e.stream(t, "alice")) != n {
		t.Fatal("refused rotations appended events")
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	exp := t0.Add(4 * time.Hour)
	if err := e.svc.StartSession(ctx, admin, "alice", "f1", "t1", exp); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.StartSession(ctx, admin, "alice", "f2", "u1", exp); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "t2", exp); err != nil {
		t.Fatal(err)
	}
	// A thief replays t1.
	err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "x2", exp)
	if !errors.Is(err, identity.ErrRefreshReused) || !errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("reuse: %v", err)
	}
	// The revocation is in the store although an error was returned.
	events := e.stream(t, "alice")
	last := events[len(events)-1]
	var revoked identity.RefreshFamilyRevoked
	if last.Type != identity.TypeRefreshFamilyRevoked || json.Unmarshal(last.Data, &revoked) != nil ||
		revoked != (identity.RefreshFamilyRevoked{Family: "f1", Reason: identity.RevokedReuse}) {
		t.Fatalf("last event %s %s", last.Type, last.Data)
	}
	if f, _ := e.mustGet(t, "alice").Family("f1"); f.RevokedReason != identity.RevokedReuse {
		t.Fatalf("family %+v", f)
	}
	// The owner's current token is dead too; the other family lives.
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t2", "t3", exp); !errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("current token of a revoked family: %v", err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f2", "u1", "u2", exp); err != nil {
		t.Fatalf("other family: %v", err)
	}
	// Replaying again revokes nothing more.
	n := len(e.stream(t, "alice"))
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "t1", "x3", exp); !errors.Is(err, identity.ErrRefreshInvalid) ||
		errors.Is(err, identity.ErrRefreshReused) || len(e.stream(t, "alice")) != n {
		t.Fatalf("replay on a revoked family: %v", err)
	}
}

// Two clients race with the same refresh token: one wins, the other is a
// reuse (after the conflict retry it sees the token spent) and the family
// ends.
func TestRefreshRace(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	exp := t0.Add(4 * time.Hour)
	if err := e.svc.StartSession(ctx, admin, "alice", "f1", "t1", exp); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = e.svc.Rotate(ctx, admin, "alice", "f1", "t1", []string{"a", "b"}[i], exp) })
	}
	wg.Wait()
	ok, reused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, identity.ErrRefreshReused):
			reused++
		default:
			t.Fatalf("unexpected %v", err)
		}
	}
	if ok != 1 || reused != 1 {
		t.Fatalf("results %v", errs)
	}
	if f, _ := e.mustGet(t, "alice").Family("f1"); f.RevokedReason != identity.RevokedReuse {
		t.Fatalf("family %+v", f)
	}
}

func TestLogoutAndRevokeSessions(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	exp := t0.Add(4 * time.Hour)
	for _, f := range []string{"f1", "f2", "f3"} {
		if err := e.svc.StartSession(ctx, admin, "alice", f, f+".1", exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.Logout(ctx, admin, "alice", "f1"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Logout(ctx, admin, "alice", "f1"); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f1", "f1.1", "f1.2", exp); !errors.Is(err, identity.ErrRefreshInvalid) {
		t.Fatalf("logged out family rotates: %v", err)
	}
	e.clock.Advance(time.Minute)
	if err := e.svc.RevokeSessions(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	u := e.mustGet(t, "alice")
	if !u.SessionsRevokedAt().Equal(t0.Add(time.Minute)) || u.TokenValid(t0) || !u.TokenValid(t0.Add(time.Minute)) {
		t.Fatalf("revoked at %v", u.SessionsRevokedAt())
	}
	for _, f := range []string{"f2", "f3"} {
		if err := e.svc.Rotate(ctx, admin, "alice", f, f+".1", f+".2", exp); !errors.Is(err, identity.ErrRefreshInvalid) {
			t.Fatalf("family %s survives revoke-sessions: %v", f, err)
		}
	}
	// A login after the revocation works.
	if err := e.svc.StartSession(ctx, admin, "alice", "f4", "f4.1", exp); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Rotate(ctx, admin, "alice", "f4", "f4.1", "f4.2", exp); err != nil {
		t.Fatal(err)
	}
}

func TestGrantsAndRoles(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	if err := e.svc.Grant(ctx, admin, "alice", "main", []string{"withdraw", "read"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Grant(ctx, admin, "alice", "cold", []string{"read"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Revoke(ctx, admin, "alice", "cold"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Grant(ctx, admin, "alice", "main", []string{"fly"}); !errors.Is(err, identity.ErrValidation) {
		t.Fatalf("bad permission: %v", err)
	}
	if err := e.svc.SetRoles(ctx, admin, "alice", []string{identity.RoleAuditor}); err != nil {
		t.Fatal(err)
	}
	u := e.mustGet(t, "alice")
	if !reflect.DeepEqual(u.Grants(), map[string][]string{"main": {"read", "withdraw"}}) || !u.HasRole(identity.RoleAuditor) {
		t.Fatalf("grants %v roles %v", u.Grants(), u.Roles)
	}
	if err := e.svc.Grant(ctx, admin, "nobody", "main", []string{"read"}); !errors.Is(err, identity.ErrUserNotFound) {
		t.Fatalf("grant to unknown: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "alice")
	e.mustRegister(t, "root", identity.RoleAdmin)
	if err := e.svc.Grant(ctx, admin, "alice", "main", []string{"read", "transfer"}); err != nil {
		t.Fatal(err)
	}
	wallets := func(w string, perms ...string) []identity.WalletGrant {
		return []identity.WalletGrant{{Wallet: w, Permissions: perms}}
	}
	// The subset rule.
	for name, tc := range map[string]struct {
		roles   []string
		wallets []identity.WalletGrant
	}{
		"permission beyond the grant": {nil, wallets("main", "read", "withdraw")},
		"wallet without a grant":      {nil, wallets("cold", "read")},
		"role the owner lacks":        {[]string{identity.RoleAdmin}, nil},
	} {
		if _, _, err := e.svc.IssueAPIKey(ctx, admin, "alice", "bot", tc.roles, tc.wallets); !errors.Is(err, identity.ErrExceedsOwner) {
			t.Errorf("%s: %v", name, err)
		}
	}
	key, secret, err := e.svc.IssueAPIKey(ctx, admin, "alice", "bot", nil, wallets("main", "transfer", "read"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "clk_") || len(secret) != 4+43 || key.Hash != users.HashAPIKey(secret) ||
		!reflect.DeepEqual(key.Wallets, wallets("main", "read", "transfer")) || !key.IssuedAt.Equal(t0) {
		t.Fatalf("key %+v secret %q", key, secret)
	}
	if _, _, err := e.svc.IssueAPIKey(ctx, admin, "root", "ops", []string{identity.RoleAdmin}, wallets("any", "withdraw")); err != nil {
		t.Fatalf("admin key: %v", err)
	}
	// Only the hash is stored.
	for _, ev := range e.stream(t, "alice") {
		if strings.Contains(string(ev.Data), strings.TrimPrefix(secret, "clk_")) {
			t.Fatalf("secret stored in %s", ev.Type)
		}
	}
	// The key authenticates, also on a fresh instance (index caught up from the log).
	for name, svc := range map[string]*users.Service{"issuer": e.svc, "fresh": e.fresh()} {
		owner, k, err := svc.AuthenticateAPIKey(ctx, secret)
		if err != nil || owner != "alice" || k.ID != key.ID {
			t.Fatalf("%s: %v %+v", name, err, k)
		}
	}
	// Narrowing the owner's grant narrows the key.
	if err := e.svc.Grant(ctx, admin, "alice", "main", []string{"read"}); err != nil {
		t.Fatal(err)
	}
	if _, k, _ := e.svc.AuthenticateAPIKey(ctx, secret); !reflect.DeepEqual(k.Wallets, wallets("main", "read")) {
		t.Fatalf("effective key %+v", k)
	}
	for _, bad := range []string{"", "clk_", "clk_" + strings.Repeat("A", 43), secret + "x", strings.TrimPrefix(secret, "clk_"), "Bearer " + secret} {
		if _, _, err := e.svc.AuthenticateAPIKey(ctx, bad); !errors.Is(err, users.ErrBadCredentials) {
			t.Errorf("secret %q: %v", bad, err)
		}
	}
	if err := e.svc.RevokeAPIKey(ctx, admin, "alice", key.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.AuthenticateAPIKey(ctx, secret); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("revoked key works: %v", err)
	}
	if err := e.svc.RevokeAPIKey(ctx, admin, "alice", key.ID); !errors.Is(err, identity.ErrAPIKeyNotFound) {
		t.Fatalf("revoke twice: %v", err)
	}
}

// seedMap is Graphene's documented example: bytemaster's password is
// "supersecret"; "*" lets anyone use the public APIs.
const seedMap = `{"permission_map": [
  ["bytemaster", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=", "password_salt_b64": "INDdM6iCi/8=",
                  "allowed_apis": ["database_api", "network_broadcast_api", "history_api", "network_node_api"]}],
  ["Viewer", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=", "password_salt_b64": "INDdM6iCi/8=",
                  "allowed_apis": ["database_api"]}],
  ["open", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["database_api"]}],
  ["node", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=", "password_salt_b64": "INDdM6iCi/8=",
                  "allowed_apis": ["crypto_api"]}],
  ["*", {"password_hash_b64": "*", "password_salt_b64": "*", "allowed_apis": ["database_api", "network_broadcast_api", "history_api"]}]
]}`

func TestImportGrapheneAndLegacyUpgrade(t *testing.T) {
	e := newEnv(t)
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	meta := eventstore.Metadata{Actor: "system:import"}
	if _, err := e.svc.ImportGraphene(ctx, meta, m, users.ImportOptions{Wallet: "bad wallet"}); !errors.Is(err, identity.ErrValidation) {
		t.Fatalf("bad wallet: %v", err)
	}
	r, err := e.svc.ImportGraphene(ctx, meta, m, users.ImportOptions{Wallet: "main"})
	if err != nil {
		t.Fatal(err)
	}
	wantSkipped := []users.Skipped{{"Viewer", users.SkipInvalidUsername}, {"open", users.SkipAnyPassword}}
	if !reflect.DeepEqual(r.Imported, []string{"bytemaster", "node"}) || !reflect.DeepEqual(r.Skipped, wantSkipped) ||
		r.Wildcard == nil || r.Wildcard.Username != "*" {
		t.Fatalf("report %+v", r)
	}
	u := e.mustGet(t, "bytemaster")
	if !graphene.IsLegacyMarker(u.PasswordHash) || len(u.Roles) != 0 ||
		!reflect.DeepEqual(u.Grants(), map[string][]string{"main": {"read", "address", "transfer", "withdraw", "rescan"}}) {
		t.Fatalf("imported %+v grants %v", u, u.Grants())
	}
	if len(e.mustGet(t, "node").Grants()) != 0 {
		t.Fatal("crypto_api granted something")
	}
	// Re-running the import skips what exists.
	if r, err := e.svc.ImportGraphene(ctx, meta, m, users.ImportOptions{Wallet: "main"}); err != nil || len(r.Imported) != 0 || len(r.Skipped) != 4 ||
		r.Skipped[0] != (users.Skipped{"bytemaster", users.SkipExists}) {
		t.Fatalf("re-import %+v %v", r, err)
	}

	// A wrong password neither logs in nor upgrades.
	if _, err := e.svc.Authenticate(ctx, "bytemaster", "supersecreT"); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	n := len(e.stream(t, "bytemaster"))
	// First login: legacy check, then the hash is upgraded to bcrypt.
	got, err := e.svc.Authenticate(ctx, "bytemaster", "supersecret")
	if err != nil || !strings.HasPrefix(got.PasswordHash, "$2") {
		t.Fatalf("first login: %v %q", err, got.PasswordHash)
	}
	events := e.stream(t, "bytemaster")
	if len(events) != n+1 || events[n].Type != identity.TypePasswordChanged || events[n].Metadata.Actor != "user:bytemaster" {
		t.Fatalf("events after first login: %v", types(events))
	}
	stored := e.mustGet(t, "bytemaster")
	if graphene.IsLegacyMarker(stored.PasswordHash) || bcrypt.CompareHashAndPassword([]byte(stored.PasswordHash), []byte("supersecret")) != nil {
		t.Fatalf("stored hash %q", stored.PasswordHash)
	}
	// Second login: bcrypt, nothing appended; the old password still works, others do not.
	if _, err := e.svc.Authenticate(ctx, "bytemaster", "supersecret"); err != nil {
		t.Fatalf("second login: %v", err)
	}
	if _, err := e.svc.Authenticate(ctx, "bytemaster", "wrong"); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("wrong password after upgrade: %v", err)
	}
	if len(e.stream(t, "bytemaster")) != n+1 {
		t.Fatalf("second login appended: %v", types(e.stream(t, "bytemaster")))
	}
}

func TestLegacyUpgradeOfLongAndShortPasswords(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("correct horse battery staple ", 4) // 116 bytes: too long for bcrypt
	doc := func(user, password string) string {
		salt := []byte("12345678")
		return `["` + user + `", {"password_hash_b64": "` + hashB64(password, salt) + `", "password_salt_b64": "MTIzNDU2Nzg=", "allowed_apis": []}]`
	}
	m, err := graphene.Parse([]byte(`{"permission_map": [` + doc("long", long) + `,` + doc("short", "abc") + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ImportGraphene(ctx, admin, m, users.ImportOptions{Wallet: "main"}); err != nil {
		t.Fatal(err)
	}
	for user, password := range map[string]string{"long": long, "short": "abc"} {
		for i := range 2 {
			if _, err := e.svc.Authenticate(ctx, user, password); err != nil {
				t.Fatalf("%s login %d: %v", user, i, err)
			}
		}
		if _, err := e.svc.Authenticate(ctx, user, password[:len(password)-1]); !errors.Is(err, users.ErrBadCredentials) {
			t.Fatalf("%s: prefix of the password accepted: %v", user, err)
		}
	}
	if h := e.mustGet(t, "long").PasswordHash; !strings.HasPrefix(h, "$argon2id$v=19$") {
		t.Fatalf("long password hash %q", h)
	}
	if h := e.mustGet(t, "short").PasswordHash; !strings.HasPrefix(h, "$2") {
		t.Fatalf("short password hash %q", h)
	}
}

// Concurrent first logins upgrade the hash once.
func TestLegacyUpgradeRace(t *testing.T) {
	e := newEnv(t)
	m, err := graphene.Parse([]byte(seedMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ImportGraphene(ctx, admin, m, users.ImportOptions{Wallet: "main"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := e.svc.Authenticate(ctx, "bytemaster", "supersecret"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	changed := 0
	for _, ev := range e.stream(t, "bytemaster") {
		if ev.Type == identity.TypePasswordChanged {
			changed++
		}
	}
	if changed != 1 {
		t.Fatalf("%d password changes, want 1", changed)
	}
}

func TestBootstrapAdmin(t *testing.T) {
	e := newEnv(t)
	if _, err := e.svc.BootstrapAdmin(ctx, "", func(string) error { return errors.New("disk full") }); err == nil {
		t.Fatal("bootstrap went on although the generated password could not be kept")
	}
	if _, err := e.svc.Authenticate(ctx, "admin", ""); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("admin registered although its password was lost: %v", err)
	}
	var kept string
	generated, err := e.svc.BootstrapAdmin(ctx, "", func(p string) error { kept = p; return nil })
	if err != nil || len(generated) != 24 || kept != generated {
		t.Fatalf("generated %q kept %q %v", generated, kept, err)
	}
	if _, err := e.svc.Authenticate(ctx, "admin", generated); err != nil {
		t.Fatal(err)
	}
	if g, err := e.svc.BootstrapAdmin(ctx, "new-password", nil); err != nil || g != "" {
		t.Fatal(g, err)
	}
	if u, err := e.svc.Authenticate(ctx, "admin", "new-password"); err != nil || !u.HasRole(identity.RoleAdmin) {
		t.Fatal(err)
	}
}

// hashB64 is Graphene's password hash: base64(SHA-256(password ‖ salt)).
func hashB64(password string, salt []byte) string {
	sum := sha256.Sum256(append([]byte(password), salt...))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestExclusiveStoreChecksSeeOwnWritesAtOnce: a service whose store is its
// own (SharedStore false, as the embedded store is) reads token and key
// checks from the directory and sees each of its own writes on the very
// next check (revocation, disable, key revocation), while appends to other
// streams never make a check wait; users written before it started count
// from its first check.
func TestExclusiveStoreChecksSeeOwnWritesAtOnce(t *testing.T) {
	e := newEnv(t)
	e.mustRegister(t, "bob") // before the service below started
	dir := users.NewDirectory(e.keys)
	at := follow(t, e.store, filepath.Join(t.TempDir(), "readmodels.db"), dir, projections.Options{})
	var waited atomic.Int64
	svc := users.NewWithOptions(e.store, users.Options{BcryptCost: bcrypt.MinCost, Now: e.clock.Now, Keyring: e.keys,
		Directory: dir, DirectoryAt: func(ctx context.Context, pos uint64) error {
			waited.Store(int64(pos))
			return at(ctx, pos)
		}})
	if _, err := svc.TokenAccess(ctx, "bob", t0, ""); err != nil {
		t.Fatalf("bob, registered before the start: %v", err)
	}
	if err := svc.Register(ctx, admin, "alice", "", "password-alice", nil); err != nil {
		t.Fatal(err)
	}
	_, secret, err := svc.IssueAPIKey(ctx, admin, "alice", "bot", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := e.store.Append(ctx, "other-stream", eventstore.Any, eventstore.EventData{Type: "test.noise", Data: []byte(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.TokenAccess(ctx, "alice", t0, ""); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	head, _ := e.store.Head(ctx)
	if w := uint64(waited.Load()); w >= head {
		t.Errorf("checks waited for position %d, the head (%d) moved only by other streams", w, head)
	}
	if _, err := svc.KeyAccess(ctx, secret); err != nil {
		t.Fatalf("key: %v", err)
	}
	e.clock.Advance(time.Minute)
	if err := svc.RevokeSessions(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.TokenAccess(ctx, "alice", t0, ""); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("token issued before the revocation: %v", err)
	}
	if err := svc.Disable(ctx, admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.KeyAccess(ctx, secret); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("key of a disabled user: %v", err)
	}
	if _, err := svc.TokenAccess(ctx, "alice", t0.Add(2*time.Minute), ""); !errors.Is(err, users.ErrBadCredentials) {
		t.Fatalf("token of a disabled user: %v", err)
	}
	// Every check above was answered by the directory, none by a read of
	// the user's stream.
	if n := users.StreamReads(svc); n != 0 {
		t.Errorf("%d checks read the user's stream: the directory was not current", n)
	}
}
