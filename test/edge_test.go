package test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/http/apitest"
)

// raw sends body exactly as given, without checking it against the
// contract (the bodies here are hostile on purpose), and returns the answer.
func (c *client) raw(method, path, body string, header ...string) *response {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header = c.headers(header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

type problemJSON struct {
	Status int
	Code   string
	Detail string
	Errors []struct{ Field, Message string }
}

// expectProblem fails unless r is a problem document with status, code and
// (when field is not "") errors[0].field == field.
func expectProblem(t *testing.T, what string, r *response, status int, code, field string) problemJSON {
	t.Helper()
	var p problemJSON
	_ = json.Unmarshal(r.Body, &p)
	if r.Status != status || p.Code != code || r.Header.Get("Content-Type") != "application/problem+json" ||
		(field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != field)) {
		t.Errorf("%s: %d %s, want %d %s naming %q", what, r.Status, r.Body, status, code, field)
	}
	return p
}

// storeHead is the event store's head as /status reports it.
func storeHead(t *testing.T, c *client) uint64 {
	t.Helper()
	var st struct{ Store struct{ Head uint64 } }
	c.expect(http.StatusOK, "GET", "/status", nil).JSON(t, &st)
	return st.Store.Head
}

// TestEdgeInput holds the API's edge to the hardening issue's findings,
// on one server: hostile text (1a), duplicate keys and null bodies (6),
// client request ids (2), balances in refusals (11), e-mail addresses and
// future price ticks (13).
func TestEdgeInput(t *testing.T) {
	s, admin := adminServer(t, "")
	setUpWallet(t, admin, "hot", map[string]string{"alice": "1.00000000"}, "alice", "bob")
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "mover", "email": "mover@example.com",
		"password": "password-mover"})
	admin.expect(http.StatusOK, "PUT", "/users/mover/wallets/hot", map[string]any{"permissions": []string{"transfer"}})
	mover := newClient(t, s)
	mover.login("mover", "password-mover")

	t.Run("InvalidTextRefused", func(t *testing.T) { testInvalidTextRefused(t, admin.in(t)) })
	t.Run("DuplicateKeysRefused", func(t *testing.T) { testDuplicateKeysRefused(t, s, admin.in(t)) })
	t.Run("RequestIDSanitized", func(t *testing.T) { testRequestIDSanitized(t, admin.in(t)) })
	t.Run("BalancesWithheldWithoutRead", func(t *testing.T) { testBalancesWithheld(t, admin.in(t), mover.in(t)) })
	t.Run("EmailValidated", func(t *testing.T) { testEmailValidated(t, admin.in(t)) })
	t.Run("FutureTickRefused", func(t *testing.T) { testFutureTickRefused(t, admin.in(t)) })
}

// in returns a copy of c that reports to t (a subtest).
func (c *client) in(t testing.TB) *client {
	cp := *c
	cp.t, cp.api = t, apitest.NewClient(t, c.base)
	return &cp
}

