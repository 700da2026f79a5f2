package identity

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Test vocabulary: alice is a plain user, root an admin, pat a price feeder.

var (
	t0    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	alice = UserRegistered{Username: "alice", PasswordHash: "h"}
	root  = UserRegistered{Username: "root", PasswordHash: "h", Roles: []string{RoleAdmin}}
	pat   = UserRegistered{Username: "pat", PasswordHash: "h", Roles: []string{RolePriceFeeder, RoleAuditor}}
	hashA = strings.Repeat("a", 64)
	hashB = strings.Repeat("b", 64)
)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func given(events ...Event) *User {
	u := New()
	for _, e := range events {
		u = Evolve(u, e)
	}
	return u
}

func granted(wallet string, perms ...string) WalletGranted {
	return WalletGranted{Wallet: wallet, Permissions: perms}
}

func key(id, hash string, roles []string, wallets ...WalletGrant) APIKey {
	return APIKey{ID: id, Name: "bot " + id, Hash: hash, Roles: roles, Wallets: wallets, IssuedAt: t0}
}

func wg(wallet string, perms ...string) WalletGrant {
	return WalletGrant{Wallet: wallet, Permissions: perms}
}

func issued(k APIKey) APIKeyIssued {
	if k.Roles == nil {
		k.Roles = []string{}
	}
	if k.Wallets == nil {
		k.Wallets = []WalletGrant{}
	}
	return APIKeyIssued{ID: k.ID, Name: k.Name, Hash: k.Hash, Roles: k.Roles, Wallets: k.Wallets, At: k.IssuedAt}
}

// session: family f started at t0 with token f.1, expiring at t0+4h.
func session(f string) RefreshIssued {
	return RefreshIssued{Family: f, TokenID: f + ".1", At: t0, ExpiresAt: at(240)}
}

func rotated(f string, from, to int, min int) RefreshRotated {
	return RefreshRotated{Family: f, OldTokenID: fmt.Sprintf("%s.%d", f, from), NewTokenID: fmt.Sprintf("%s.%d", f, to),
		At: at(min), ExpiresAt: at(min + 240)}
}

func rotate(f, presented, next string, now time.Time) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) {
		d := Rotate(u, f, presented, next, now, now.Add(4*time.Hour))
		return d.Events, d.Err
	}
}

type decideCase struct {
	name  string
	given []Event
	when  func(*User) ([]Event, error)
	then  []Event
	err   []error // every one must match with errors.Is; nil: success
}

func runCases(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := given(tc.given...)
			events, err := tc.when(u)
			if len(tc.err) == 0 && err != nil {
				t.Fatalf("err %v, want none", err)
			}
			for _, want := range tc.err {
				if !errors.Is(err, want) {
					t.Fatalf("err %v, want %v", err, want)
				}
			}
			if len(events) != 0 || len(tc.then) != 0 {
				if !reflect.DeepEqual(events, tc.then) {
					t.Fatalf("events\n got %#v\nwant %#v", events, tc.then)
				}
			}
			for _, e := range events {
				Evolve(u, e) // must not panic
			}
		})
	}
}

func errs(e ...error) []error { return e }

func disable(now time.Time) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return Disable(u, now) }
}

