package bitcoind

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coinledger/coinledger/adapters/chain"
)

// Error codes of bitcoind's JSON-RPC (src/rpc/protocol.h) that the adapter
// treats specially.
const (
	codeInvalidAddressOrKey = -5  // unknown transaction, block, ...
	codeWalletUnlockNeeded  = -13 // the wallet is locked: nothing was sent
	codeInWarmup            = -28 // the node is starting: ask again later
)

// maxReply bounds the size of one reply (listsinceblock of a busy wallet
// can be large).
const maxReply = 256 << 20

// RPCError is an error reply of the node.
type RPCError struct {
	Method  string
	Code    int
	Message string
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("%s: rpc error %d: %s", e.Method, e.Code, e.Message)
}

// mode says what a call may do on the node, which decides what its
// failures mean.
type mode int

const (
	// read calls move no coins: any failure to get an answer is
	// chain.ErrUnavailable, an error reply an *RPCError.
	read mode = iota
	// write calls may move coins. A failure before the request was fully
	// written is chain.ErrUnavailable; after it (timeout, reset, a reply
	// that is not JSON-RPC) chain.ErrAmbiguous; an error reply
	// chain.ErrRejected, or chain.ErrUnavailable for "warming up" and
	// "wallet locked".
	write
)

// client calls one node's JSON-RPC 1.0 over HTTP POST, without retries.
type client struct {
	endpoint   string // URL without credentials
	user, pass string
	cookieFile string
	timeout    time.Duration
	http       *http.Client
	id         atomic.Uint64
}

func newClient(cfg Config) (*client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, errors.New("bitcoind: url is not a valid URL")
	}
	c := &client{
		cookieFile: cfg.CookieFile,
		timeout:    cfg.Timeout,
		http: &http.Client{
			Transport: &http.Transport{
				Proxy:               nil, // a node is reached directly
				MaxIdleConnsPerHost: 4,
				IdleConnTimeout:     30 * time.Second,
			},
			// A redirected POST would come back as a GET.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if u.User != nil {
		c.user = u.User.Username()
		c.pass, _ = u.User.Password()
		u.User = nil
	}
	c.endpoint = u.String()
	return c, nil
}

func (c *client) close() { c.http.CloseIdleConnections() }

// credentials returns the URL's credentials or those of the cookie file.
func (c *client) credentials() (string, string, error) {
	if c.pass != "" {
		return c.user, c.pass, nil
	}
	data, err := os.ReadFile(c.cookieFile)
	if err != nil {
		return "", "", fmt.Errorf("read cookie file: %w", err)
	}
	user, pass, ok := strings.Cut(strings.TrimSpace(string(data)), ":")
	if !ok {
		return "", "", fmt.Errorf("cookie file %s: not user:password", c.cookieFile)
	}
	return user, pass, nil
}

type request struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  []any  `json:"params"`
}

type response struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call runs method(params...) on the node within the configured timeout
// and decodes its result into result (when not nil). Its errors are
// classified by m (see mode).
func (c *client) call(ctx context.Context, m mode, method string, result any, params ...any) error {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(request{JSONRPC: "1.0", ID: c.id.Add(1), Method: method, Params: params})
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	user, pass, err := c.credentials()
	if err != nil {
		return fmt.Errorf("%s: %w: %w", method, chain.ErrUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// Whether the whole request left: from then on a write may have
	// happened whatever becomes of the reply.
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				written.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	// A write gets a connection of its own: a kept-alive one the node
	// has closed meanwhile would make it look ambiguous.
	req.Close = m == write

	resp, err := c.http.Do(req)
	if err != nil {
		return transportError(m, method, written.Load(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return transportError(m, method, true, err)
	}
	if len(data) > maxReply {
		return transportError(m, method, true, fmt.Errorf("reply larger than %d bytes", maxReply))
	}
	var reply response
	jsonErr := json.Unmarshal(data, &reply)
	if jsonErr == nil && reply.Error != nil {
		// bitcoind answers errors with HTTP 500 or 404 and this body,
		// btcwallet with 200.
		return rpcError(m, &RPCError{Method: method, Code: reply.Error.Code, Message: reply.Error.Message})
	}
	if jsonErr != nil || resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("HTTP %s: %.200q", resp.Status, data)
		// 5xx without a JSON-RPC body (a proxy's 502, a crash) or a
		// garbled 200: the call may have run. Anything else was refused
		// before it ran (401 bad credentials, 429 too many clients, 404
		// wrong path, a redirect).
		reached := resp.StatusCode == http.StatusOK || resp.StatusCode >= 500
		return transportError(m, method, reached, err)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(reply.Result, result); err != nil {
		if m == write {
			return fmt.Errorf("%s: unreadable result %.200s: %w: %w", method, reply.Result, chain.ErrAmbiguous, err)
		}
		return fmt.Errorf("%s: unreadable result %.200s: %w", method, reply.Result, err)
	}
	return nil
}

// transportError classifies a failure to get a JSON-RPC reply: ambiguous
// for a write that may have reached the node, unavailable otherwise.
func transportError(m mode, method string, reached bool, err error) error {
	if m == write && reached {
		return fmt.Errorf("%s: %w: %w", method, chain.ErrAmbiguous, err)
	}
	return fmt.Errorf("%s: %w: %w", method, chain.ErrUnavailable, err)
}

// rpcError classifies an error reply: the node ran the call and refused.
func rpcError(m mode, e *RPCError) error {
	switch {
	case e.Code == codeInWarmup, m == write && e.Code == codeWalletUnlockNeeded:
		return fmt.Errorf("%w: %w", chain.ErrUnavailable, e)
	case m == write:
		return fmt.Errorf("%w: %w", chain.ErrRejected, e)
	default:
		return e
	}
}
