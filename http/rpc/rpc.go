// Package rpc is coinledger's JSON-RPC 2.0 transport at /rpc: HTTP POST
// (single calls, batches, notifications) and a websocket on the same path
// that also speaks Graphene's API access (call with an API id or name,
// login, get_api_by_name) and carries subscriptions.
//
// The package knows envelopes, sessions and Graphene's API numbering; what
// a method does, who the caller is and which API sets a caller may use are
// the Backend's (http/api runs each method through its REST route).
//
// # Graphene API access
//
// A call {"method":"call","params":[API, METHOD, ARGS]} names the API by
// id or name. On every connection API 0 is database (database_api) and API
// 1 is login (login_api); further APIs get ids from 2 on when a client asks
// for them, by [1, NAME, []] (e.g. [1,"network_node",[]]) or
// [1,"get_api_by_name",[NAME]], and only if the caller may use them. An API
// name is "history" or "history_api". [1,"login",[USER,PASSWORD]] answers
// true or false and, on the websocket, makes later calls the user's.
// METHOD is one of the Backend's methods (wallets.list, accounts.get, …)
// and must belong to the API the call names; ARGS is an array (positional
// parameters) or an object (named ones).
package rpc

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Graphene's two fixed APIs.
const (
	DatabaseAPI = "database_api" // id 0: read-only queries, no login needed
	LoginAPI    = "login_api"    // id 1: login and access to the other APIs
)

// Caller is who makes calls, as the Backend authenticated them. The
// transport only holds it.
type Caller any

// Backend runs methods. Its methods are called concurrently.
type Backend interface {
	// Call runs method with params (nil, a JSON array or a JSON object)
	// for caller, on behalf of the HTTP request r (the POST, or the
	// websocket's upgrade request). api is the API set a Graphene call
	// named ("" for a plain call): the method must belong to it. The
	// result is JSON (nil: null). An *Error is answered as it is; any
	// other error as -32603 internal error.
	Call(ctx context.Context, r *http.Request, caller Caller, api, method string, params json.RawMessage) (json.RawMessage, error)
	// MayUse reports whether caller may call the methods of API set api
	// now (nil), or the error to answer (an *Error).
	MayUse(ctx context.Context, caller Caller, api string) error
	// Login checks a username and password (Graphene's login) from r: the
	// caller they make, or a nil Caller and nil error for bad credentials.
	Login(ctx context.Context, r *http.Request, username, password string) (Caller, error)
	// APIs returns the names of the API sets a client may ask for.
	APIs() []string
}

// Server answers JSON-RPC messages. Create it with New.
type Server struct {
	b   Backend
	sub Subscriber
}

// New returns a Server over b; sub (nil: none) serves subscribe on the
// websocket.
func New(b Backend, sub Subscriber) *Server { return &Server{b: b, sub: sub} }

// maxMessage bounds a message, over HTTP and on the websocket.
const maxMessage = 1 << 20

// session is the state of one client: its caller, which may change by
// login on the websocket, and the API ids handed out.
type session struct {
	r         *http.Request
	caller    Caller
	websocket bool
	apis      []string // id → API set name; 0 and 1 fixed
	subscribe func(ctx context.Context, params json.RawMessage) (json.RawMessage, error)
	// afterWrite run once the answer to the current message is written
	// (or, for notifications, would have been).
	afterWrite []func()
}

// written runs and clears afterWrite.
func (ss *session) written() {
	for _, f := range ss.afterWrite {
		f()
	}
	ss.afterWrite = nil
}

func newSession(r *http.Request, caller Caller, websocket bool) *session {
	return &session{r: r, caller: caller, websocket: websocket, apis: []string{DatabaseAPI, LoginAPI}}
}

// handle answers one message: the responses to write (nil when there is
// nothing to answer: notifications only) and whether it was a batch.
func (s *Server) handle(ctx context.Context, ss *session, msg []byte) (any, bool) {
	items, batch, derr := Decode(msg)
	if derr != nil {
		return failure(nil, derr), true
	}
	var out []Response
	for _, it := range items {
		var res Response
		if it.Err != nil {
			res = failure(it.ID, it.Err)
		} else {
			result, err := s.call(ctx, ss, it.Method, it.Params)
			if it.Notification() {
				continue
			}
			if err != nil {
				res = failure(it.ID, asError(err))
			} else {
				res = success(it.ID, result)
			}
		}
		out = append(out, res)
	}
	switch {
	case len(out) == 0:
		return nil, false
	case !batch:
		return out[0], true
	}
	return out, true
}

// asError turns a Backend's error into the error answered.
func asError(err error) *Error {
	if e, ok := err.(*Error); ok {
		return e
	}
	return Errorf(CodeInternal, "internal error")
}

// call runs one request: Graphene's call, login and get_api_by_name, the
// websocket's subscribe, or a Backend method.
func (s *Server) call(ctx context.Context, ss *session, method string, params json.RawMessage) (json.RawMessage, error) {
	switch method {
	case "call":
		return s.grapheneCall(ctx, ss, params)
	case "login":
		return s.login(ctx, ss, params)
	case "get_api_by_name":
		return s.apiByName(ctx, ss, params)
	case "subscribe":
		if ss.subscribe == nil {
			return nil, Errorf(CodeMethodNotFound, "subscribe needs the websocket")
		}
		return ss.subscribe(ctx, params)
	}
	return s.b.Call(ctx, ss.r, ss.caller, "", method, params)
}