// TestDisableEnable: disabling ends every credential at once — the user
// is disabled, every token issued before now is revoked and every active
// API key is revoked — so that enabling the user again brings none of them
// back.
func TestDisableEnable(t *testing.T) {
	k1, k2 := key("k1", hashA, nil), key("k2", hashB, nil)
	runCases(t, []decideCase{
		{"disable unknown user", nil, disable(t0), nil, errs(ErrUserNotFound)},
		{"disable", []Event{alice}, disable(at(5)), []Event{UserDisabled{}, SessionsRevoked{At: at(5)}}, nil},
		{"disable revokes every api key", []Event{alice, issued(k1), issued(k2)}, disable(at(5)),
			[]Event{UserDisabled{}, SessionsRevoked{At: at(5)}, APIKeyRevoked{ID: "k1"}, APIKeyRevoked{ID: "k2"}}, nil},
		{"disable without time", []Event{alice}, disable(time.Time{}), nil, errs(ErrValidation)},
		{"disable disabled: nothing", []Event{alice, UserDisabled{}}, disable(at(5)), nil, nil},
		{"enable unknown user", nil, Enable, nil, errs(ErrUserNotFound)},
		{"enable disabled", []Event{alice, UserDisabled{}}, Enable, []Event{UserEnabled{}}, nil},
		{"enable enabled: nothing", []Event{alice}, Enable, nil, nil},
		{"enable re-enabled: nothing", []Event{alice, UserDisabled{}, UserEnabled{}}, Enable, nil, nil},
	})
	u := given(alice, UserDisabled{})
	if !u.Disabled() || given(alice, UserDisabled{}, UserEnabled{}).Disabled() {
		t.Fatal("Disabled does not follow the events")
	}
	// Given a user with a session and a key, disabled and enabled again:
	// neither the old tokens, the old family nor the old key work.
	v := given(alice, session("f1"), issued(k1))
	events, err := Disable(v, at(10))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range append(events, UserEnabled{}) {
		Evolve(v, e)
	}
	if v.Disabled() || v.TokenValid(at(9)) || !v.TokenValid(at(10)) {
		t.Fatalf("after disable and enable: disabled %v, old token %v, new token %v", v.Disabled(), v.TokenValid(at(9)), v.TokenValid(at(10)))
	}
	if f, _ := v.Family("f1"); f.Live(at(11)) {
		t.Fatal("the refresh family survives disabling")
	}
	if _, ok := v.ActiveAPIKeyByHash(hashA); ok {
		t.Fatal("the api key survives disabling")
	}
}

// TestDesignateWildcard: only WildcardDesignated makes a user the "*"
// user; it may hold no role, before or after.
func TestDesignateWildcard(t *testing.T) {
	anon := UserRegistered{Username: "anonymous", PasswordHash: "h"}
	runCases(t, []decideCase{
		{"unknown user", nil, DesignateWildcard, nil, errs(ErrUserNotFound)},
		{"designate", []Event{anon}, DesignateWildcard, []Event{WildcardDesignated{}}, nil},
		{"again: nothing", []Event{anon, WildcardDesignated{}}, DesignateWildcard, nil, nil},
		{"a user with roles", []Event{root}, DesignateWildcard, nil, errs(ErrValidation)},
		{"no roles for the wildcard user", []Event{anon, WildcardDesignated{}}, setRoles(RoleAdmin), nil, errs(ErrValidation)},
		{"clearing roles is fine", []Event{anon, WildcardDesignated{}}, setRoles(), nil, nil},
	})
	if given(anon).Wildcard() {
		t.Fatal("a registered user named anonymous is the wildcard user without WildcardDesignated")
	}
	if !given(anon, WildcardDesignated{}).Wildcard() {
		t.Fatal("Wildcard does not follow WildcardDesignated")
	}
}

func setRoles(roles ...string) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return SetRoles(u, roles) }
}

func TestSetRoles(t *testing.T) {
	runCases(t, []decideCase{
		{"unknown user", nil, setRoles(RoleAdmin), nil, errs(ErrUserNotFound)},
		{"unknown role", []Event{alice}, setRoles("root"), nil, errs(ErrValidation)},
		{"sorted, no duplicates", []Event{alice}, setRoles(RolePriceFeeder, RoleAdmin, RolePriceFeeder),
			[]Event{RolesChanged{Roles: []string{RoleAdmin, RolePriceFeeder}}}, nil},
		{"same set: nothing", []Event{pat}, setRoles(RoleAuditor, RolePriceFeeder), nil, nil},
		{"clear", []Event{pat}, setRoles(), []Event{RolesChanged{Roles: []string{}}}, nil},
		{"clear nothing: nothing", []Event{alice}, setRoles(), nil, nil},
	})
	if u := given(pat, RolesChanged{Roles: []string{RoleAdmin}}); !u.HasRole(RoleAdmin) || u.HasRole(RoleAuditor) {
		t.Fatalf("roles %v", u.Roles)
	}
}

