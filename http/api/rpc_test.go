package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/apitest"
)

// grapheneMap is seed 003's api-access.json plus reader, who has
// bytemaster's password and only the database API.
const grapheneMap = `{"permission_map": [
  ["bytemaster", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
                  "password_salt_b64": "INDdM6iCi/8=",
                  "allowed_apis": ["database_api", "network_broadcast_api", "history_api", "network_node_api"]}],
  ["reader", {"password_hash_b64": "9e9GF7ooXVb9k4BoSfNIPTelXeGOZ5DrgOYMj94elaY=",
              "password_salt_b64": "INDdM6iCi/8=", "allowed_apis": ["database_api"]}],
  ["*", {"password_hash_b64": "*", "password_salt_b64": "*",
         "allowed_apis": ["database_api", "network_broadcast_api", "history_api"]}]
]}`

// rpcServer is a server with wallet main (accounts alice, holding 1.5,
// and bob) and the users of grapheneMap imported with grants on main.
func rpcServer(t *testing.T) *testServer {
	t.Helper()
	ts := newTestServer(t, nil)
	admin := ts.admin(t)
	admin.Post("/wallets", map[string]any{"name": "main", "coin": "BTC",
		"permissions": []string{"read", "transfer", "address", "withdraw", "rescan"}}).Expect(t, http.StatusCreated)
	for _, a := range []string{"alice", "bob"} {
		admin.Post("/wallets/main/accounts", map[string]any{"name": a}).Expect(t, http.StatusCreated)
	}
	admin.Post("/wallets/main/accounts/alice/imports", map[string]any{"amount": "1.50000000", "reason": "seed"},
		apitest.Header("Idempotency-Key", "seed")).Expect(t, http.StatusCreated)
	m, err := graphene.Parse([]byte(grapheneMap))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Users.ImportGraphene(context.Background(), eventstore.Metadata{Actor: "test"}, m,
		users.ImportOptions{Wallet: "main"}); err != nil {
		t.Fatal(err)
	}
	return ts
}

