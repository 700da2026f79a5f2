package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/ws"
)

// TestLoginStrangerCannotLockOutAdmin: an attacker hammering admin with
// wrong passwords from one address is answered 429 with Retry-After, and
// the real admin, from another address, logs in at once. Every refused
// login is logged with the client address and never with the password.
func TestLoginStrangerCannotLockOutAdmin(t *testing.T) {
	ts := newTestServer(t, nil)
	c := ts.client(t)
	limited := 0
	for i := range 40 {
		r := c.Post("/auth/login", map[string]string{"username": "admin", "password": fmt.Sprintf("guess-%d", i)},
			from("203.0.113.7"))
		switch r.Status {
		case http.StatusUnauthorized:
			r.ExpectProblem(t, http.StatusUnauthorized, "bad_credentials")
		case http.StatusTooManyRequests:
			limited++
			r.ExpectProblem(t, http.StatusTooManyRequests, "rate_limited")
			if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("429 with Retry-After %q", r.Header.Get("Retry-After"))
			}
		default:
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	if limited < 30 {
		t.Fatalf("the attacker was refused %d times of 40", limited)
	}
	// The real admin, from another address, at once.
	start := time.Now()
	ts.login(t, "admin", adminPassword, "198.51.100.1")
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the real admin waited %v", d)
	}
	// The attacker's address is still held back, even with the password.
	c.Post("/auth/login", map[string]string{"username": "admin", "password": adminPassword}, from("203.0.113.7")).
		ExpectProblem(t, http.StatusTooManyRequests, "rate_limited")
	logs := ts.logs.String()
	if !strings.Contains(logs, `msg="security event" event=login_refused`) || !strings.Contains(logs, "client_ip=203.0.113.7") ||
		!strings.Contains(logs, "reason=bad_credentials") || !strings.Contains(logs, "reason=rate_limited") {
		t.Fatalf("refused logins are not logged:\n%s", logs)
	}
	if strings.Contains(logs, "guess-") || strings.Contains(logs, adminPassword) {
		t.Fatalf("a password reached the log:\n%s", logs)
	}
}

// wildcardMap is a permission map whose "*" entry accepts any password and
// allows the broadcasting API.
const wildcardMap = `{"permission_map": [
  ["*", {"password_hash_b64": "*", "password_salt_b64": "*",
         "allowed_apis": ["database_api", "network_broadcast_api", "history_api"]}]
]}`

