package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/http/rpc"
	"github.com/labstack/echo/v4"
)

// rpcCaller is who calls over /rpc. Its access is worked out again at each
// call from the credential (as each REST request does), so a revocation,
// a disabled user or a changed grant counts on the next call.
type rpcCaller struct {
	name  string    // the user the credential was checked as, "" for none
	token string    // a bearer token or API key
	user  string    // a password login: the user ...
	since time.Time // ... and when it logged in (sessions revoked later end it)
}

// rpcAccessKey carries a JSON-RPC caller's access into the REST route a
// method runs: authenticate takes it instead of the Authorization header.
// Only this package can set it.
type rpcAccessKey struct{}

// rpcBackend runs JSON-RPC methods through the REST routes of e.
type rpcBackend struct {
	h       *handlers
	e       *echo.Echo
	methods map[string]rpcMethod
}

// mountRPC serves JSON-RPC at /rpc (POST, and GET for the websocket) and
// its OpenRPC document at /rpc/openrpc.json.
func (h *handlers) mountRPC(e *echo.Echo) {
	b := &rpcBackend{h: h, e: e, methods: map[string]rpcMethod{}}
	for _, m := range rpcMethods {
		b.methods[m.name] = m
	}
	srv := rpc.New(b, rpcFollower{h})
	doc := openRPCDocument() // a method whose route openapi.json lacks panics here, at start
	e.GET("/rpc/openrpc.json", func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, doc)
	})
	e.POST("/rpc", func(c echo.Context) error {
		caller, err := h.rpcCaller(c)
		if err != nil {
			return err
		}
		srv.ServeHTTP(c.Response(), c.Request(), caller)
		return nil
	})
	e.GET("/rpc", func(c echo.Context) error {
		caller, err := h.rpcCaller(c)
		if err != nil {
			return err
		}
		// Credentials in the upgrade count the socket against the user's
		// websocket connections, with /api/v1/ws's.
		if caller.name != "" {
			leave, ok := h.hub.Admit(caller.name)
			if !ok {
				return &apiError{status: http.StatusTooManyRequests, code: "too_many_connections",
					detail: "the user holds the most websocket connections allowed"}
			}
			defer leave()
		}
		srv.ServeWebsocket(c.Response(), c.Request(), caller, h.hub.Done())
		return nil
	})
}

// rpcCaller authenticates the Authorization header of a /rpc request:
// a bearer token or API key, or HTTP Basic (checked like a login, through
// the login guard). No header is the anonymous caller (see access).
func (h *handlers) rpcCaller(c echo.Context) (rpcCaller, error) {
	r := c.Request()
	header := r.Header.Get(echo.HeaderAuthorization)
	if header == "" {
		return rpcCaller{}, nil
	}
	if token, ok := auth.ParseBearer(header); ok {
		a, _, err := h.access(r.Context(), token)
		if err != nil {
			return rpcCaller{}, err
		}
		return rpcCaller{name: a.Username, token: token}, nil
	}
	user, password, ok := auth.ParseBasic(header)
	if !ok {
		return rpcCaller{}, errUnauthorized
	}
	u, _, err := h.checkPassword(c, user, password)
	if err != nil {
		return rpcCaller{}, err
	}
	return rpcCaller{name: u.Username, user: u.Username, since: time.Now()}, nil
}

// access returns the caller's access now. The anonymous caller is the
// wildcard user (Graphene's "*") when it accepts any password, else nobody
// (ok false: REST answers 401).
func (b *rpcBackend) access(ctx context.Context, c rpcCaller) (a users.Access, ok bool, err error) {
	switch {
	case c.token != "":
		a, _, err = b.h.access(ctx, c.token)
		return a, err == nil, err
	case c.user != "":
		a, err = b.h.d.Users.TokenAccess(ctx, c.user, c.since, "")
		if errors.Is(err, users.ErrBadCredentials) {
			err = errUnauthorized
		}
		return a, err == nil, err
	}
	u, err := b.h.d.Users.Authenticate(ctx, "", "")
	switch {
	case errors.Is(err, users.ErrBadCredentials), errors.Is(err, identity.ErrUserDisabled):
		return a, false, nil
	case err != nil:
		return a, false, err
	}
	a, err = b.h.d.Users.TokenAccess(ctx, u.Username, time.Now(), "")
	if errors.Is(err, users.ErrBadCredentials) {
		return a, false, nil
	}
	return a, err == nil, err
}