// rpcPost posts body to /rpc with the Authorization header auth ("":
// none) and returns the status and the body.
func rpcPost(t *testing.T, ts *testServer, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/rpc", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	// What curl --data sends: the media type is not checked.
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func basic(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// rpcReply is a response as a test reads it.
type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Data    struct {
			Code   string `json:"code"`
			Status int    `json:"status"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"data"`
	} `json:"error"`
}

// outcome summarizes a reply: "ok" or "CODE/problem_code".
func (r rpcReply) outcome() string {
	if r.Error == nil {
		return "ok"
	}
	s := strings.TrimPrefix(jsonInt(r.Error.Code), "")
	if r.Error.Data.Code != "" {
		s += "/" + r.Error.Data.Code
	}
	return s
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func decodeReply(t *testing.T, body string) rpcReply {
	t.Helper()
	var r rpcReply
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.JSONRPC != "2.0" {
		t.Fatalf("not a JSON-RPC response: %s (%v)", body, err)
	}
	return r
}

// TestRPCEnvelopes: malformed messages, batches, notifications and the
// standard error codes over HTTP.
func TestRPCEnvelopes(t *testing.T) {
	ts := rpcServer(t)
	token := "Bearer " + ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken
	for _, tc := range []struct {
		name, body string
		status     int
		want       []string // outcomes in order
	}{
		{"parse error", `{"jsonrpc":"2.0","method":`, 200, []string{"-32700"}},
		{"empty batch", `[]`, 200, []string{"-32600"}},
		{"batch of invalid items", `[1,2]`, 200, []string{"-32600", "-32600"}},
		{"unknown method", `{"jsonrpc":"2.0","method":"wallets.explode","id":1}`, 200, []string{"-32601"}},
		{"missing path parameter", `{"jsonrpc":"2.0","method":"accounts.get","params":{"wallet":"main"},"id":1}`, 200, []string{"-32602"}},
		{"path parameter with a slash", `{"jsonrpc":"2.0","method":"accounts.get","params":{"wallet":"main/accounts","account":"alice"},"id":1}`, 200, []string{"-32602"}},
		{"unknown parameter", `{"jsonrpc":"2.0","method":"accounts.get","params":{"wallet":"main","account":"alice","x":1},"id":1}`, 200, []string{"-32602"}},
		{"too many positional parameters", `{"jsonrpc":"2.0","method":"wallets.get","params":["main","x","y"],"id":1}`, 200, []string{"-32602"}},
		{"unknown body field is the REST problem", `{"jsonrpc":"2.0","method":"accounts.create","params":{"wallet":"main","name":"carol","colour":"red"},"id":1}`,
			200, []string{"-32602/unknown_field"}},
		{"not found", `{"jsonrpc":"2.0","method":"accounts.get","params":["main","nobody"],"id":1}`, 200, []string{"-32000/not_found"}},
		{"notification", `{"jsonrpc":"2.0","method":"wallets.list"}`, 204, nil},
		{"notifications only", `[{"jsonrpc":"2.0","method":"wallets.list"},{"jsonrpc":"2.0","method":"nope"}]`, 204, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rpcPost(t, ts, token, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.want == nil {
				if body != "" {
					t.Fatalf("body %q for notifications", body)
				}
				return
			}
			var replies []rpcReply
			if strings.HasPrefix(body, "[") {
				if err := json.Unmarshal([]byte(body), &replies); err != nil {
					t.Fatal(err)
				}
			} else {
				replies = []rpcReply{decodeReply(t, body)}
			}
			if len(replies) != len(tc.want) {
				t.Fatalf("%d replies, want %d: %s", len(replies), len(tc.want), body)
			}
			for i, r := range replies {
				if got := r.outcome(); got != tc.want[i] {
					t.Errorf("reply %d: %s, want %s (%s)", i, got, tc.want[i], body)
				}
				if (tc.want[i] == "-32700" || tc.want[i] == "-32600") && string(r.ID) != "null" {
					t.Errorf("reply %d: id %s, want null", i, r.ID)
				}
			}
		})
	}
}

// TestRPCBatchMixesGoodBadAndUnauthorised: one batch of a read, a write
// the caller lacks the permission for, an invalid item, an unknown method
// and a notification; each answered on its own, in order, with the REST
// problem code in error.data; writes keep the Idempotency-Key semantics.
func TestRPCBatchMixesGoodBadAndUnauthorised(t *testing.T) {
	ts := rpcServer(t)
	admin := ts.admin(t)
	ts.addUser(t, admin, "carol")
	admin.Put("/users/carol/wallets/main", map[string]any{"permissions": []string{"read"}}).Expect(t, http.StatusOK)
	carol := "Bearer " + ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken
	status, body := rpcPost(t, ts, carol, `[
	  {"jsonrpc":"2.0","method":"accounts.get","params":{"wallet":"main","account":"alice"},"id":1},
	  {"jsonrpc":"2.0","method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"0.10000000","idempotency_key":"c1"},"id":2},
	  {"jsonrpc":"2.0","id":3},
	  {"jsonrpc":"2.0","method":"nope.nope","id":4},
	  {"jsonrpc":"2.0","method":"wallets.list"},
	  {"jsonrpc":"2.0","method":"users.list","id":"five"}
	]`)
	var replies []rpcReply
	if status != 200 || json.Unmarshal([]byte(body), &replies) != nil {
		t.Fatalf("%d %s", status, body)
	}
	want := []struct{ id, outcome string }{{"1", "ok"}, {"2", "-32000/permission_denied"}, {"3", "-32600"},
		{"4", "-32601"}, {`"five"`, "-32000/permission_denied"}}
	if len(replies) != len(want) {
		t.Fatalf("%d replies, want %d: %s", len(replies), len(want), body)
	}
	for i, w := range want {
		if string(replies[i].ID) != w.id || replies[i].outcome() != w.outcome {
			t.Errorf("reply %d: id %s %s, want %s %s", i, replies[i].ID, replies[i].outcome(), w.id, w.outcome)
		}
	}
	var acct struct {
		Name    string `json:"name"`
		Balance struct {
			Available string `json:"available"`
		} `json:"balance"`
	}
	if json.Unmarshal(replies[0].Result, &acct) != nil || acct.Name != "alice" {
		t.Fatalf("accounts.get result %s", replies[0].Result)
	}

	// The admin's writes: the idempotency key answers a replay with the
	// first outcome, another body with the key is refused, and the
	// insufficient_funds refusal carries its code.
	adminAuth := "Bearer " + ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken
	transfer := func(amount, key string) rpcReply {
		_, body := rpcPost(t, ts, adminAuth, `{"jsonrpc":"2.0","method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"`+
			amount+`","idempotency_key":"`+key+`"},"id":1}`)
		return decodeReply(t, body)
	}
	first, again := transfer("0.10000000", "k1"), transfer("0.10000000", "k1")
	if first.outcome() != "ok" || string(first.Result) != string(again.Result) {
		t.Fatalf("replay: %s %s / %s %s", first.outcome(), first.Result, again.outcome(), again.Result)
	}
	if r := transfer("0.20000000", "k1"); r.outcome() != "-32602/idempotency_key_reused" {
		t.Fatalf("other body, same key: %s", r.outcome())
	}
	if r := transfer("9.00000000", "k2"); r.outcome() != "-32000/insufficient_funds" || r.Error.Data.Status != 409 {
		t.Fatalf("overdraft: %s %+v", r.outcome(), r.Error)
	}
	if r := transfer("0.10000000", ""); r.outcome() != "-32602/idempotency_key_required" {
		t.Fatalf("empty key: %s", r.outcome()) // an empty key is no key, as the empty header
	}
	_, body = rpcPost(t, ts, adminAuth, `{"jsonrpc":"2.0","method":"balances.get","params":{"wallet":"main","account":"bob","at":"`+
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339)+`"},"id":1}`)
	if r := decodeReply(t, body); r.outcome() != "ok" || !strings.Contains(string(r.Result), "0.10000000") {
		t.Fatalf("balances.get at: %s", body)
	}
}

// TestRPCHTTPBasic: HTTP Basic with the seed's users, the "*" fallback for
// unknown users, and a wrong password refused before any call.
func TestRPCHTTPBasic(t *testing.T) {
	ts := rpcServer(t)
	entries := `{"jsonrpc":"2.0","params":["history","accounts.entries",["main","alice"]],"method":"call","id":10}`
	for _, tc := range []struct {
		name, auth, body string
		status           int
		outcome          string
	}{
		{"bytemaster", basic("bytemaster", "supersecret"), entries, 200, "ok"},
		{"wrong password", basic("bytemaster", "wrong"), entries, 401, ""},
		{"unknown user falls back to *", basic("whoever", "anything"), entries, 200, "ok"},
		{"no credentials: the * user", "", entries, 200, "ok"},
		{"* may read but not transfer", basic("whoever", "x"),
			`{"jsonrpc":"2.0","method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"0.1","idempotency_key":"a"},"id":1}`,
			200, "-32000/permission_denied"},
		{"bytemaster may transfer", basic("bytemaster", "supersecret"),
			`{"jsonrpc":"2.0","method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"0.10000000","idempotency_key":"b"},"id":1}`,
			200, "ok"},
		{"admin by Basic", basic("admin", adminPassword), `{"jsonrpc":"2.0","method":"users.list","id":1}`, 200, "ok"},
		{"bad bearer", "Bearer nope", entries, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rpcPost(t, ts, tc.auth, tc.body)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if status != 200 {
				if !strings.Contains(body, `"code":"`) {
					t.Fatalf("no problem document: %s", body)
				}
				return
			}
			if r := decodeReply(t, body); r.outcome() != tc.outcome {
				t.Fatalf("%s, want %s: %s", r.outcome(), tc.outcome, body)
			}
		})
	}
}

