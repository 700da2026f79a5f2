package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/coinledger/coinledger/http/apitest"
)

// client talks to a coinledger server as a logged-in user. Every request
// and response of do, doInvalid and expect is validated against the
// OpenAPI document; try is the raw path for requests that may meet a dead
// server.
type client struct {
	t     testing.TB
	base  string
	token string
	http  *http.Client
	api   *apitest.Client
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// problemCode returns the code of a problem document.
func (r *response) problemCode() string {
	var p struct{ Code string }
	json.Unmarshal(r.Body, &p)
	return p.Code
}

func newClient(t testing.TB, s *Server) *client {
	return &client{t: t, base: s.URL + "/api/v1", api: apitest.NewClient(t, s.URL+"/api/v1"),
		http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
}

func (c *client) headers(kv []string) http.Header {
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func fromAPI(r *apitest.Response) *response {
	return &response{Status: r.Status, Header: r.Header, Body: r.Body}
}

// try sends a request; a transport error is returned, not fatal.
func (c *client) try(method, path string, body any, header ...string) (*response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.tryCtx(ctx, method, path, body, header...)
}

// tryCtx is try within ctx.
func (c *client) tryCtx(ctx context.Context, method, path string, body any, header ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// do sends a request that must conform to the contract; the response is
// checked against it too.
func (c *client) do(method, path string, body any, header ...string) *response {
	c.t.Helper()
	return fromAPI(c.api.Do(method, path, body, c.headers(header)))
}

// doInvalid sends a request the contract rejects (bad input tests); the
// response is still checked against the contract.
func (c *client) doInvalid(method, path string, body any, header ...string) *response {
	c.t.Helper()
	return fromAPI(c.api.DoInvalid(method, path, body, c.headers(header)))
}

// expect sends a request and fails unless the status is want.
func (c *client) expect(want int, method, path string, body any, header ...string) *response {
	c.t.Helper()
	r := c.do(method, path, body, header...)
	if r.Status != want {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
	}
	return r
}

func (c *client) login(user, password string) {
	c.t.Helper()
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	c.expect(http.StatusOK, "POST", "/auth/login", map[string]string{"username": user, "password": password}).JSON(c.t, &tok)
	if tok.AccessToken == "" || tok.TokenType != "Bearer" {
		c.t.Fatalf("login: %+v", tok)
	}
	c.token = tok.AccessToken
}

type balanceJSON struct {
	Available, Pending, Held, Total string
}

func (c *client) balance(wallet, account string) balanceJSON {
	c.t.Helper()
	var a struct{ Balance balanceJSON }
	c.expect(http.StatusOK, "GET", fmt.Sprintf("/wallets/%s/accounts/%s", wallet, account), nil).JSON(c.t, &a)
	return a.Balance
}

const adminPassword = "correct-horse-battery-staple"

// adminServer starts a server with a known admin password and a cheap
// bcrypt cost, and returns it with a logged-in admin client.
func adminServer(t *testing.T, dataDir string, env ...string) (*Server, *client) {
	env = append([]string{"COINLEDGER_ADMIN_PASSWORD=" + adminPassword, "COINLEDGER_BCRYPT_COST=4"}, env...)
	s := StartServer(t, dataDir, env...)
	c := newClient(t, s)
	c.login("admin", adminPassword)
	return s, c
}

// setUpWallet creates wallet with accounts and imports opening balances.
func setUpWallet(t *testing.T, c *client, wallet string, opening map[string]string, accounts ...string) {
	t.Helper()
	c.expect(http.StatusCreated, "POST", "/wallets", map[string]any{"name": wallet, "coin": "BTC",
		"permissions": []string{"read", "transfer", "freeze", "lock", "withdraw"}})
	for _, a := range accounts {
		c.expect(http.StatusCreated, "POST", "/wallets/"+wallet+"/accounts", map[string]string{"name": a})
	}
	for a, amount := range opening {
		c.expect(http.StatusCreated, "POST", "/wallets/"+wallet+"/accounts/"+a+"/imports",
			map[string]string{"amount": amount, "reason": "opening balance"}, "Idempotency-Key", "open-"+a)
	}
}
