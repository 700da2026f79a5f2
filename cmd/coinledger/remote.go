package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// The client of a running server's admin API. Commands that act on the
// server's runner (projections retry|list|rebuild, followers) use it
// always; commands that need the store (users, events export, audit verify,
// projections status) use it when a running server holds the embedded
// store's lock (errStoreLocked), instead of failing.

// remoteUsage describes the flags and variables of every command that talks
// to the server.
const remoteUsage = `The server is found at -url (default http:// + COINLEDGER_LISTEN, or
http://127.0.0.1:8080). The credential is an admin's access token or API key, from
-token or COINLEDGER_TOKEN; without one, the command logs in as admin with
COINLEDGER_ADMIN_PASSWORD.
`

// remoteFlags are the -url and -token flags of a command that may talk to
// the server.
type remoteFlags struct{ url, token *string }

func addRemoteFlags(fs *flag.FlagSet) remoteFlags {
	return remoteFlags{
		url:   fs.String("url", "", "server URL (default http:// + COINLEDGER_LISTEN, or http://127.0.0.1:8080)"),
		token: fs.String("token", "", "admin access token or API key (default COINLEDGER_TOKEN, else an admin login with COINLEDGER_ADMIN_PASSWORD)"),
	}
}

// client returns the client of the server the flags name. listen and
// password are the configuration's listen address and admin password when
// the command loaded one; "" takes them from the environment.
func (f remoteFlags) client(listen, password string) *remote {
	base := *f.url
	if base == "" {
		if listen == "" {
			listen = os.Getenv("COINLEDGER_LISTEN")
		}
		base = serverURL(listen)
	}
	token := *f.token
	if token == "" {
		token = os.Getenv("COINLEDGER_TOKEN")
	}
	if password == "" {
		password = os.Getenv("COINLEDGER_ADMIN_PASSWORD")
	}
	return &remote{base: strings.TrimRight(base, "/"), token: token, password: password}
}

// serverURL is the URL of the API listening on listen (host:port; an
// empty or unspecified host means this machine).
func serverURL(listen string) string {
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// remote calls the admin API of the server at base, with token or, when
// there is none, an admin login with password (done at the first call).
type remote struct {
	base     string // scheme://host:port
	token    string
	password string
}

// callTimeout bounds a call that answers at once (everything but streams).
const callTimeout = 30 * time.Second

// usingServer says on standard error that the store is locked and the
// command goes through the server at r; it returns r.
func usingServer(cmd string, r *remote) *remote {
	fmt.Fprintf(os.Stderr, "%s: the event store is locked, by a running server presumably: going through the server's admin API at %s\n", cmd, r.base)
	return r
}

// problemError is an answer other than 2xx, with the problem document's
// code and detail when it has one.
type problemError struct {
	Status       int
	StatusText   string // "404 Not Found"
	Code, Detail string
}

func (e *problemError) Error() string {
	return strings.TrimSpace(fmt.Sprintf("%s: %s %s", e.StatusText, e.Code, e.Detail))
}

// authorize logs in as admin when r has no token yet.
func (r *remote) authorize(ctx context.Context) error {
	if r.token != "" {
		return nil
	}
	if r.password == "" {
		return usageError("the server's admin API needs an admin token: -token, COINLEDGER_TOKEN or COINLEDGER_ADMIN_PASSWORD")
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := r.send(ctx, http.MethodPost, "/auth/login", map[string]string{"username": "admin", "password": r.password}, &tok); err != nil {
		return fmt.Errorf("log in as admin: %w", err)
	}
	r.token = tok.AccessToken
	return nil
}

// call sends a JSON request to path under /api/v1 (in: nil for none) and
// decodes a 2xx answer into out (when not nil); any other answer is a
// *problemError.
func (r *remote) call(ctx context.Context, method, path string, in, out any) error {
	if err := r.authorize(ctx); err != nil {
		return err
	}
	return r.send(ctx, method, path, in, out)
}

func (r *remote) send(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	resp, err := r.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: the answer: %w", method, path, err)
		}
	}
	return nil
}

// stream sends a GET to path under /api/v1 and returns the 2xx answer for
// the caller to read and close; it is bounded by ctx only.
func (r *remote) stream(ctx context.Context, path string) (*http.Response, error) {
	if err := r.authorize(ctx); err != nil {
		return nil, err
	}
	return r.do(ctx, http.MethodGet, path, nil)
}

// do sends one request; an answer other than 2xx is read and closed and
// becomes a *problemError.
func (r *remote) do(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.base+"/api/v1"+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("no server answers at %s: %w", r.base, err)
		}
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	pe := &problemError{Status: resp.StatusCode, StatusText: resp.Status}
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(data, &p) == nil {
		pe.Code, pe.Detail = p.Code, p.Detail
	}
	return nil, pe
}