// APIs implements rpc.Backend.
func (b *rpcBackend) APIs() []string { return rpcAPIs }

// MayUse implements rpc.Backend: see allowed.
func (b *rpcBackend) MayUse(ctx context.Context, caller rpc.Caller, api string) error {
	if api == rpc.LoginAPI || api == graphene.DatabaseAPI {
		return nil
	}
	a, ok, err := b.access(ctx, caller.(rpcCaller))
	return b.allowed(a, ok, err, api)
}

// allowed decides whether a caller whose access is a (ok false: nobody;
// err: it could not be worked out) may call the methods of API set api:
// login_api and database_api are everyone's (a method of them that needs
// a credential answers 401 itself); a user with API sets (imported from a
// Graphene permission map) may use only those; other users any (their
// roles and grants decide each call).
func (b *rpcBackend) allowed(a users.Access, ok bool, err error, api string) error {
	switch {
	case api == rpc.LoginAPI || api == graphene.DatabaseAPI:
		return nil
	case err != nil:
		return b.problem(err)
	case !ok:
		return b.problem(errUnauthorized)
	case a.APIs != nil && !slices.Contains(a.APIs, api):
		return b.problem(&apiError{status: http.StatusForbidden, code: "permission_denied",
			detail: fmt.Sprintf("the API sets of %s do not include %s", a.Username, api)})
	}
	return nil
}

// Login implements rpc.Backend: the password check of POST /auth/login.
func (b *rpcBackend) Login(ctx context.Context, r *http.Request, username, password string) (rpc.Caller, error) {
	// The websocket's own request: the client's address, for the limits.
	u, _, err := b.h.checkPassword(b.e.NewContext(r.WithContext(ctx), nil), username, password)
	switch {
	case errors.Is(err, errBadCredentials):
		return nil, nil
	case err != nil:
		return nil, b.problem(err)
	}
	return rpcCaller{name: u.Username, user: u.Username, since: time.Now()}, nil
}

// Call implements rpc.Backend: it checks the method's API set, turns the
// parameters into a request of the method's REST route and serves it
// in-process, with the caller's access, address and request id.
func (b *rpcBackend) Call(ctx context.Context, r *http.Request, caller rpc.Caller, api, method string, params json.RawMessage) (json.RawMessage, error) {
	m, ok := b.methods[method]
	if !ok || (api != "" && m.api != api) {
		in := ""
		if api != "" {
			in = " in " + api
		}
		return nil, rpc.Errorf(rpc.CodeMethodNotFound, "method not found: %q%s", clipName(method), in)
	}
	a, ok, err := b.access(ctx, caller.(rpcCaller))
	if err := b.allowed(a, ok, err, m.api); err != nil {
		return nil, err
	}
	if err != nil {
		return nil, b.problem(err)
	}
	req, perr := b.request(ctx, r, m, params)
	if perr != nil {
		return nil, perr
	}
	if ok {
		req = req.WithContext(context.WithValue(req.Context(), rpcAccessKey{}, a))
	}
	w := &recorder{header: http.Header{}, status: http.StatusOK}
	b.e.ServeHTTP(w, req)
	return b.result(w)
}

// request builds the REST request of m with params.
func (b *rpcBackend) request(ctx context.Context, r *http.Request, m rpcMethod, params json.RawMessage) (*http.Request, *rpc.Error) {
	op := openRPCOperation(m)
	named, err := namedParams(op, params)
	if err != nil {
		return nil, err
	}
	path := m.path
	for _, p := range op.path {
		v, ok := named[p.Name]
		if !ok {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %s is required", p.Name)
		}
		s, err := scalar(p.Name, v)
		if err != nil {
			return nil, err
		}
		// One path segment, as a REST client could send it.
		if s == "" || s == "." || s == ".." || strings.Contains(s, "/") {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %s must be a non-empty name without /", p.Name)
		}
		path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(s), 1)
		delete(named, p.Name)
	}
	q := url.Values{}
	for _, p := range op.query {
		if v, ok := named[p.Name]; ok {
			s, err := scalar(p.Name, v)
			if err != nil {
				return nil, err
			}
			q.Set(p.Name, s)
			delete(named, p.Name)
		}
	}
	key, hasKey := named[idempotencyParam]
	delete(named, idempotencyParam)
	var body []byte
	if op.body != nil {
		body, _ = json.Marshal(named)
	} else if len(named) > 0 {
		for name := range named {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: unknown parameter %q", clipName(name))
		}
	}
	target := path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, rerr := http.NewRequestWithContext(ctx, m.method, target, bytes.NewReader(body))
	if rerr != nil {
		return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %v", rerr)
	}
	req.RemoteAddr = r.RemoteAddr
	for _, name := range []string{"X-Forwarded-For", echo.HeaderXRequestID, "User-Agent"} {
		if v := r.Header.Values(name); len(v) > 0 {
			req.Header[name] = v
		}
	}
	if body != nil {
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	}
	if hasKey {
		s, err := scalar(idempotencyParam, key)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Idempotency-Key", s)
	}
	return req, nil
}

