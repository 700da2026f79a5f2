package test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/http/auth"
)

const jwtSecret = "e2e-secret-e2e-secret-e2e-secret-0123"

// authWorld is a server with wallets and users in every relation the
// access rules distinguish.
type authWorld struct {
	s                      *Server
	admin, reader, mover   *client
	stranger, keyed, fresh *client
	expired                *client
}

func newAuthWorld(t *testing.T) *authWorld {
	s, admin := adminServer(t, "", "COINLEDGER_JWT_SECRET="+jwtSecret)
	w := &authWorld{s: s, admin: admin}
	setUpWallet(t, admin, "w", map[string]string{"a": "1.00000000"}, "a", "b")
	admin.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": "fenced", "coin": "BTC",
		"permissions": []string{"read", "transfer"}, "ip_allowlist": []string{"10.9.9.0/24"}})
	for _, u := range []struct {
		name   string
		grants map[string][]string
	}{
		{"reader", map[string][]string{"w": {"read"}}},
		{"mover", map[string][]string{"w": {"read", "transfer"}, "fenced": {"read", "transfer"}}},
		{"stranger", nil},
		{"victim", nil},
	} {
		admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": u.name, "email": u.name + "@example.com",
			"password": "password-" + u.name})
		for wallet, perms := range u.grants {
			admin.expect(http.StatusOK, "PUT", "/users/"+u.name+"/wallets/"+wallet, map[string]any{"permissions": perms})
		}
	}
	login := func(name string) *client {
		c := newClient(t, s)
		c.login(name, "password-"+name)
		return c
	}
	w.reader, w.mover, w.stranger = login("reader"), login("mover"), login("stranger")
	var key struct{ Key string }
	w.mover.expect(http.StatusCreated, "POST", "/api-keys", map[string]any{"name": "bot",
		"wallets": []map[string]any{{"wallet": "w", "permissions": []string{"read", "transfer"}}}}).JSON(t, &key)
	w.keyed = newClient(t, s)
	w.keyed.token = key.Key
	// A token signed with the server's key that expired an hour ago.
	iss, err := auth.NewIssuer(auth.KeyOf([]byte(jwtSecret)))
	if err != nil {
		t.Fatal(err)
	}
	iss.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	tok, _, err := iss.Issue(auth.Access, "mover", nil, "", "")
	if err != nil {
		t.Fatal(err)
	}
	w.expired = newClient(t, s)
	w.expired.token = tok
	w.fresh = newClient(t, s) // no credentials
	return w
}

// TestAccessTable: every endpoint × {no token, expired token, user without
// the permission, user with it, API key, disallowed address}.
func TestAccessTable(t *testing.T) {
	w := newAuthWorld(t)
	var n atomic.Int64
	key := func() []string { return []string{"Idempotency-Key", fmt.Sprintf("k-%d", n.Add(1))} }
	var tr struct{ ID string }
	w.admin.expect(201, "POST", "/wallets/w/transfers", map[string]string{"from": "a", "to": "b", "amount": "0.00000001"},
		key()...).JSON(t, &tr)
	transfer := func() any { return map[string]string{"from": "a", "to": "b", "amount": "0.00000001"} }
	type endpoint struct {
		method, path string
		body         func() any
		perm         string // "read", "transfer", "freeze", "lock" or "admin"
		ok           int
	}
	endpoints := []endpoint{
		{"GET", "/wallets/w", nil, "read", 200},
		{"GET", "/wallets/w/accounts", nil, "read", 200},
		{"GET", "/wallets/w/accounts/a", nil, "read", 200},
		{"GET", "/wallets/w/accounts/a/entries", nil, "read", 200},
		{"GET", "/wallets/w/accounts/a/balance", nil, "read", 200},
		{"POST", "/wallets/w/transfers", transfer, "transfer", 201},
		{"POST", "/wallets/w/accounts/a/holds", func() any { return map[string]string{"amount": "0.00000001"} }, "freeze", 201},
		{"POST", "/wallets/w/lock", nil, "lock", 200},
		{"POST", "/wallets/w/accounts/a/imports", func() any { return map[string]string{"amount": "0.00000001", "reason": "t"} }, "admin", 201},
		{"POST", "/wallets", func() any {
			return map[string]any{"name": fmt.Sprintf("n%d", n.Add(1)), "coin": "BTC", "permissions": []string{"read"}}
		}, "admin", 201},
		{"GET", "/users", nil, "admin", 200},
		{"GET", "/wallets/w/transfers/" + tr.ID, nil, "read", 200},
		{"POST", "/wallets/w/unlock", nil, "lock", 200},
		{"PUT", "/users/reader/wallets/w", func() any { return map[string]any{"permissions": []string{"read"}} }, "admin", 200},
		{"DELETE", "/users/victim/wallets/w", nil, "admin", 204},
		{"POST", "/users", func() any {
			return map[string]any{"username": fmt.Sprintf("u%d", n.Add(1)), "email": "u@example.com", "password": "password-u"}
		}, "admin", 201},
		{"POST", "/users/victim/revoke-sessions", nil, "admin", 204},
	}
	has := map[string]map[string]bool{
		"reader": {"read": true},
		"mover":  {"read": true, "transfer": true},
		"keyed":  {"read": true, "transfer": true},
	}
	for _, e := range endpoints {
		body := func() any {
			if e.body == nil {
				return nil
			}
			return e.body()
		}
		check := func(who string, c *client, want int, code string) {
			t.Helper()
			r := c.do(e.method, e.path, body(), key()...)
			if r.Status != want || (code != "" && r.problemCode() != code) {
				t.Errorf("%s %s as %s: %d %s, want %d %s", e.method, e.path, who, r.Status, r.Body, want, code)
			}
			if want == 401 && r.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Errorf("%s %s as %s: 401 without WWW-Authenticate", e.method, e.path, who)
			}
		}
		check("nobody", w.fresh, 401, "unauthorized")
		check("expired", w.expired, 401, "unauthorized")
		wallet := strings.HasPrefix(e.path, "/wallets/")
		for who, c := range map[string]*client{"reader": w.reader, "mover": w.mover, "keyed": w.keyed} {
			switch {
			case has[who][e.perm]:
				check(who, c, e.ok, "")
			default:
				check(who, c, 403, "permission_denied")
			}
		}
		if wallet {
			check("stranger", w.stranger, 404, "not_found")
			// The same call on a wallet whose allowlist excludes 127.0.0.1.
			if e.perm == "read" || e.perm == "transfer" {
				fenced := e
				fenced.path = strings.Replace(e.path, "/wallets/w", "/wallets/fenced", 1)
				r := w.mover.do(fenced.method, fenced.path, body(), key()...)
				if r.Status != 403 || r.problemCode() != "ip_not_allowed" {
					t.Errorf("%s %s from a disallowed address: %d %s", fenced.method, fenced.path, r.Status, r.Body)
				}
			}
		} else {
			check("stranger", w.stranger, 403, "permission_denied")
		}
		check("admin", w.admin, e.ok, "")
		if e.path == "/wallets/w/lock" {
			w.admin.expect(200, "POST", "/wallets/w/unlock", nil)
		}
	}
	// An API key never exceeds its owner: asking for more is refused.
	if r := w.mover.do("POST", "/api-keys", map[string]any{"name": "greedy",
		"wallets": []map[string]any{{"wallet": "w", "permissions": []string{"read", "withdraw"}}}}); r.Status != 403 {
		t.Errorf("api key beyond its owner: %d %s", r.Status, r.Body)
	}
	// /me shows effective permissions: wallet ∩ grant.
	var me struct {
		Wallets []struct {
			Wallet      string
			Permissions []string
		}
	}
	w.reader.expect(200, "GET", "/me", nil).JSON(t, &me)
	if len(me.Wallets) != 1 || me.Wallets[0].Wallet != "w" || strings.Join(me.Wallets[0].Permissions, ",") != "read" {
		t.Errorf("/me of reader: %+v", me)
	}
}

type tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// TestRefreshRotationAndReuse: a refresh token works once; presenting a
// spent one revokes the whole family, access tokens included.
func TestRefreshRotationAndReuse(t *testing.T) {
	s, admin := adminServer(t, "")
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "alice", "email": "a@example.com", "password": "password-alice"})
	c := newClient(t, s)
	var first, second tokens
	c.expect(200, "POST", "/auth/login", map[string]string{"username": "alice", "password": "password-alice"}).JSON(t, &first)
	c.expect(200, "POST", "/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": first.RefreshToken}).JSON(t, &second)
	c.token = second.AccessToken
	c.expect(200, "GET", "/me", nil)
	// The spent token again: refused, and the family is revoked.
	c.expect(401, "POST", "/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": first.RefreshToken})
	c.expect(401, "POST", "/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": second.RefreshToken})
	c.expect(401, "GET", "/me", nil)
	// Logging in again starts a new family that works.
	c.login("alice", "password-alice")
	c.expect(200, "GET", "/me", nil)
	// Logout ends that family at once.
	c.expect(204, "POST", "/auth/logout", nil)
	c.expect(401, "GET", "/me", nil)
}

// TestRevokeSessionsIsImmediate: a live access token stops working as soon
// as revoke-sessions returns.
func TestRevokeSessionsIsImmediate(t *testing.T) {
	s, admin := adminServer(t, "")
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "bob", "email": "b@example.com", "password": "password-bob"})
	bob := newClient(t, s)
	bob.login("bob", "password-bob")
	bob.expect(200, "GET", "/me", nil)
	admin.expect(204, "POST", "/users/bob/revoke-sessions", nil)
	bob.expect(401, "GET", "/me", nil)
	time.Sleep(1100 * time.Millisecond) // tokens carry whole seconds: a new one must be issued after the revocation
	bob.login("bob", "password-bob")
	bob.expect(200, "GET", "/me", nil)
}

// TestLoginRateLimit: repeated bad passwords are answered 429 with
// Retry-After, and then even the right password waits.
func TestLoginRateLimit(t *testing.T) {
	s, _ := adminServer(t, "")
	c := newClient(t, s)
	limited := false
	for i := 0; i < 10 && !limited; i++ {
		r := c.do("POST", "/auth/login", map[string]string{"username": "admin", "password": fmt.Sprintf("wrong-%d", i)})
		switch r.Status {
		case 401:
		case 429:
			limited = true
			if r.Header.Get("Retry-After") == "" || r.problemCode() != "rate_limited" {
				t.Fatalf("429 without Retry-After or code: %v %s", r.Header, r.Body)
			}
		default:
			t.Fatalf("bad login %d: %d %s", i, r.Status, r.Body)
		}
	}
	if !limited {
		t.Fatal("10 bad logins were never rate limited")
	}
	if r := c.do("POST", "/auth/login", map[string]string{"username": "admin", "password": adminPassword}); r.Status != 429 {
		t.Fatalf("right password while limited: %d, want 429", r.Status)
	}
}
