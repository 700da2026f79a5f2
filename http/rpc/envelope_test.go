package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		msg   string
		whole int   // the code of a whole-message error, 0: none
		batch bool  //
		items []int // per item: 0 valid, else its error code
		ids   []string
	}{
		{name: "call", msg: `{"jsonrpc":"2.0","method":"wallets.list","id":1}`, items: []int{0}, ids: []string{"1"}},
		{name: "graphene without jsonrpc", msg: `{"id":1, "method":"call", "params":[0,"accounts.get",["main","alice"]]}`, items: []int{0}, ids: []string{"1"}},
		{name: "notification", msg: `{"jsonrpc":"2.0","method":"x"}`, items: []int{0}, ids: []string{""}},
		{name: "null id is not a notification", msg: `{"jsonrpc":"2.0","method":"x","id":null}`, items: []int{0}, ids: []string{"null"}},
		{name: "string id", msg: ` {"method":"x","id":"a"} `, items: []int{0}, ids: []string{`"a"`}},
		{name: "not json", msg: `{"jsonrpc":"2.0","method":"x",`, whole: CodeParseError},
		{name: "empty", msg: ``, whole: CodeParseError},
		{name: "empty batch", msg: `[]`, whole: CodeInvalidRequest},
		{name: "scalar", msg: `1`, items: []int{CodeInvalidRequest}, ids: []string{"null"}},
		{name: "wrong version", msg: `{"jsonrpc":"1.0","method":"x","id":3}`, items: []int{CodeInvalidRequest}, ids: []string{"3"}},
		{name: "no method", msg: `{"jsonrpc":"2.0","id":3}`, items: []int{CodeInvalidRequest}, ids: []string{"3"}},
		{name: "empty method", msg: `{"method":"","id":3}`, items: []int{CodeInvalidRequest}, ids: []string{"3"}},
		{name: "method not a string", msg: `{"method":1,"id":3}`, items: []int{CodeInvalidRequest}, ids: []string{"3"}},
		{name: "scalar params", msg: `{"method":"x","params":1,"id":3}`, items: []int{CodeInvalidRequest}, ids: []string{"3"}},
		{name: "object id", msg: `{"method":"x","id":{}}`, items: []int{CodeInvalidRequest}, ids: []string{"null"}},
		{name: "unknown member", msg: `{"method":"x","id":4,"extra":1}`, items: []int{CodeInvalidRequest}, ids: []string{"4"}},
		{name: "batch of invalid items", msg: `[1,2,3]`, batch: true,
			items: []int{CodeInvalidRequest, CodeInvalidRequest, CodeInvalidRequest}, ids: []string{"null", "null", "null"}},
		{name: "mixed batch", msg: `[{"method":"a","id":1},{"method":"b"},{"id":2},"x"]`, batch: true,
			items: []int{0, 0, CodeInvalidRequest, CodeInvalidRequest}, ids: []string{"1", "", "2", "null"}},
		{name: "batch too long", msg: "[" + strings.Repeat(`{"method":"a"},`, MaxBatch) + `{"method":"a"}]`, whole: CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			items, batch, err := Decode([]byte(tc.msg))
			if tc.whole != 0 {
				if err == nil || err.Code != tc.whole {
					t.Fatalf("error %v, want code %d", err, tc.whole)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if batch != tc.batch || len(items) != len(tc.items) {
				t.Fatalf("batch %v, %d items; want %v, %d", batch, len(items), tc.batch, len(tc.items))
			}
			for i, it := range items {
				code := 0
				if it.Err != nil {
					code = it.Err.Code
				}
				id := string(it.ID)
				if it.Err != nil {
					id = string(idOrNull(it.ID))
				}
				if code != tc.items[i] || id != tc.ids[i] {
					t.Errorf("item %d: code %d id %q; want %d %q", i, code, id, tc.items[i], tc.ids[i])
				}
			}
		})
	}
}