func grant(wallet string, perms ...string) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return Grant(u, wallet, perms) }
}

func revoke(wallet string) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return Revoke(u, wallet) }
}

func TestGrantRevoke(t *testing.T) {
	runCases(t, []decideCase{
		{"grant to unknown user", nil, grant("main", "read"), nil, errs(ErrUserNotFound)},
		{"bad wallet name", []Event{alice}, grant("-main", "read"), nil, errs(ErrValidation)},
		{"no permissions", []Event{alice}, grant("main"), nil, errs(ErrValidation)},
		{"unknown permission", []Event{alice}, grant("main", "read", "sudo"), nil, errs(ErrValidation)},
		{"canonical order, no duplicates", []Event{alice}, grant("main", "withdraw", "read", "withdraw"),
			[]Event{granted("main", "read", "withdraw")}, nil},
		{"same grant: nothing", []Event{alice, granted("main", "read", "withdraw")}, grant("main", "withdraw", "read"), nil, nil},
		{"changed grant replaces", []Event{alice, granted("main", "read", "withdraw")}, grant("main", "read"),
			[]Event{granted("main", "read")}, nil},
		{"revoke from unknown user", nil, revoke("main"), nil, errs(ErrUserNotFound)},
		{"revoke without grant: nothing", []Event{alice, granted("cold", "read")}, revoke("main"), nil, nil},
		{"revoke", []Event{alice, granted("main", "read")}, revoke("main"), []Event{WalletRevoked{Wallet: "main"}}, nil},
	})
	u := given(alice, granted("main", "read", "withdraw"), granted("cold", "read"), granted("main", "read"), WalletRevoked{Wallet: "cold"})
	want := map[string][]string{"main": {"read"}}
	if got := u.Grants(); !reflect.DeepEqual(got, want) {
		t.Fatalf("grants %v, want %v", got, want)
	}
	u.Grants()["main"][0] = "withdraw"
	if u.WalletPermissions("main")[0] != "read" {
		t.Fatal("Grants leaks state")
	}
}

func TestRevokeSessions(t *testing.T) {
	runCases(t, []decideCase{
		{"unknown user", nil, func(u *User) ([]Event, error) { return RevokeSessions(u, t0) }, nil, errs(ErrUserNotFound)},
		{"no time", []Event{alice}, func(u *User) ([]Event, error) { return RevokeSessions(u, time.Time{}) }, nil, errs(ErrValidation)},
		{"revoke", []Event{alice}, func(u *User) ([]Event, error) { return RevokeSessions(u, t0) },
			[]Event{SessionsRevoked{At: t0}}, nil},
	})
	u := given(alice, session("f1"), SessionsRevoked{At: at(10)}, SessionsRevoked{At: at(5)})
	if !u.SessionsRevokedAt().Equal(at(10)) {
		t.Fatalf("revoked at %v, want the latest", u.SessionsRevokedAt())
	}
	if f, _ := u.Family("f1"); f.RevokedReason != RevokedBySessions {
		t.Fatalf("family %+v survives a session revocation", f)
	}
	for _, tc := range []struct {
		issued time.Time
		events []Event
		want   bool
	}{
		{at(9), nil, false},
		{at(10), nil, true},
		{at(11), nil, true},
		{at(11), []Event{UserDisabled{}}, false},
	} {
		v := given(append([]Event{alice, SessionsRevoked{At: at(10)}}, tc.events...)...)
		if got := v.TokenValid(tc.issued); got != tc.want {
			t.Errorf("token issued %v after %v: valid %v, want %v", tc.issued, tc.events, got, tc.want)
		}
	}
	if New().TokenValid(t0) {
		t.Error("token of an unregistered user valid")
	}
}

func issue(k APIKey) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return IssueAPIKey(u, k) }
}