// TestRPCAPISetsEnforcedPerMethod: reader's wallet grant allows transfers
// (an admin granted it), but its API sets (database_api only) do not: the
// JSON-RPC call is refused while the same user's REST call succeeds.
func TestRPCAPISetsEnforcedPerMethod(t *testing.T) {
	ts := rpcServer(t)
	admin := ts.admin(t)
	admin.Put("/users/reader/wallets/main", map[string]any{"permissions": []string{"read", "transfer"}}).Expect(t, http.StatusOK)
	transfer := `{"jsonrpc":"2.0","method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"0.10000000","idempotency_key":"r1"},"id":1}`
	_, body := rpcPost(t, ts, basic("reader", "supersecret"), transfer)
	r := decodeReply(t, body)
	if r.outcome() != "-32000/permission_denied" || !strings.Contains(r.Error.Data.Detail, "network_broadcast_api") {
		t.Fatalf("reader's transfer over JSON-RPC: %s", body)
	}
	_, body = rpcPost(t, ts, basic("reader", "supersecret"), `{"jsonrpc":"2.0","method":"accounts.get","params":["main","alice"],"id":1}`)
	if r := decodeReply(t, body); r.outcome() != "ok" {
		t.Fatalf("reader's read: %s", body)
	}
	tp := ts.login(t, "reader", "supersecret", "127.0.0.1")
	ts.client(t).WithToken(tp.AccessToken).Post("/wallets/main/transfers",
		map[string]any{"from": "alice", "to": "bob", "amount": "0.10000000"}, apitest.Header("Idempotency-Key", "r2")).
		Expect(t, http.StatusCreated)
	// The token is the same user's: the API sets hold for it too over JSON-RPC.
	_, body = rpcPost(t, ts, "Bearer "+tp.AccessToken, transfer)
	if r := decodeReply(t, body); r.outcome() != "-32000/permission_denied" {
		t.Fatalf("reader's transfer with a token: %s", body)
	}
}

