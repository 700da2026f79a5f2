package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// projectionsRetry asks the running server to retry a parked read model
// (POST /api/v1/projections/{name}/retry, admin):
//
//	coinledger projections retry [-url URL] [-token TOKEN] NAME
//
// The URL defaults to http://COINLEDGER_LISTEN (127.0.0.1:8080). The token
// is an admin's access token or API key, from -token or COINLEDGER_TOKEN;
// without one, it logs in as admin with COINLEDGER_ADMIN_PASSWORD.
func projectionsRetry(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections retry", flag.ContinueOnError)
	base := fs.String("url", "", "server URL (default http:// + COINLEDGER_LISTEN, or http://127.0.0.1:8080)")
	token := fs.String("token", "", "admin access token or API key (default COINLEDGER_TOKEN)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() != 1 {
		return usageError("projections retry takes one read model name")
	}
	name := fs.Arg(0)
	if *base == "" {
		*base = serverURL(os.Getenv("COINLEDGER_LISTEN"))
	}
	if *token == "" {
		*token = os.Getenv("COINLEDGER_TOKEN")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	api := strings.TrimRight(*base, "/") + "/api/v1"
	if *token == "" {
		password := os.Getenv("COINLEDGER_ADMIN_PASSWORD")
		if password == "" {
			return usageError("projections retry needs an admin token: -token, COINLEDGER_TOKEN or COINLEDGER_ADMIN_PASSWORD")
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := call(ctx, http.MethodPost, api+"/auth/login", "", map[string]string{"username": "admin", "password": password}, &tok); err != nil {
			return fmt.Errorf("projections retry %s: log in: %w", name, err)
		}
		*token = tok.AccessToken
	}
	if err := call(ctx, http.MethodPost, api+"/projections/"+url.PathEscape(name)+"/retry", *token, nil, nil); err != nil {
		return fmt.Errorf("projections retry %s: %w", name, err)
	}
	fmt.Printf("projection %s: retry requested; see coinledger projections status or /api/v1/status\n", name)
	return nil
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

// call sends a JSON request and decodes a 2xx answer into out (when not
// nil); any other answer becomes an error with the problem's code and
// detail.
func call(ctx context.Context, method, u, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(data, &p)
		return fmt.Errorf("%s: %s %s", resp.Status, p.Code, p.Detail)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