func TestIssueAPIKey(t *testing.T) {
	aliceMain := []Event{alice, granted("main", "read", "transfer")}
	var many []Event
	many = append(many, aliceMain...)
	for i := range MaxAPIKeys {
		many = append(many, issued(key(fmt.Sprint("k", i), fmt.Sprintf("%064x", i), nil)))
	}
	runCases(t, []decideCase{
		{"unknown user", nil, issue(key("k1", hashA, nil)), nil, errs(ErrUserNotFound)},
		{"disabled owner", []Event{alice, UserDisabled{}}, issue(key("k1", hashA, nil)), nil, errs(ErrUserDisabled)},
		{"bad id", []Event{alice}, issue(key("k 1", hashA, nil)), nil, errs(ErrValidation)},
		{"no name", []Event{alice}, issue(APIKey{ID: "k1", Hash: hashA, IssuedAt: t0}), nil, errs(ErrValidation)},
		{"control character in name", []Event{alice}, issue(APIKey{ID: "k1", Name: "a\nb", Hash: hashA, IssuedAt: t0}), nil, errs(ErrValidation)},
		{"hash not sha-256 hex", []Event{alice}, issue(key("k1", strings.ToUpper(hashA), nil)), nil, errs(ErrValidation)},
		{"no time", []Event{alice}, issue(APIKey{ID: "k1", Name: "n", Hash: hashA}), nil, errs(ErrValidation)},
		{"unknown role", []Event{pat}, issue(key("k1", hashA, []string{"root"})), nil, errs(ErrValidation)},
		{"role the owner lacks", []Event{pat}, issue(key("k1", hashA, []string{RoleAdmin})), nil, errs(ErrExceedsOwner)},
		{"roles the owner holds", []Event{pat}, issue(key("k1", hashA, []string{RolePriceFeeder, RoleAuditor})),
			[]Event{issued(key("k1", hashA, []string{RoleAuditor, RolePriceFeeder}))}, nil},
		{"wallet without grant", aliceMain, issue(key("k1", hashA, nil, wg("cold", "read"))), nil, errs(ErrExceedsOwner)},
		{"permission beyond grant", aliceMain, issue(key("k1", hashA, nil, wg("main", "read", "withdraw"))), nil, errs(ErrExceedsOwner)},
		{"within grant, sorted", aliceMain, issue(key("k1", hashA, nil, wg("main", "transfer", "read", "read"))),
			[]Event{issued(key("k1", hashA, nil, wg("main", "read", "transfer")))}, nil},
		{"admin: any wallet", []Event{root}, issue(key("k1", hashA, []string{RoleAdmin}, wg("z", "lock"), wg("cold", "withdraw"))),
			[]Event{issued(key("k1", hashA, []string{RoleAdmin}, wg("cold", "withdraw"), wg("z", "lock")))}, nil},
		{"admin: still valid permissions", []Event{root}, issue(key("k1", hashA, nil, wg("main", "sudo"))), nil, errs(ErrValidation)},
		{"wallet named twice", aliceMain, issue(key("k1", hashA, nil, wg("main", "read"), wg("main", "transfer"))), nil, errs(ErrValidation)},
		{"wallet without permissions", aliceMain, issue(key("k1", hashA, nil, wg("main"))), nil, errs(ErrValidation)},
		{"bad wallet name", []Event{root}, issue(key("k1", hashA, nil, wg("", "read"))), nil, errs(ErrValidation)},
		{"no roles and no wallets", []Event{alice}, issue(key("k1", hashA, nil)), []Event{issued(key("k1", hashA, nil))}, nil},
		{"same id", []Event{alice, issued(key("k1", hashA, nil))}, issue(key("k1", hashB, nil)), nil, errs(ErrAPIKeyExists)},
		{"same hash", []Event{alice, issued(key("k1", hashA, nil))}, issue(key("k2", hashA, nil)), nil, errs(ErrAPIKeyExists)},
		{"id of a revoked key", []Event{alice, issued(key("k1", hashA, nil)), APIKeyRevoked{ID: "k1"}}, issue(key("k1", hashB, nil)),
			[]Event{issued(key("k1", hashB, nil))}, nil},
		{"too many keys", many, issue(key("k1", hashA, nil)), nil, errs(ErrValidation)},
	})
}