// wsConn is a JSON-RPC websocket client.
type wsConn struct {
	t *testing.T
	c *websocket.Conn
}

func dialRPC(t *testing.T, url string, header http.Header) *wsConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/rpc", &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("dial: %v %v", err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	return &wsConn{t, c}
}

// call sends msg and returns the next message.
func (w *wsConn) call(msg string) rpcReply {
	w.t.Helper()
	wsWrite(w.t, w.c, msg)
	return decodeReply(w.t, wsRead(w.t, w.c))
}

// TestRPCSeedExamples runs seed 003's examples, adapted to coinledger's
// method names, with a real websocket client and over HTTP.
func TestRPCSeedExamples(t *testing.T) {
	ts := rpcServer(t)

	// wscat -c ws://host/rpc, then API 0 without login.
	ws := dialRPC(t, ts.URL, nil)
	r := ws.call(`{"id":1, "method":"call", "params":[0,"accounts.get",["main","alice"]]}`)
	if r.outcome() != "ok" || string(r.ID) != "1" || !strings.Contains(string(r.Result), `"alice"`) {
		t.Fatalf("API 0 without login: %+v %s", r, r.Result)
	}
	// API 0 holds read-only queries only.
	if r := ws.call(`{"id":2, "method":"call", "params":[0,"transfers.create",{"wallet":"main"}]}`); r.outcome() != "-32601" {
		t.Fatalf("a write in API 0: %s", r.outcome())
	}
	// Before login the caller is the * user, whose sets lack network_node.
	if r := ws.call(`{"id":3, "method":"call", "params":[1,"network_node",[]]}`); r.outcome() != "-32000/permission_denied" {
		t.Fatalf("network_node before login: %s", r.outcome())
	}
	// Login via API 1; a wrong password answers false.
	if r := ws.call(`{"id":4, "method":"call", "params":[1,"login",["bytemaster", "wrong"]]}`); string(r.Result) != "false" {
		t.Fatalf("wrong login: %s %s", r.outcome(), r.Result)
	}
	if r := ws.call(`{"id":1, "method":"call", "params":[1,"login",["bytemaster", "supersecret"]]}`); string(r.Result) != "true" {
		t.Fatalf("login: %s %s", r.outcome(), r.Result)
	}
	// The network_node API's id, then a call of it (the rescan fails for
	// want of a chain backend, past the API set check).
	r = ws.call(`{"id":2, "method":"call", "params":[1,"network_node",[]]}`)
	if r.outcome() != "ok" || string(r.Result) != "2" {
		t.Fatalf("network_node: %s %s", r.outcome(), r.Result)
	}
	if r := ws.call(`{"id":3, "method":"call", "params":[2,"wallets.rescan",["main"]]}`); r.Error != nil &&
		r.Error.Data.Code == "permission_denied" {
		t.Fatalf("rescan refused: %+v", r.Error)
	}
	// get_api_by_name: bytemaster's sets include network_broadcast, not admin.
	r = ws.call(`{"id":4, "method":"call", "params":[1,"get_api_by_name",["network_broadcast"]]}`)
	if r.outcome() != "ok" || string(r.Result) != "3" {
		t.Fatalf("get_api_by_name: %s %s", r.outcome(), r.Result)
	}
	if r := ws.call(`{"id":5, "method":"call", "params":[3,"transfers.create",{"wallet":"main","from":"alice","to":"bob","amount":"0.10000000","idempotency_key":"w1"}]}`); r.outcome() != "ok" {
		t.Fatalf("transfer through API 3: %s", r.outcome())
	}
	if r := ws.call(`{"id":6, "method":"call", "params":[1,"get_api_by_name",["admin"]]}`); r.outcome() != "-32000/permission_denied" {
		t.Fatalf("admin API for bytemaster: %s", r.outcome())
	}
	// A method of another API is not found in the one named.
	if r := ws.call(`{"id":7, "method":"call", "params":[2,"accounts.entries",["main","alice"]]}`); r.outcome() != "-32601" {
		t.Fatalf("history method in network_node: %s", r.outcome())
	}

	// curl --data '{"jsonrpc": "2.0", "method": "call", "params": [0, ...], "id": 1}' http://host/rpc
	_, body := rpcPost(t, ts, "", `{"jsonrpc": "2.0", "method": "call", "params": [0, "accounts.get", ["main", "alice"]], "id": 1}`)
	if r := decodeReply(t, body); r.outcome() != "ok" {
		t.Fatalf("curl API 0: %s", body)
	}
	// API 0 as a regular JSON-RPC method.
	_, body = rpcPost(t, ts, "", `{"jsonrpc": "2.0", "method": "accounts.get", "params": ["main", "alice"], "id": 1}`)
	if r := decodeReply(t, body); r.outcome() != "ok" {
		t.Fatalf("curl plain: %s", body)
	}
	// curl -u bytemaster:supersecret ... ["history", "accounts.entries", ...]
	_, body = rpcPost(t, ts, basic("bytemaster", "supersecret"),
		`{"jsonrpc": "2.0", "params": ["history", "accounts.entries", ["main", "alice", {"limit": 10}]], "method": "call", "id": 10}`)
	if r := decodeReply(t, body); r.outcome() != "ok" || string(r.ID) != "10" || !strings.Contains(string(r.Result), "entries") {
		t.Fatalf("curl -u history: %s", body)
	}

	// wscat -c ws://bytemaster:supersecret@host/rpc: logged in at once.
	u := strings.Replace(ts.URL, "http://", "http://bytemaster:supersecret@", 1)
	ws2 := dialRPC(t, u, nil)
	if r := ws2.call(`{"id":1, "method":"call", "params":[1,"network_node",[]]}`); r.outcome() != "ok" {
		t.Fatalf("network_node with credentials in the URL: %s", r.outcome())
	}
}