// TestWildcardLoginIsRateLimited: logins with made-up usernames that fall
// back to the "*" user count against it, like logins to any one account:
// spraying usernames from one address is held back, another address is
// not.
func TestWildcardLoginIsRateLimited(t *testing.T) {
	ts := newTestServer(t, nil)
	m, err := graphene.Parse([]byte(wildcardMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Users.ImportGraphene(context.Background(), eventstore.Metadata{}, m,
		users.ImportOptions{Wallet: "hot"}); err != nil {
		t.Fatal(err)
	}
	c := ts.client(t)
	admitted := 0
	for i := range 20 {
		r := c.Post("/auth/login", map[string]string{"username": fmt.Sprintf("nobody-%d", i), "password": "x"},
			from("203.0.113.9"))
		switch r.Status {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			r.ExpectProblem(t, http.StatusTooManyRequests, "rate_limited")
		default:
			t.Fatalf("wildcard login %d: %d %s", i, r.Status, r.Body)
		}
	}
	if admitted == 0 || admitted > 5 {
		t.Fatalf("%d of 20 wildcard logins from one address admitted, want 1..5", admitted)
	}
	ts.login(t, "someone-else", "x", "198.51.100.9")
}

// TestRevokedCredentialsCloseWebsockets: logout, session revocation, API
// key revocation and disabling the user each close the user's sockets
// with 4401 within seconds, whatever their topics (prices and alerts, not
// only wallet topics). The periodic recheck is set to a minute, so the
// sockets of this instance close because the revocation asks them at once;
// a second instance over the same store (its own caches) notices through
// its own periodic recheck.
func TestRevokedCredentialsCloseWebsockets(t *testing.T) {
	ts := newTestServer(t, func(d *api.Deps) { d.Websocket.RecheckEvery = time.Minute })
	other := ts.instance(t, func(d *api.Deps) { d.Websocket.RecheckEvery = 200 * time.Millisecond })
	admin := ts.admin(t)
	for _, tc := range []struct {
		name   string
		key    bool // the socket's credential is an API key
		revoke func(t *testing.T, user *testCredential)
	}{
		{"logout", false, func(t *testing.T, u *testCredential) {
			ts.client(t).WithToken(u.token).Post("/auth/logout", nil).Expect(t, http.StatusNoContent)
		}},
		{"revoke sessions", false, func(t *testing.T, u *testCredential) {
			admin.Post("/users/"+u.name+"/revoke-sessions", nil).Expect(t, http.StatusNoContent)
		}},
		{"api key revoked", true, func(t *testing.T, u *testCredential) {
			ts.client(t).WithToken(u.session).Delete("/api-keys/"+u.keyID).Expect(t, http.StatusNoContent)
		}},
		{"user disabled", false, func(t *testing.T, u *testCredential) {
			admin.Post("/users/"+u.name+"/disable", nil).Expect(t, http.StatusNoContent)
		}},
		{"user disabled, api key", true, func(t *testing.T, u *testCredential) {
			admin.Post("/users/"+u.name+"/disable", nil).Expect(t, http.StatusNoContent)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), ",", "")
			ts.addUser(t, admin, name)
			u := ts.credential(t, name, tc.key)
			var socks []*websocket.Conn
			for _, topics := range []string{`"prices"`, `"alerts"`} {
				c := ts.dial(t, u.token)
				wsSubscribe(t, c, topics)
				socks = append(socks, c)
			}
			remote := other.dial(t, u.token)
			wsSubscribe(t, remote, `"prices"`)
			time.Sleep(1100 * time.Millisecond) // tokens carry whole seconds: revoke after they were issued
			start := time.Now()
			tc.revoke(t, u)
			for i, c := range append(socks, remote) {
				if code := wsClosed(c, 5*time.Second); code != ws.StatusUnauthorized {
					t.Fatalf("socket %d: close code %d after the revocation, want 4401", i, code)
				}
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("sockets closed %v after the revocation", d)
			}
		})
	}
}

// testCredential is a user's credential for a websocket: an access token
// or an API key (token), with what revoking it needs.
type testCredential struct {
	name    string
	token   string // the socket's credential
	session string // an access token of the user
	keyID   string // when token is an API key
}

// credential logs name in and, with key, issues it an API key.
func (ts *testServer) credential(t *testing.T, name string, key bool) *testCredential {
	t.Helper()
	tp := ts.login(t, name, "password-"+name, "127.0.0.1")
	u := &testCredential{name: name, token: tp.AccessToken, session: tp.AccessToken}
	if key {
		var k struct{ ID, Key string }
		ts.client(t).WithToken(tp.AccessToken).Post("/api-keys", map[string]any{"name": "bot", "wallets": []any{}}).
			Expect(t, http.StatusCreated).JSON(t, &k)
		u.token, u.keyID = k.Key, k.ID
	}
	return u
}

// TestWebsocketConnectionCap: a user holds at most 8 websockets by
// default; the 9th is refused with 429 too_many_connections before the
// upgrade, and the cap is configurable.
func TestWebsocketConnectionCap(t *testing.T) {
	for _, tc := range []struct {
		cap, want int
	}{{0, 8}, {3, 3}} {
		ts := newTestServer(t, func(d *api.Deps) { d.Websocket.MaxConnsPerUser = tc.cap })
		token := ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken
		for range tc.want {
			ts.dial(t, token)
		}
		_, resp, err := ts.tryDial(token)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("cap %d: connection %d: %v %v", tc.cap, tc.want+1, resp, err)
		}
		var p struct{ Code string }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Code != "too_many_connections" {
			t.Fatalf("429 body: %+v %v", p, err)
		}
	}
}

