package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/apitest"
	"github.com/coinledger/coinledger/internal/logging"
)

// TestLogs: with a JSON logger, each request gets one access line with
// its request id (the one answered in X-Request-ID), route, status and,
// once authenticated, the user; lines logged while handling a request carry
// the same id; security events (a refused and an accepted login, a user
// created, a grant, an API key issued and revoked) are logged with the
// actor; and no password, token or key secret appears in any line.
func TestLogs(t *testing.T) {
	logs := &syncBuffer{}
	logger, err := logging.New(logs, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, func(d *api.Deps) { d.Logger = logger })
	c := ts.client(t)
	c.Post("/auth/login", map[string]string{"username": "admin", "password": "not-the-password"},
		from("127.0.0.1"), apitest.Header("X-Request-ID", "req-bad-login")).Expect(t, http.StatusUnauthorized)
	tp := ts.login(t, "admin", adminPassword, "127.0.0.1")
	admin := c.WithToken(tp.AccessToken)
	ts.addUser(t, admin, "alice")
	admin.Put("/users/alice/wallets/w1", map[string]any{"permissions": []string{"read"}}).Expect(t, http.StatusOK)
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	r := admin.Post("/api-keys", map[string]any{"name": "bot", "wallets": []any{}}, apitest.Header("X-Request-ID", "req-key"))
	r.Expect(t, http.StatusCreated)
	if !r.JSON(t, &key) || key.Key == "" {
		t.Fatalf("api key: %s", r.Body)
	}
	admin.Delete("/api-keys/"+key.ID).Expect(t, http.StatusNoContent)

	out := logs.String()
	for _, secret := range []string{adminPassword, "not-the-password", "password-alice", tp.AccessToken, tp.RefreshToken, key.Key} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret reached the log: %.12s…", secret)
		}
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not a JSON line: %q", l)
		}
		lines = append(lines, m)
	}
	find := func(want map[string]any) map[string]any {
		t.Helper()
	next:
		for _, m := range lines {
			for k, v := range want {
				if m[k] != v {
					continue next
				}
			}
			return m
		}
		t.Errorf("no log line with %v in:\n%s", want, out)
		return nil
	}
	for _, m := range lines {
		if m["msg"] == "request" && (m["request_id"] == nil || m["request_id"] == "") {
			t.Errorf("access line without request id: %v", m)
		}
	}
	find(map[string]any{"msg": "request", "request_id": "req-bad-login", "route": "/api/v1/auth/login", "status": 401.0, "method": "POST"})
	find(map[string]any{"msg": "security event", "event": "login_refused", "request_id": "req-bad-login",
		"username": "admin", "reason": "bad_credentials", "level": "WARN"})
	find(map[string]any{"msg": "security event", "event": "login", "username": "admin"})
	find(map[string]any{"msg": "security event", "event": "user_created", "username": "alice", "user": "admin"})
	find(map[string]any{"msg": "security event", "event": "permissions_granted", "username": "alice", "wallet": "w1", "user": "admin"})
	created := find(map[string]any{"msg": "security event", "event": "api_key_created", "request_id": "req-key", "user": "admin"})
	if created != nil && created["key_id"] != key.ID {
		t.Errorf("api_key_created names key %v, want %s", created["key_id"], key.ID)
	}
	find(map[string]any{"msg": "request", "request_id": "req-key", "user": "admin", "status": 201.0, "route": "/api/v1/api-keys"})
	find(map[string]any{"msg": "security event", "event": "api_key_revoked", "key_id": key.ID, "user": "admin"})
}