func TestRevokeAPIKey(t *testing.T) {
	rk := func(id string) func(*User) ([]Event, error) {
		return func(u *User) ([]Event, error) { return RevokeAPIKey(u, id) }
	}
	runCases(t, []decideCase{
		{"unknown user", nil, rk("k1"), nil, errs(ErrUserNotFound)},
		{"unknown key", []Event{alice}, rk("k1"), nil, errs(ErrAPIKeyNotFound)},
		{"revoked key", []Event{alice, issued(key("k1", hashA, nil)), APIKeyRevoked{ID: "k1"}}, rk("k1"), nil, errs(ErrAPIKeyNotFound)},
		{"revoke", []Event{alice, issued(key("k1", hashA, nil))}, rk("k1"), []Event{APIKeyRevoked{ID: "k1"}}, nil},
		{"revoke while disabled", []Event{alice, issued(key("k1", hashA, nil)), UserDisabled{}}, rk("k1"),
			[]Event{APIKeyRevoked{ID: "k1"}}, nil},
	})
}

func TestAPIKeyQueries(t *testing.T) {
	u := given(pat, granted("main", "read", "transfer"), granted("cold", "read"),
		issued(key("k1", hashA, []string{RoleAuditor, RolePriceFeeder}, wg("cold", "read"), wg("main", "read", "transfer"))),
		issued(key("k2", hashB, nil)))
	if k, ok := u.ActiveAPIKeyByHash(hashA); !ok || k.ID != "k1" {
		t.Fatalf("by hash: %+v %v", k, ok)
	}
	if _, ok := u.ActiveAPIKeyByHash(strings.Repeat("c", 64)); ok {
		t.Fatal("unknown hash found")
	}
	if ids := fmt.Sprint(u.APIKeys()[0].ID, u.APIKeys()[1].ID); ids != "k1k2" {
		t.Fatalf("keys %s", ids)
	}
	// The owner loses a role and the grant on cold and transfer on main.
	Evolve(u, RolesChanged{Roles: []string{RolePriceFeeder}})
	Evolve(u, WalletRevoked{Wallet: "cold"})
	Evolve(u, granted("main", "read"))
	eff, ok := u.EffectiveAPIKey("k1")
	want := APIKey{ID: "k1", Name: "bot k1", Hash: hashA, Roles: []string{RolePriceFeeder},
		Wallets: []WalletGrant{wg("main", "read")}, IssuedAt: t0}
	if !ok || !reflect.DeepEqual(eff, want) {
		t.Fatalf("effective\n got %+v\nwant %+v", eff, want)
	}
	if k, _ := u.APIKey("k1"); len(k.Wallets) != 2 || len(k.Roles) != 2 {
		t.Fatalf("EffectiveAPIKey changed the stored key: %+v", k)
	}
	Evolve(u, APIKeyRevoked{ID: "k1"})
	if _, ok := u.ActiveAPIKeyByHash(hashA); ok {
		t.Fatal("revoked key active")
	}
	if _, ok := u.EffectiveAPIKey("k1"); ok {
		t.Fatal("revoked key effective")
	}
	Evolve(u, UserDisabled{})
	if _, ok := u.ActiveAPIKeyByHash(hashB); ok {
		t.Fatal("key of a disabled user active")
	}
	// An admin's key keeps its wallets whatever the admin's grants.
	a := given(root, issued(key("k1", hashA, []string{RoleAdmin}, wg("main", "withdraw"))))
	if k, _ := a.EffectiveAPIKey("k1"); len(k.Wallets) != 1 || len(k.Roles) != 1 {
		t.Fatalf("admin key narrowed: %+v", k)
	}
}

func start(f, token string, now, expires time.Time) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return StartSession(u, f, token, now, expires) }
}