// TestWebsocketBufferedEventsBound: a connection that would have more
// than the configured number of events waiting is closed with 4408.
func TestWebsocketBufferedEventsBound(t *testing.T) {
	ts := newTestServer(t, func(d *api.Deps) { d.Websocket.MaxBufferedEvents = 5 })
	var events []eventstore.EventData
	for i := range 10 {
		events = append(events, eventstore.EventData{Type: "prices.ticked",
			Data: json.RawMessage(fmt.Sprintf(`{"pair":"BTC-USD","price":"%d","source":"test"}`, 60000+i))})
	}
	if _, err := ts.Store.Append(context.Background(), "price-BTC-USD", eventstore.Any, events...); err != nil {
		t.Fatal(err)
	}
	c := ts.dial(t, ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken)
	wsWrite(t, c, `{"type":"subscribe","topics":["prices"],"from":0}`)
	if code := wsClosed(c, 5*time.Second); code != ws.StatusTooSlow {
		t.Fatalf("close code %d, want 4408", code)
	}
}

// TestDisableEnableUser: POST /users/{name}/disable ends every credential
// of the user at once — access token, refresh token, API key — and
// refuses its logins with 403 user_disabled (a wrong password still gets
// 401); the users read model shows it disabled. Both calls are idempotent,
// admin only, and 404 for an unknown user. Enabling lets the user log in
// again; its old credentials stay dead.
func TestDisableEnableUser(t *testing.T) {
	ts := newTestServer(t, nil)
	admin := ts.admin(t)
	ts.addUser(t, admin, "bob")
	ts.addUser(t, admin, "carol")
	bob := ts.credential(t, "bob", true)
	tp := ts.login(t, "bob", "password-bob", "127.0.0.1")
	carol := ts.client(t).WithToken(ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken)
	for _, tok := range []string{bob.session, bob.token, tp.AccessToken} {
		ts.client(t).WithToken(tok).Get("/me").Expect(t, http.StatusOK)
	}

	carol.Post("/users/bob/disable", nil).ExpectProblem(t, http.StatusForbidden, "permission_denied")
	admin.Post("/users/nobody/disable", nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	admin.Post("/users/nobody/enable", nil).ExpectProblem(t, http.StatusNotFound, "not_found")
	admin.Post("/users/bob/disable", nil).Expect(t, http.StatusNoContent)
	admin.Post("/users/bob/disable", nil).Expect(t, http.StatusNoContent)

	for i, tok := range []string{bob.session, bob.token, tp.AccessToken} {
		if r := ts.client(t).WithToken(tok).Get("/me"); r.Status != http.StatusUnauthorized {
			t.Errorf("credential %d of a disabled user: %d", i, r.Status)
		}
	}
	ts.client(t).Post("/auth/token", map[string]string{"grant_type": "refresh_token", "refresh_token": tp.RefreshToken}).
		Expect(t, http.StatusUnauthorized)
	ts.client(t).Post("/auth/login", map[string]string{"username": "bob", "password": "password-bob"}, from("127.0.0.1")).
		ExpectProblem(t, http.StatusForbidden, "user_disabled")
	ts.client(t).Post("/auth/login", map[string]string{"username": "bob", "password": "wrong-password"}, from("127.0.0.1")).
		ExpectProblem(t, http.StatusUnauthorized, "bad_credentials")

	ts.waitProjected(t)
	disabled := func() bool {
		var list struct {
			Users []struct {
				Username string
				Disabled bool
			}
		}
		admin.Get("/users").Expect(t, http.StatusOK).JSON(t, &list)
		for _, u := range list.Users {
			if u.Username == "bob" {
				return u.Disabled
			}
		}
		t.Fatal("bob is not listed")
		return false
	}
	if !disabled() {
		t.Fatal("GET /users does not show bob disabled")
	}

	time.Sleep(1100 * time.Millisecond) // a new token must carry a later second than the revocation
	admin.Post("/users/bob/enable", nil).Expect(t, http.StatusNoContent)
	admin.Post("/users/bob/enable", nil).Expect(t, http.StatusNoContent)
	fresh := ts.login(t, "bob", "password-bob", "127.0.0.1")
	ts.client(t).WithToken(fresh.AccessToken).Get("/me").Expect(t, http.StatusOK)
	for i, tok := range []string{bob.session, bob.token, tp.AccessToken} {
		if r := ts.client(t).WithToken(tok).Get("/me"); r.Status != http.StatusUnauthorized {
			t.Errorf("credential %d of before the disable works again: %d", i, r.Status)
		}
	}
	ts.waitProjected(t)
	if disabled() {
		t.Fatal("GET /users still shows bob disabled")
	}
}