// TestRPCSubscribe: subscribe on the RPC websocket sends the hub's events
// as notifications, resuming from a position.
func TestRPCSubscribe(t *testing.T) {
	ts := rpcServer(t)
	token := ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken
	ws := dialRPC(t, ts.URL, http.Header{"Authorization": {"Bearer " + token}})
	r := ws.call(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"topics":["transfers"],"from":0}}`)
	if r.outcome() != "ok" || string(r.Result) != `{"from":0,"subscription":"1"}` {
		t.Fatalf("subscribe: %s %s", r.outcome(), r.Result)
	}
	wsWrite(t, ws.c, `{"jsonrpc":"2.0","id":2,"method":"transfers.create","params":{"wallet":"main","from":"alice","to":"bob","amount":"0.10000000","idempotency_key":"s1"}}`)
	var sawReply, sawEvent bool
	for !sawReply || !sawEvent {
		msg := wsRead(t, ws.c)
		var n struct {
			Method string `json:"method"`
			Params struct {
				Subscription string `json:"subscription"`
				Event        struct {
					Topic    string `json:"topic"`
					Position uint64 `json:"position"`
				} `json:"event"`
			} `json:"params"`
		}
		_ = json.Unmarshal([]byte(msg), &n)
		switch {
		case n.Method == "event":
			if n.Params.Subscription != "1" || n.Params.Event.Topic != "transfers" || n.Params.Event.Position == 0 {
				t.Fatalf("event %s", msg)
			}
			sawEvent = true
		case strings.Contains(msg, `"id":2`):
			sawReply = true
		default:
			t.Fatalf("unexpected %s", msg)
		}
	}
	if r := ws.call(`{"jsonrpc":"2.0","id":3,"method":"subscribe","params":{"topics":["gossip"]}}`); r.outcome() != "-32602" {
		t.Fatalf("unknown topic: %s", r.outcome())
	}
	_, body := rpcPost(t, ts, "Bearer "+token, `{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"topics":["transfers"]}}`)
	if r := decodeReply(t, body); r.outcome() != "-32601" {
		t.Fatalf("subscribe over HTTP: %s", body)
	}
}

// TestRPCMethodsDescribed: rpc.discover and GET /rpc/openrpc.json serve
// the same OpenRPC document, and every method in it has a description.
func TestRPCMethodsDescribed(t *testing.T) {
	ts := newTestServer(t, nil)
	status, body := rpcPost(t, ts, "", `{"jsonrpc":"2.0","method":"rpc.discover","id":1}`)
	r := decodeReply(t, body)
	if status != 200 || r.outcome() != "ok" {
		t.Fatalf("rpc.discover: %d %s", status, body)
	}
	status, served := get(t, ts.URL+"/rpc/openrpc.json")
	var compact bytes.Buffer
	if status != 200 || json.Compact(&compact, []byte(served)) != nil || compact.String() != string(r.Result) {
		t.Fatalf("GET /rpc/openrpc.json: %d, differs from rpc.discover", status)
	}
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name        string `json:"name"`
			Summary     string `json:"summary"`
			Description string `json:"description"`
			Params      []struct {
				Name string `json:"name"`
			} `json:"params"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(r.Result, &doc); err != nil || doc.OpenRPC == "" || len(doc.Methods) < 50 {
		t.Fatalf("document: %v, %d methods", err, len(doc.Methods))
	}
	seen := map[string]bool{}
	for _, m := range doc.Methods {
		if strings.TrimSpace(m.Summary) == "" && strings.TrimSpace(m.Description) == "" {
			t.Errorf("method %s has no description", m.Name)
		}
		if seen[m.Name] {
			t.Errorf("method %s twice", m.Name)
		}
		seen[m.Name] = true
	}
	for _, name := range []string{"wallets.list", "accounts.entries", "balances.get", "transfers.create", "holds.create",
		"deposits.list", "withdrawals.create", "prices.get", "alerts.create", "events.list"} {
		if !seen[name] {
			t.Errorf("no method %s", name)
		}
	}
}