// grapheneCall runs [API, METHOD, ARGS].
func (s *Server) grapheneCall(ctx context.Context, ss *session, params json.RawMessage) (json.RawMessage, error) {
	var p []json.RawMessage
	if json.Unmarshal(params, &p) != nil || len(p) < 2 || len(p) > 3 {
		return nil, Errorf(CodeInvalidParams, "call takes [API, METHOD, ARGS]")
	}
	api, err := ss.resolve(p[0])
	if err != nil {
		return nil, err
	}
	var method string
	if json.Unmarshal(p[1], &method) != nil || method == "" {
		return nil, Errorf(CodeInvalidParams, "call: METHOD must be a non-empty string")
	}
	var args json.RawMessage
	if len(p) == 3 {
		args = p[2]
		if a := strings.TrimSpace(string(args)); a == "null" {
			args = nil
		} else if a[0] != '[' && a[0] != '{' {
			return nil, Errorf(CodeInvalidParams, "call: ARGS must be an array or an object")
		}
	}
	if api == LoginAPI {
		switch method {
		case "login":
			return s.login(ctx, ss, args)
		case "get_api_by_name":
			return s.apiByName(ctx, ss, args)
		}
		if name, ok := s.known(method); ok { // [1, "network_node", []]
			return s.grant(ctx, ss, name)
		}
	}
	if err := s.b.MayUse(ctx, ss.caller, api); err != nil {
		return nil, err
	}
	return s.b.Call(ctx, ss.r, ss.caller, api, method, args)
}

// resolve returns the API set an API id or name stands for.
func (ss *session) resolve(raw json.RawMessage) (string, error) {
	var id int
	if json.Unmarshal(raw, &id) == nil {
		if id < 0 || id >= len(ss.apis) {
			return "", Errorf(CodeInvalidParams, "call: API %d has not been handed out on this connection; ask for it with get_api_by_name", id)
		}
		return ss.apis[id], nil
	}
	var name string
	if json.Unmarshal(raw, &name) != nil || name == "" {
		return "", Errorf(CodeInvalidParams, "call: API must be an id or a name")
	}
	return apiName(name), nil
}

// apiName is the API set name of "history" or "history_api".
func apiName(name string) string {
	if strings.HasSuffix(name, "_api") {
		return name
	}
	return name + "_api"
}

// known reports whether name names one of the Backend's API sets.
func (s *Server) known(name string) (string, bool) {
	n := apiName(name)
	for _, a := range s.b.APIs() {
		if a == n {
			return n, true
		}
	}
	return "", false
}

// apiByName answers get_api_by_name [NAME]: the API's id on this session.
func (s *Server) apiByName(ctx context.Context, ss *session, params json.RawMessage) (json.RawMessage, error) {
	var name string
	if !positional(params, &name) || name == "" {
		return nil, Errorf(CodeInvalidParams, "get_api_by_name takes [NAME]")
	}
	n, ok := s.known(name)
	if !ok {
		return nil, Errorf(CodeInvalidParams, "no API named %q", clip(name))
	}
	return s.grant(ctx, ss, n)
}

// grant hands out the id of API set name, if the caller may use it.
func (s *Server) grant(ctx context.Context, ss *session, name string) (json.RawMessage, error) {
	if err := s.b.MayUse(ctx, ss.caller, name); err != nil {
		return nil, err
	}
	for id, a := range ss.apis {
		if a == name {
			return json.RawMessage(strconv.Itoa(id)), nil
		}
	}
	ss.apis = append(ss.apis, name)
	return json.RawMessage(strconv.Itoa(len(ss.apis) - 1)), nil
}

// login answers [USER, PASSWORD] with true or false. Only the websocket
// keeps a login: over HTTP, send the credentials with every request
// (HTTP Basic).
func (s *Server) login(ctx context.Context, ss *session, params json.RawMessage) (json.RawMessage, error) {
	if !ss.websocket {
		return nil, Errorf(CodeInvalidRequest, "login needs the websocket; over HTTP send HTTP Basic credentials with each request")
	}
	var user, password string
	if !positional(params, &user, &password) {
		return nil, Errorf(CodeInvalidParams, "login takes [USER, PASSWORD]")
	}
	c, err := s.b.Login(ctx, ss.r, user, password)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return json.RawMessage("false"), nil
	}
	ss.caller = c
	// The ids handed out belong to the previous caller.
	ss.apis = ss.apis[:2]
	return json.RawMessage("true"), nil
}

// positional decodes params, a JSON array of exactly len(dst) strings.
func positional(params json.RawMessage, dst ...*string) bool {
	var p []json.RawMessage
	if json.Unmarshal(params, &p) != nil || len(p) != len(dst) {
		return false
	}
	for i, d := range dst {
		if json.Unmarshal(p[i], d) != nil {
			return false
		}
	}
	return true
}