func TestStartSession(t *testing.T) {
	runCases(t, []decideCase{
		{"unknown user", nil, start("f1", "f1.1", t0, at(240)), nil, errs(ErrUserNotFound)},
		{"disabled", []Event{alice, UserDisabled{}}, start("f1", "f1.1", t0, at(240)), nil, errs(ErrUserDisabled)},
		{"bad family", []Event{alice}, start("f 1", "f1.1", t0, at(240)), nil, errs(ErrValidation)},
		{"bad token", []Event{alice}, start("f1", "", t0, at(240)), nil, errs(ErrValidation)},
		{"expires at now", []Event{alice}, start("f1", "f1.1", t0, t0), nil, errs(ErrValidation)},
		{"family exists", []Event{alice, session("f1")}, start("f1", "x", t0, at(240)), nil, errs(ErrValidation)},
		{"start", []Event{alice}, start("f1", "f1.1", t0, at(240)), []Event{session("f1")}, nil},
	})
}

func TestRotate(t *testing.T) {
	live := []Event{alice, session("f1"), rotated("f1", 1, 2, 30)}
	reused := []Event{RefreshFamilyRevoked{Family: "f1", Reason: RevokedReuse}}
	runCases(t, []decideCase{
		{"unknown user", nil, rotate("f1", "f1.1", "f1.2", at(1)), nil, errs(ErrUserNotFound)},
		{"current token", []Event{alice, session("f1")}, rotate("f1", "f1.1", "f1.2", at(30)),
			[]Event{rotated("f1", 1, 2, 30)}, nil},
		{"current token after rotations", live, rotate("f1", "f1.2", "f1.3", at(60)), []Event{rotated("f1", 2, 3, 60)}, nil},
		{"current token expired", []Event{alice, session("f1")}, rotate("f1", "f1.1", "f1.2", at(240)), nil, errs(ErrRefreshInvalid)},
		{"rotation extends expiry", live, rotate("f1", "f1.2", "f1.3", at(250)), []Event{rotated("f1", 2, 3, 250)}, nil},
		{"spent token of a live family: reuse", live, rotate("f1", "f1.1", "f1.3", at(60)),
			reused, errs(ErrRefreshReused, ErrRefreshInvalid)},
		{"spent token of an expired family", live, rotate("f1", "f1.1", "f1.3", at(270)), nil, errs(ErrRefreshInvalid)},
		{"unknown family", live, rotate("f2", "f1.2", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"token the family never issued", live, rotate("f1", "other", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"logged out family", append(live, RefreshFamilyRevoked{Family: "f1", Reason: RevokedLogout}),
			rotate("f1", "f1.2", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"family revoked for reuse, current token", append(live, reused...),
			rotate("f1", "f1.2", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"family revoked for reuse, spent token again", append(live, reused...),
			rotate("f1", "f1.1", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"sessions revoked", append(live, SessionsRevoked{At: at(40)}), rotate("f1", "f1.2", "f1.3", at(60)), nil, errs(ErrRefreshInvalid)},
		{"family started after sessions revoked", []Event{alice, SessionsRevoked{At: at(-1)}, session("f1")},
			rotate("f1", "f1.1", "f1.2", at(30)), []Event{rotated("f1", 1, 2, 30)}, nil},
		{"disabled", append(live, UserDisabled{}), rotate("f1", "f1.2", "f1.3", at(60)), nil, errs(ErrUserDisabled, ErrRefreshInvalid)},
		{"new token id spent before", live, rotate("f1", "f1.2", "f1.1", at(60)), nil, errs(ErrValidation)},
		{"new token id is the current one", live, rotate("f1", "f1.2", "f1.2", at(60)), nil, errs(ErrValidation)},
		{"bad new token id", live, rotate("f1", "f1.2", "", at(60)), nil, errs(ErrValidation)},
		{"expiry not after now", live, func(u *User) ([]Event, error) {
			d := Rotate(u, "f1", "f1.2", "f1.3", at(60), at(60))
			return d.Events, d.Err
		}, nil, errs(ErrValidation)},
	})
}

func TestLogout(t *testing.T) {
	lo := func(f string) func(*User) ([]Event, error) {
		return func(u *User) ([]Event, error) { return Logout(u, f) }
	}
	runCases(t, []decideCase{
		{"unknown user", nil, lo("f1"), nil, errs(ErrUserNotFound)},
		{"live family", []Event{alice, session("f1")}, lo("f1"), []Event{RefreshFamilyRevoked{Family: "f1", Reason: RevokedLogout}}, nil},
		{"unknown family: nothing", []Event{alice, session("f1")}, lo("f2"), nil, nil},
		{"logged out twice: nothing", []Event{alice, session("f1"), RefreshFamilyRevoked{Family: "f1", Reason: RevokedLogout}}, lo("f1"), nil, nil},
		{"revoked for reuse: nothing", []Event{alice, session("f1"), RefreshFamilyRevoked{Family: "f1", Reason: RevokedReuse}}, lo("f1"), nil, nil},
	})
}

func TestFamilyState(t *testing.T) {
	u := given(alice, session("f1"), rotated("f1", 1, 2, 30), rotated("f1", 2, 3, 60))
	f, ok := u.Family("f1")
	want := Family{ID: "f1", Current: "f1.3", StartedAt: t0, RotatedAt: at(60), ExpiresAt: at(300), Rotations: 2,
		Spent: []string{"f1.1", "f1.2"}}
	if !ok || !reflect.DeepEqual(f, want) {
		t.Fatalf("family\n got %+v\nwant %+v", f, want)
	}
	if !f.Live(at(299)) || f.Live(at(300)) {
		t.Fatal("Live ignores the expiry")
	}
	Evolve(u, RefreshFamilyRevoked{Family: "f1", Reason: RevokedReuse})
	Evolve(u, RefreshFamilyRevoked{Family: "f1", Reason: RevokedLogout})
	if f, _ := u.Family("f1"); f.RevokedReason != RevokedReuse || f.Live(at(61)) {
		t.Fatalf("revoked family %+v", f)
	}
}

func TestFamiliesBounded(t *testing.T) {
	t.Run("expired families are dropped when an event's time passes their expiry", func(t *testing.T) {
		u := given(alice, session("f1"), RefreshIssued{Family: "f2", TokenID: "t", At: at(10), ExpiresAt: at(500)})
		if len(u.Families()) != 2 {
			t.Fatalf("families %v", u.Families())
		}
		Evolve(u, RefreshIssued{Family: "f3", TokenID: "t", At: at(240), ExpiresAt: at(480)})
		if _, ok := u.Family("f1"); ok || len(u.Families()) != 2 {
			t.Fatalf("expired family kept: %+v", u.Families())
		}
		// A rotation keeps its family alive past the first expiry.
		v := given(alice, session("f1"), rotated("f1", 1, 2, 200), SessionsRevoked{At: at(300)})
		if _, ok := v.Family("f1"); !ok {
			t.Fatal("rotated family dropped before its new expiry")
		}
		Evolve(v, issued(APIKey{ID: "k", Name: "k", Hash: hashA, IssuedAt: at(440)}))
		if _, ok := v.Family("f1"); ok {
			t.Fatal("family kept past its expiry")
		}
	})
	t.Run("at most MaxFamilies, oldest revoked first", func(t *testing.T) {
		u := given(alice)
		for i := range MaxFamilies {
			Evolve(u, RefreshIssued{Family: fmt.Sprint("f", i), TokenID: "t", At: at(i), ExpiresAt: at(1000)})
		}
		Evolve(u, RefreshFamilyRevoked{Family: "f5", Reason: RevokedLogout})
		Evolve(u, RefreshIssued{Family: "new1", TokenID: "t", At: at(100), ExpiresAt: at(1000)})
		if _, ok := u.Family("f5"); ok || len(u.Families()) != MaxFamilies {
			t.Fatalf("revoked family f5 kept or count %d", len(u.Families()))
		}
		Evolve(u, RefreshIssued{Family: "new2", TokenID: "t", At: at(101), ExpiresAt: at(1000)})
		if _, ok := u.Family("f0"); ok || len(u.Families()) != MaxFamilies {
			t.Fatalf("oldest family f0 kept or count %d", len(u.Families()))
		}
		if d := Rotate(u, "f0", "t", "t2", at(102), at(500)); !errors.Is(d.Err, ErrRefreshInvalid) || len(d.Events) != 0 {
			t.Fatalf("forgotten family rotates: %+v", d)
		}
	})
	t.Run("spent tokens capped", func(t *testing.T) {
		u := given(alice, session("f"))
		for i := 1; i <= MaxSpentTokens+5; i++ {
			Evolve(u, rotated("f", i, i+1, i))
		}
		f, _ := u.Family("f")
		if len(f.Spent) != MaxSpentTokens || f.Spent[0] != "f.6" {
			t.Fatalf("spent %d, first %s", len(f.Spent), f.Spent[0])
		}
		// A token older than the window is refused without revoking.
		if d := Rotate(u, "f", "f.1", "x", at(100), at(200)); !errors.Is(d.Err, ErrRefreshInvalid) || len(d.Events) != 0 {
			t.Fatalf("forgotten spent token: %+v", d)
		}
		if d := Rotate(u, "f", "f.6", "x", at(100), at(200)); !errors.Is(d.Err, ErrRefreshReused) {
			t.Fatalf("remembered spent token: %+v", d)
		}
	})
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func TestEventsContract(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Events() {
		typ := e.EventType()
		if !strings.HasPrefix(typ, "identity.") || !snake.MatchString(strings.TrimPrefix(typ, "identity.")) || seen[typ] {
			t.Errorf("event type %q: want a unique identity.snake_case name", typ)
		}
		seen[typ] = true
		rt := reflect.TypeOf(e)
		for i := range rt.NumField() {
			tag := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
			if !snake.MatchString(tag) {
				t.Errorf("%s.%s: json name %q is not snake_case", rt.Name(), rt.Field(i).Name, tag)
			}
		}
		// Every event survives a JSON round trip.
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		p := reflect.New(rt)
		if err := json.Unmarshal(data, p.Interface()); err != nil || !reflect.DeepEqual(p.Elem().Interface(), e) {
			t.Errorf("%s: round trip %v", typ, err)
		}
	}
	if len(seen) != 15 {
		t.Errorf("%d event types, want 15", len(seen))
	}
}

func grantAPISets(apis ...string) func(*User) ([]Event, error) {
	return func(u *User) ([]Event, error) { return GrantAPISets(u, apis) }
}

func TestGrantAPISets(t *testing.T) {
	sets := func(apis ...string) APISetsGranted { return APISetsGranted{APIs: apis} }
	runCases(t, []decideCase{
		{"unknown user", nil, grantAPISets("database_api"), nil, errs(ErrUserNotFound)},
		{"bad name", []Event{alice}, grantAPISets("Database API"), nil, errs(ErrValidation)},
		{"sorted, no repeats", []Event{alice}, grantAPISets("history_api", "database_api", "history_api"),
			[]Event{sets("database_api", "history_api")}, nil},
		{"same sets: nothing", []Event{alice, sets("database_api")}, grantAPISets("database_api"), nil, nil},
		{"none is a limit too", []Event{alice}, grantAPISets(), []Event{APISetsGranted{APIs: []string{}}}, nil},
		{"none again: nothing", []Event{alice, sets()}, grantAPISets(), nil, nil},
	})
	if got := given(alice).APISets(); got != nil {
		t.Fatalf("a user without APISetsGranted is limited to %v", got)
	}
	if got := given(alice, sets()).APISets(); got == nil || len(got) != 0 {
		t.Fatalf("APISetsGranted{} gives %#v, want an empty limit", got)
	}
	u := given(alice, sets("database_api"))
	data, err := EncodeSnapshot(u)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeSnapshot(data)
	if err != nil || !reflect.DeepEqual(back.APISets(), []string{"database_api"}) {
		t.Fatalf("snapshot round trip: %v %v", back.APISets(), err)
	}
}
