// Package apitest is an HTTP client for tests that holds the server to its
// contract: every request it sends and every response it receives is
// validated against the OpenAPI document (http/api/openapi.json), and every
// mismatch fails the test with the method, path, status and the reason.
//
//	c := apitest.NewClient(t, srv.URL).WithToken(token)
//	r := c.Post("/api/v1/wallets/btc/transfers", map[string]string{"from": "alice", "to": "bob", "amount": "0.1"},
//		apitest.Header("Idempotency-Key", "k1"))
//	r.Expect(t, http.StatusCreated)
//
// A Client is safe for concurrent use. Import it from tests only.
package apitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/coinledger/coinledger/http/api"
)

// Spec returns the OpenAPI document the client validates against.
func Spec() []byte { return api.OpenAPI() }

// contract is the parsed document and its router, shared by every client:
// validation only reads them.
type contract struct {
	router routers.Router
	opts   *openapi3filter.Options
}

var (
	loadOnce sync.Once
	loaded   *contract
	loadErr  error
)

func load() (*contract, error) {
	loadOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(Spec())
		if err != nil {
			loadErr = fmt.Errorf("load openapi.json: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			loadErr = fmt.Errorf("openapi.json is invalid: %w", err)
			return
		}
		router, err := gorillamux.NewRouter(doc)
		if err != nil {
			loadErr = fmt.Errorf("openapi.json router: %w", err)
			return
		}
		opts := &openapi3filter.Options{
			// An undocumented status is a contract violation too.
			IncludeResponseStatus: true,
			MultiError:            true,
			// The server checks credentials; the client only checks shapes,
			// so that tests of 401 and 403 can send what they like.
			AuthenticationFunc: func(context.Context, *openapi3filter.AuthenticationInput) error { return nil },
			// Defaults must not be written into the request being validated.
			SkipSettingDefaults: true,
		}
		opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string {
			if p := err.JSONPointer(); len(p) > 0 {
				return "/" + strings.Join(p, "/") + ": " + err.Reason
			}
			return err.Reason
		})
		loaded = &contract{router: router, opts: opts}
	})
	return loaded, loadErr
}

// Client sends requests to one server and validates them and their responses.
// Its methods may be called from any goroutine; the With methods return a
// modified copy and leave the receiver unchanged.
type Client struct {
	t      testing.TB
	base   string
	hc     *http.Client
	c      *contract
	header http.Header
}