// TestRPCSubscriptionEndsWhenRevoked: disabling the user closes its RPC
// websocket's subscription with 4401, as /api/v1/ws does.
func TestRPCSubscriptionEndsWhenRevoked(t *testing.T) {
	ts := rpcServer(t)
	admin := ts.admin(t)
	ts.addUser(t, admin, "carol")
	token := ts.login(t, "carol", "password-carol", "127.0.0.1").AccessToken
	ws := dialRPC(t, ts.URL, http.Header{"Authorization": {"Bearer " + token}})
	if r := ws.call(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":[["prices"]]}`); r.outcome() != "ok" {
		t.Fatalf("subscribe: %s", r.outcome())
	}
	admin.Post("/users/carol/disable", nil).Expect(t, http.StatusNoContent)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err := ws.c.Read(ctx)
	if websocket.CloseStatus(err) != 4401 {
		t.Fatalf("read after disabling: %v, want close 4401", err)
	}
}

// TestRPCWebsocketConnectionCap: RPC websockets opened with credentials
// count against the user's websocket connections, with /api/v1/ws's.
func TestRPCWebsocketConnectionCap(t *testing.T) {
	ts := newTestServer(t, func(d *api.Deps) { d.Websocket.MaxConnsPerUser = 2 })
	token := ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken
	ts.dial(t, token) // /api/v1/ws
	dialRPC(t, ts.URL, http.Header{"Authorization": {"Bearer " + token}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/rpc",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third websocket: %v %v, want 429", err, resp)
	}
	// Without credentials the socket is not the user's.
	dialRPC(t, ts.URL, nil)
}