// idempotencyParam is the parameter that carries the Idempotency-Key header.
const idempotencyParam = "idempotency_key"

// namedParams returns params by name: an object as it is; an array fills
// op's path parameters, then its query parameters, in order, and may end
// with an object of further named parameters.
func namedParams(op *rpcOperation, params json.RawMessage) (map[string]json.RawMessage, *rpc.Error) {
	named := map[string]json.RawMessage{}
	p := bytes.TrimSpace(params)
	if len(p) == 0 {
		return named, nil
	}
	if p[0] == '{' {
		if json.Unmarshal(p, &named) != nil {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: not an object")
		}
		return named, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(p, &list) != nil {
		return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: not an array")
	}
	order := append(slices.Clone(op.path), op.query...)
	for i, v := range list {
		if i == len(list)-1 && len(v) > 0 && v[0] == '{' {
			var rest map[string]json.RawMessage
			if json.Unmarshal(v, &rest) != nil {
				return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: not an object")
			}
			for k, x := range rest {
				named[k] = x
			}
			break
		}
		if i >= len(order) {
			return nil, rpc.Errorf(rpc.CodeInvalidParams, "invalid params: at most %d positional parameters", len(order))
		}
		named[order[i].Name] = v
	}
	return named, nil
}

// scalar returns a path, query or header parameter's text: a JSON string,
// number or boolean.
func scalar(name string, v json.RawMessage) (string, *rpc.Error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	var n json.Number
	if json.Unmarshal(v, &n) == nil {
		return n.String(), nil
	}
	var t bool
	if json.Unmarshal(v, &t) == nil {
		return strconv.FormatBool(t), nil
	}
	return "", rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %s must be a string or a number", name)
}

// result turns a REST response into the method's result or error.
func (b *rpcBackend) result(w *recorder) (json.RawMessage, error) {
	body := bytes.TrimSpace(w.body.Bytes())
	if w.status < 300 {
		if len(body) == 0 || !json.Valid(body) {
			return nil, nil
		}
		return body, nil
	}
	code := rpc.CodeServerError
	if w.status == http.StatusBadRequest || w.status == http.StatusUnprocessableEntity {
		code = rpc.CodeInvalidParams
	}
	var p problem
	if json.Unmarshal(body, &p) != nil || p.Code == "" {
		return nil, rpc.Errorf(rpc.CodeInternal, "internal error")
	}
	return nil, &rpc.Error{Code: code, Message: p.Title, Data: body}
}

// problem is err as a JSON-RPC error whose data is the problem document
// REST would answer.
func (b *rpcBackend) problem(err error) *rpc.Error {
	p, known := problemOf(err)
	if !known || p.Status >= 500 {
		b.h.d.Logger.Error("json-rpc call failed", "err", err)
	}
	p.Type = "https://coinledger.dev/problems/" + p.Code
	p.Title = http.StatusText(p.Status)
	p.Instance = "/rpc"
	data, _ := json.Marshal(p)
	code := rpc.CodeServerError
	if p.Status == http.StatusBadRequest || p.Status == http.StatusUnprocessableEntity {
		code = rpc.CodeInvalidParams
	}
	return &rpc.Error{Code: code, Message: p.Title, Data: data}
}

func clipName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// recorder is the response of an in-process REST request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) Write(p []byte) (int, error) {
	w.wrote = true
	return w.body.Write(p)
}
func (w *recorder) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}