// testInvalidTextRefused: NUL (the byte that stopped Postgres-backed
// services for good), other control characters and invalid UTF-8 in any
// text field are 400 invalid_text naming the field; nothing is written.
func testInvalidTextRefused(t *testing.T, admin *client) {
	head := storeHead(t, admin)
	for i, tc := range []struct {
		path, body, field string
		header            []string
	}{
		{"/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01","memo":"a\u0000b"}`, "memo", nil},
		{"/wallets/hot/transfers", "{\"from\":\"alice\",\"to\":\"bob\",\"amount\":\"0.01\",\"memo\":\"caf\xe9\"}", "memo", nil},
		{"/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01","memo":"\ud800"}`, "memo", nil},
		{"/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01","memo":"line\nbreak"}`, "memo", nil},
		{"/wallets/hot/accounts/alice/holds", `{"amount":"0.01","reason":"x\u0001"}`, "reason", nil},
		{"/wallets/hot/accounts/alice/imports", `{"amount":"0.01","reason":"del\u007f"}`, "reason", nil},
		{"/wallets/hot/lock", "{\"reason\":\"\xff\xfe\"}", "reason", nil},
		{"/users", `{"username":"eve","email":"eve\u0000@example.com","password":"password-eve"}`, "email", nil},
		{"/api-keys", `{"name":"k","wallets":[{"wallet":"hot","permissions":["read\u0000"]}]}`, "wallets[0].permissions[0]", nil},
		{"/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01"}`, "Idempotency-Key", []string{"Idempotency-Key", "k\xe9y"}},
	} {
		header := tc.header
		if header == nil && (strings.Contains(tc.path, "transfers") || strings.Contains(tc.path, "imports")) {
			header = []string{"Idempotency-Key", fmt.Sprintf("text-%d", i)}
		}
		r := admin.raw("POST", tc.path, tc.body, header...)
		expectProblem(t, fmt.Sprintf("POST %s %q", tc.path, tc.body), r, http.StatusBadRequest, "invalid_text", tc.field)
	}
	if h := storeHead(t, admin); h != head {
		t.Fatalf("refused bodies wrote %d events", h-head)
	}
	if b := admin.balance("hot", "alice"); b.Available != "1.00000000" || b.Held != "0.00000000" {
		t.Fatalf("alice %+v", b)
	}
}