// FuzzDecode: any message decodes without panicking into either one
// whole-message error or items that are each a valid request or an error,
// and what is answered for it encodes as JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"jsonrpc":"2.0","method":"a","id":1}`, `[{"method":"a"},1,{"id":"x"}]`, `[]`, `{"method":"call","params":[0,"x",[]]}`,
		`{"id":null,"method":"m","params":{}}`, `[[]]`, `"x"`, `{"method":"a","jsonrpc":2}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		items, batch, err := Decode(msg)
		if err != nil {
			if items != nil {
				t.Fatal("items beside a whole-message error")
			}
			if _, e := json.Marshal(failure(nil, err)); e != nil {
				t.Fatal(e)
			}
			return
		}
		if len(items) == 0 || (!batch && len(items) != 1) {
			t.Fatalf("%d items, batch %v", len(items), batch)
		}
		if batch != (bytes.TrimSpace(msg)[0] == '[') {
			t.Fatal("batch is not an array")
		}
		for _, it := range items {
			if it.Err == nil && (it.Method == "" || (it.Params != nil && it.Params[0] != '[' && it.Params[0] != '{')) {
				t.Fatalf("invalid request accepted: %+v", it.Request)
			}
			if it.ID != nil && !json.Valid(it.ID) {
				t.Fatalf("id %q is not JSON", it.ID)
			}
			res := success(it.ID, nil)
			if it.Err != nil {
				res = failure(it.ID, it.Err)
			}
			if b, e := json.Marshal(res); e != nil || !json.Valid(b) {
				t.Fatalf("response does not encode: %v", e)
			}
		}
	})
}

// echoBackend answers every method with its params; "fail" fails.
type echoBackend struct{ calls []string }

func (b *echoBackend) Call(_ context.Context, _ *http.Request, _ Caller, api, method string, params json.RawMessage) (json.RawMessage, error) {
	b.calls = append(b.calls, api+":"+method)
	if method == "fail" {
		return nil, Errorf(CodeServerError, "failed")
	}
	return params, nil
}
func (b *echoBackend) MayUse(context.Context, Caller, string) error { return nil }
func (b *echoBackend) Login(context.Context, *http.Request, string, string) (Caller, error) {
	return nil, nil
}
func (b *echoBackend) APIs() []string { return []string{DatabaseAPI, LoginAPI, "history_api"} }

func TestServeHTTP(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"call", `{"jsonrpc":"2.0","method":"m","params":[1],"id":7}`, 200, `{"jsonrpc":"2.0","id":7,"result":[1]}`},
		{"null result", `{"jsonrpc":"2.0","method":"m","id":7}`, 200, `{"jsonrpc":"2.0","id":7,"result":null}`},
		{"notification", `{"jsonrpc":"2.0","method":"m"}`, 204, ``},
		{"notifications only", `[{"jsonrpc":"2.0","method":"m"},{"jsonrpc":"2.0","method":"fail"}]`, 204, ``},
		{"parse error", `{"jsonrpc"`, 200, `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error: the message is not JSON"}}`},
		{"empty batch", `[]`, 200, `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"invalid request: an empty batch"}}`},
		{"batch", `[{"method":"m","params":{"a":1},"id":1},{"method":"m"},{"method":"fail","id":"x"},{"id":3}]`, 200,
			`[{"jsonrpc":"2.0","id":1,"result":{"a":1}},{"jsonrpc":"2.0","id":"x","error":{"code":-32000,"message":"failed"}},` +
				`{"jsonrpc":"2.0","id":3,"error":{"code":-32600,"message":"invalid request: method is required"}}]`},
		{"graphene call by name", `{"method":"call","params":["history","m",["a"]],"id":1}`, 200, `{"jsonrpc":"2.0","id":1,"result":["a"]}`},
		{"graphene api not handed out", `{"method":"call","params":[5,"m",[]],"id":1}`, 200,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"call: API 5 has not been handed out on this connection; ask for it with get_api_by_name"}}`},
		{"login needs the websocket", `{"method":"call","params":[1,"login",["u","p"]],"id":1}`, 200,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"login needs the websocket; over HTTP send HTTP Basic credentials with each request"}}`},
		{"get_api_by_name", `{"method":"call","params":[1,"get_api_by_name",["history"]],"id":1}`, 200, `{"jsonrpc":"2.0","id":1,"result":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(&echoBackend{}, nil)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/rpc", strings.NewReader(tc.body)), nil)
			body, _ := io.ReadAll(w.Body)
			if w.Code != tc.status || strings.TrimSpace(string(body)) != tc.want {
				t.Fatalf("%d %s\nwant %d %s", w.Code, body, tc.status, tc.want)
			}
		})
	}
}