// NewClient returns a client for the server at baseURL (e.g. an
// httptest.Server's URL). Paths given to its methods are appended to it:
// with the bare origin they start at the root ("/api/v1/wallets",
// "/healthz"); with a base URL ending in /api/v1 they start there ("/wallets").
func NewClient(t testing.TB, baseURL string) *Client {
	t.Helper()
	c, err := load()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Tests fire hundreds of parallel requests: keep their connections.
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 512
	t.Cleanup(tr.CloseIdleConnections)
	return &Client{
		t:    t,
		base: strings.TrimSuffix(baseURL, "/"),
		hc: &http.Client{
			Transport: tr,
			Timeout:   60 * time.Second,
			// Validate the answer of the path asked for, not of a redirect target.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		c:      c,
		header: http.Header{},
	}
}

// WithHeader returns a copy of c that sends the header with every request.
func (c *Client) WithHeader(key, value string) *Client {
	cp := *c
	cp.header = c.header.Clone()
	cp.header.Set(key, value)
	return &cp
}

// WithToken returns a copy of c that sends "Authorization: Bearer token"
// (an access token or an API key).
func (c *Client) WithToken(token string) *Client {
	return c.WithHeader("Authorization", "Bearer "+token)
}

// WithBasicAuth returns a copy of c that sends HTTP Basic credentials.
func (c *Client) WithBasicAuth(user, password string) *Client {
	return c.WithHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
}

// Header builds a header for the headers argument of Do and friends:
// Header("Idempotency-Key", "k1", "X-Forwarded-For", "10.0.0.1").
func Header(keyValues ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(keyValues); i += 2 {
		h.Add(keyValues[i], keyValues[i+1])
	}
	return h
}

// Response is a server's answer, read completely.
type Response struct {
	Method string // of the request
	Path   string // of the request, as given
	Status int
	Header http.Header
	Body   []byte
}

// Get sends a GET request; see Do.
func (c *Client) Get(path string, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(false, http.MethodGet, path, nil, headers)
}

// Post sends a POST request; see Do.
func (c *Client) Post(path string, body any, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(false, http.MethodPost, path, body, headers)
}

// Put sends a PUT request; see Do.
func (c *Client) Put(path string, body any, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(false, http.MethodPut, path, body, headers)
}

// Delete sends a DELETE request; see Do.
func (c *Client) Delete(path string, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(false, http.MethodDelete, path, nil, headers)
}

// Do sends a request and returns the response. The request must conform to
// the contract, and so must the response: any mismatch is reported with
// t.Errorf (never t.Fatalf, so Do may run in any goroutine).
//
// body is sent as is when it is a []byte, string, json.RawMessage or
// io.Reader, and as JSON otherwise; nil sends no body. Content-Type defaults
// to application/json when there is a body. headers replace the client's
// headers of the same name (WithToken, WithHeader).
//
// A transport error is reported and gives a Response with Status 0.
// Do reads the whole body: it is not for /api/v1/events/stream or websockets.
func (c *Client) Do(method, path string, body any, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(false, method, path, body, headers)
}

// DoInvalid is Do for negative tests: the request is expected to break the
// contract (a missing Idempotency-Key, an unknown field, malformed JSON, a
// path that does not exist), and the test fails if it does not. The response
// must still conform when the operation exists.
func (c *Client) DoInvalid(method, path string, body any, headers ...http.Header) *Response {
	c.t.Helper()
	return c.send(true, method, path, body, headers)
}

func (c *Client) send(wantInvalid bool, method, path string, body any, headers []http.Header) *Response {
	t := c.t
	t.Helper()
	res := &Response{Method: method, Path: path}
	data, err := encode(body)
	if err != nil {
		t.Errorf("apitest: %s %s: encode body: %v", method, path, err)
		return res
	}
	ctx := t.Context()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(data))
	if err != nil {
		t.Errorf("apitest: %s %s: %v", method, path, err)
		return res
	}
	if body == nil {
		req.Body, req.GetBody, req.ContentLength = http.NoBody, nil, 0
	}
	req.Header = c.header.Clone()
	for _, h := range headers {
		for k, vs := range h {
			req.Header.Del(k)
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}

	in, reqErr := c.validateRequest(req, data, body != nil)
	switch {
	case wantInvalid && reqErr == nil:
		t.Errorf("apitest: %s %s: DoInvalid, but the request conforms to openapi.json", method, path)
	case !wantInvalid && reqErr != nil:
		t.Errorf("apitest: %s %s: request does not conform to openapi.json:\n%v", method, path, reqErr)
	}

	resp, err := c.hc.Do(req)
	if err != nil {
		t.Errorf("apitest: %s %s: %v", method, path, err)
		return res
	}
	defer resp.Body.Close()
	res.Status, res.Header = resp.StatusCode, resp.Header
	if res.Body, err = io.ReadAll(resp.Body); err != nil {
		t.Errorf("apitest: %s %s → %d: read body: %v", method, path, res.Status, err)
		return res
	}
	if in == nil {
		return res // no operation: nothing to validate the response against
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.Status,
		Header:                 res.Header,
		Options:                c.c.opts,
	}
	out.SetBodyBytes(res.Body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("apitest: %s %s → %d: response does not conform to openapi.json:\n%v\nbody: %s",
			method, path, res.Status, err, truncate(res.Body))
	}
	return res
}

// validateRequest checks req against the contract on a copy of its own, and
// returns the input the response is validated with (nil when the document
// has no such operation).
func (c *Client) validateRequest(req *http.Request, data []byte, hasBody bool) (*openapi3filter.RequestValidationInput, error) {
	u := req.URL
	vreq := req.Clone(req.Context())
	// The document's server is "/": match on the path from the root, so a
	// base URL ending in /api/v1 works as well as the bare origin.
	vreq.URL = &url.URL{Path: u.Path, RawPath: u.RawPath, RawQuery: u.RawQuery}
	vreq.Body, vreq.GetBody = http.NoBody, nil
	if hasBody {
		vreq.Body = io.NopCloser(bytes.NewReader(data))
		vreq.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	route, params, err := c.c.router.FindRoute(vreq)
	if err != nil {
		return nil, fmt.Errorf("no operation for %s %s in openapi.json: %w", req.Method, u.Path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: c.c.opts}
	if err := openapi3filter.ValidateRequest(req.Context(), in); err != nil {
		return in, err
	}
	return in, nil
}

func encode(body any) ([]byte, error) {
	switch b := body.(type) {
	case nil:
		return nil, nil
	case []byte:
		return b, nil
	case string:
		return []byte(b), nil
	case json.RawMessage:
		return b, nil
	case io.Reader:
		return io.ReadAll(b)
	default:
		return json.Marshal(b)
	}
}

func truncate(b []byte) string {
	const max = 2000
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}

// Expect reports an error unless the response has one of the statuses; it
// returns r for chaining.
func (r *Response) Expect(t testing.TB, status ...int) *Response {
	t.Helper()
	for _, s := range status {
		if r.Status == s {
			return r
		}
	}
	t.Errorf("apitest: %s %s → %d, want %v\nbody: %s", r.Method, r.Path, r.Status, status, truncate(r.Body))
	return r
}

// JSON decodes the body into v and reports false (with t.Errorf) when it
// cannot. It uses t.Errorf, not t.Fatalf, so it may run in any goroutine.
func (r *Response) JSON(t testing.TB, v any) bool {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Errorf("apitest: %s %s → %d: decode %T: %v\nbody: %s", r.Method, r.Path, r.Status, v, err, truncate(r.Body))
		return false
	}
	return true
}

// Problem is an RFC 9457 problem document as the API sends it.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Code     string       `json:"code"`
	Errors   []FieldError `json:"errors,omitempty"`
}

// FieldError is one field-level problem of a Problem.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problem decodes the body as a problem document; it reports an error when
// the response is not one.
func (r *Response) Problem(t testing.TB) Problem {
	t.Helper()
	var p Problem
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("apitest: %s %s → %d: Content-Type %q, want application/problem+json\nbody: %s",
			r.Method, r.Path, r.Status, ct, truncate(r.Body))
		return p
	}
	r.JSON(t, &p)
	return p
}

// ExpectProblem reports an error unless the response is a problem document
// with the status and code; it returns the problem.
func (r *Response) ExpectProblem(t testing.TB, status int, code string) Problem {
	t.Helper()
	r.Expect(t, status)
	p := r.Problem(t)
	if p.Code != code {
		t.Errorf("apitest: %s %s → %d: problem code %q, want %q (detail %q)", r.Method, r.Path, r.Status, p.Code, code, p.Detail)
	}
	return p
}