// testDuplicateKeysRefused: a key given twice, also in another case, is
// 400 malformed_json naming it (encoding/json would keep the last: 0.02
// moved, or a login as admin); a null body is not {}.
func testDuplicateKeysRefused(t *testing.T, s *Server, admin *client) {
	head := storeHead(t, admin)
	anon := newClient(t, s)
	for _, tc := range []struct {
		c                 *client
		path, body, field string
	}{
		{admin, "/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01","amount":"0.02"}`, "amount"},
		{admin, "/wallets/hot/transfers", `{"from":"alice","to":"bob","amount":"0.01","AMOUNT":"0.02"}`, "AMOUNT"},
		{anon, "/auth/login", `{"username":"nobody","USERNAME":"admin","password":"` + adminPassword + `"}`, "USERNAME"},
		{anon, "/auth/login", `{"username":"nobody","username":"admin","password":"` + adminPassword + `"}`, "username"},
		{admin, "/api-keys", `{"name":"k","wallets":[{"wallet":"hot","permissions":["read"],"Permissions":["read","transfer"]}]}`,
			"wallets[0].Permissions"},
		{anon, "/auth/login", `null`, ""},
		{admin, "/wallets/hot/lock", `null`, ""},
		{admin, "/wallets/hot/transfers", `[{"from":"alice","to":"bob","amount":"0.01"}]`, ""},
	} {
		r := tc.c.raw("POST", tc.path, tc.body, "Idempotency-Key", "dup-"+tc.field)
		expectProblem(t, fmt.Sprintf("POST %s %s", tc.path, tc.body), r, http.StatusBadRequest, "malformed_json", tc.field)
	}
	if h := storeHead(t, admin); h != head {
		t.Fatalf("refused bodies wrote %d events", h-head)
	}
}

// testRequestIDSanitized: a client X-Request-ID is echoed and stored as the
// correlation id only when it is 1-128 visible ASCII characters; anything
// else, up to an id of nearly 1 MiB, is replaced, and transfers sent
// concurrently with such ids (once a 500 for every transfer of their batch)
// all succeed.
func testRequestIDSanitized(t *testing.T, admin *client) {
	var created struct{ Position uint64 }
	r := admin.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.00000001"},
		"Idempotency-Key", "rid-ok", "X-Request-ID", "trace-42/abc")
	r.JSON(t, &created)
	if got := r.Header.Get("X-Request-ID"); got != "trace-42/abc" {
		t.Fatalf("a valid X-Request-ID came back as %q", got)
	}
	var page struct {
		Events []struct {
			Metadata struct {
				CorrelationID string `json:"correlation_id"`
			}
		}
	}
	admin.expect(http.StatusOK, "GET", fmt.Sprintf("/events?from=%d&limit=1", created.Position), nil).JSON(t, &page)
	if len(page.Events) != 1 || page.Events[0].Metadata.CorrelationID != "trace-42/abc" {
		t.Fatalf("the transfer's event has %+v, want correlation id trace-42/abc", page.Events)
	}

	huge := strings.Repeat("x", 1<<20-64) // fits the server's header limit; with the event, over 1 MiB
	for _, id := range []string{"has space", "tab\there", "ünïcode", strings.Repeat("a", 129), huge} {
		r := admin.raw("GET", "/me", "", "X-Request-ID", id)
		if got := r.Header.Get("X-Request-ID"); r.Status != http.StatusOK || got == id || got == "" || len(got) > 128 ||
			strings.ContainsFunc(got, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Errorf("X-Request-ID %.20q: %d, came back as %.40q", id, r.Status, got)
		}
	}

	const n = 24
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			header := []string{"Idempotency-Key", fmt.Sprintf("rid-%d", i)}
			if i%4 == 0 {
				header = append(header, "X-Request-ID", huge)
			}
			r, err := admin.try("POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.00000001"}, header...)
			switch {
			case err != nil:
				t.Errorf("transfer %d: %v", i, err)
			case r.Status != http.StatusCreated:
				t.Errorf("transfer %d (huge id: %v): %d %s", i, i%4 == 0, r.Status, r.Body)
			case len(r.Header.Get("X-Request-ID")) > 128:
				t.Errorf("transfer %d: X-Request-ID of %d bytes echoed", i, len(r.Header.Get("X-Request-ID")))
			}
		}()
	}
	wg.Wait()
	if b := admin.balance("hot", "bob"); b.Total != fmt.Sprintf("0.%08d", n+1) {
		t.Fatalf("bob has %s after %d transfers of 1 satoshi", b.Total, n+1)
	}
}

// testBalancesWithheld: a caller with transfer but without read on the
// wallet learns "insufficient funds", not the balance; a reader does.
func testBalancesWithheld(t *testing.T, admin, mover *client) {
	body := map[string]string{"from": "alice", "to": "bob", "amount": "5"}
	p := expectProblem(t, "overdraw by a mover", mover.expect(http.StatusConflict, "POST", "/wallets/hot/transfers", body,
		"Idempotency-Key", "withheld-1"), http.StatusConflict, "insufficient_funds", "")
	if !strings.Contains(p.Detail, "insufficient funds") || strings.ContainsAny(p.Detail, "0123456789") {
		t.Errorf("a caller without read was told %q", p.Detail)
	}
	p = expectProblem(t, "overdraw by the admin", admin.expect(http.StatusConflict, "POST", "/wallets/hot/transfers", body,
		"Idempotency-Key", "withheld-2"), http.StatusConflict, "insufficient_funds", "")
	if !strings.Contains(p.Detail, "available") {
		t.Errorf("a reader was told only %q", p.Detail)
	}
}

// testEmailValidated: POST /users takes a bare address only.
func testEmailValidated(t *testing.T, admin *client) {
	for _, email := range []string{"Bob <bob@example.com>", "bob", "bob@", "bob@example.com, eve@example.com", " bob@example.com"} {
		r := admin.raw("POST", "/users", fmt.Sprintf(`{"username":"bob","email":%q,"password":"password-bob"}`, email))
		expectProblem(t, "email "+email, r, http.StatusBadRequest, "validation_failed", "email")
	}
	admin.expect(http.StatusCreated, "POST", "/users", map[string]any{"username": "bob", "email": "bob@example.com", "password": "password-bob"})
}

// testFutureTickRefused: a price more than 5 minutes in the future is
// refused (it would stay "latest" until then); one a minute ahead is fine.
func testFutureTickRefused(t *testing.T, admin *client) {
	now := time.Now().UTC()
	r := admin.do("POST", "/prices", map[string]any{"pair": "BTC-USD", "price": "1", "source": "test", "at": now.Add(10 * time.Minute)})
	expectProblem(t, "tick 10 minutes ahead", r, http.StatusUnprocessableEntity, "validation_failed", "")
	r = admin.do("POST", "/prices", map[string]any{"pair": "BTC-USD", "price": "1", "source": "test", "at": now.AddDate(30, 0, 0)})
	expectProblem(t, "tick 30 years ahead", r, http.StatusUnprocessableEntity, "validation_failed", "")
	admin.expect(http.StatusCreated, "POST", "/prices", map[string]any{"pair": "BTC-USD", "price": "2", "source": "test", "at": now.Add(time.Minute)})
	var latest struct{ Price string }
	waitFor(t, "the recorded price to become readable", func() bool {
		r, err := admin.try("GET", "/prices/BTC-USD", nil)
		if err != nil || r.Status != http.StatusOK {
			return false
		}
		r.JSON(t, &latest)
		return true
	})
	if latest.Price != "2" {
		t.Fatalf("latest price %q, want 2", latest.Price)
	}
}

// TestSlowClientsCutOff: with short timeouts configured (http: in the
// YAML), a client that sends its headers slowly and one that sends its
// body slowly are disconnected, while the event stream and a websocket
// outlive both timeouts.
func TestSlowClientsCutOff(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "coinledger.yml")
	yml := "http:\n  read_header_timeout: 1s\n  read_timeout: 2s\n  write_timeout: 2s\n  idle_timeout: 3s\n"
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, admin := adminServer(t, dir, "COINLEDGER_CONFIG="+config)
	setUpWallet(t, admin, "hot", map[string]string{"alice": "1.00000000"}, "alice", "bob")
	addr := strings.TrimPrefix(s.URL, "http://")

	// cutOff dials, sends head, then trickles a byte of drip every 200ms,
	// and reports whether the server closed the connection within 8s.
	cutOff := func(head, drip string) bool {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, conn) // returns when the server closes
			close(closed)
		}()
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(8 * time.Second)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-closed:
				return true
			case <-deadline:
				return false
			case <-tick.C:
				conn.Write([]byte{drip[i%len(drip)]}) // fails once the server is gone; the reader tells
			}
		}
	}
	if !cutOff("GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: y\r\n") {
		t.Error("a client sending its headers slowly was not cut off")
	}
	if !cutOff("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n",
		`{"username":"admin","password":"`+strings.Repeat("p", 4000)) {
		t.Error("a client sending its body slowly was not cut off")
	}

	// Long-lived responses outlive the read and write timeouts.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/events/stream?type=ledger.funds_transferred", nil)
	req.Header.Set("Authorization", "Bearer "+admin.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ws := wsDial(t, s, admin.token)
	if m := wsNext(t, ws); m.Type != "authenticated" {
		t.Fatalf("websocket: %+v", m)
	}
	wsSend(t, ws, `{"subscribe":["transfers"]}`)
	if m := wsNext(t, ws); m.Type != "subscribed" {
		t.Fatalf("websocket subscribe: %+v", m)
	}
	time.Sleep(3500 * time.Millisecond)
	var created struct{ Position uint64 }
	admin.expect(http.StatusCreated, "POST", "/wallets/hot/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.1"},
		"Idempotency-Key", "late").JSON(t, &created)
	sc, found := bufio.NewScanner(resp.Body), false
	for !found && sc.Scan() {
		found = sc.Text() == fmt.Sprintf("id: %d", created.Position)
	}
	if !found {
		t.Fatalf("event stream ended before the transfer at %d arrived: %v", created.Position, sc.Err())
	}
	if m := wsNext(t, ws); m.Type != "event" || m.Position != created.Position {
		t.Fatalf("websocket after the timeouts: %+v, want the transfer at %d", m, created.Position)
	}
}
