// The node is called two ways, on purpose.
//
// Reads (every call that moves no coins: getnewaddress, gettransaction,
// getblockcount, listsinceblock, help, listunspent, lockunspent,
// getrawchangeaddress, createrawtransaction, signrawtransaction,
// getrawtransaction) go through btcd's rpcclient in HTTP POST mode, with
// RawRequest so that amounts stay exact decimal JSON. rpcclient re-sends a
// POST up to 10 times (about 22 s of backoff) when it gets no HTTP
// response; for a read that only costs time, and it rides out a node that
// restarts.
//
// Writes (sendtoaddress, sendrawtransaction) go through the small
// net/http client below, which never re-sends: rpcclient's retry after a
// reset or timeout would be a second sendtoaddress, paying twice. It also
// notes whether the request was fully written, which separates "nothing
// reached the node" (chainsync.ErrUnavailable) from "the coins may have left"
// (chainsync.ErrAmbiguous).
//
// rpcclient takes no context and its HTTP client has no timeout, so a read
// waits for the reply, ctx and Config.Timeout, whichever comes first.
// When the caller stops waiting, rpcclient stops retrying, but a POST
// already in flight runs on in its goroutine until the node answers or
// the connection fails. Each read has an rpcclient.Client of its own: one
// shared client runs all its requests one after another on a single
// goroutine, so one hung or retried request would hold up every other,
// and it caches the cookie file for 30 s in an unguarded ConnConfig.

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

	"github.com/btcsuite/btcd/btcjson"
	"github.com/btcsuite/btcd/rpcclient"

	"github.com/coinledger/coinledger/app/chainsync"
)

// Error codes of bitcoind's JSON-RPC (src/rpc/protocol.h) that the adapter
// treats specially.
const (
	codeInvalidAddressOrKey = -5  // unknown transaction, block, ...
	codeWalletUnlockNeeded  = -13 // the wallet is locked: nothing was sent
	codePassphraseIncorrect = -14 // walletpassphrase with the wrong passphrase
	codeInWarmup            = -28 // the node is starting: ask again later
)

// maxReply bounds the size of a write's reply. (rpcclient reads a read's
// reply whole: listsinceblock of a busy wallet can be large.)
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

// mode says what a call may do on the node, which decides how it is sent
// and what its failures mean.
type mode int

const (
	// read calls move no coins and go through rpcclient, retried: any
	// failure to get an answer is chainsync.ErrUnavailable, an error reply an
	// *RPCError.
	read mode = iota
	// write calls may move coins and are sent once. A failure before the
	// request was fully written is chainsync.ErrUnavailable; after it
	// (timeout, reset, a reply that is not JSON-RPC) chainsync.ErrAmbiguous; an
	// error reply chainsync.ErrRejected, or chainsync.ErrUnavailable for "warming
	// up" and "wallet locked".
	write
)

// client calls one node's JSON-RPC 1.0 over HTTP POST: reads through
// rpcclient, writes through its own http.Client, without retries.
type client struct {
	// reads is the configuration of the reads' rpcclient, copied for
	// each call.
	reads rpcclient.ConnConfig

	endpoint   string // URL without credentials
	user, pass string
	cookieFile string
	timeout    time.Duration
	http       *http.Client // writes only
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

	// In HTTP POST mode rpcclient posts to scheme://Host and ignores
	// Endpoint (a websocket path), so a wallet path such as /wallet/hot
	// goes into Host.
	host := u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		host += "?" + u.RawQuery
	}
	c.reads = rpcclient.ConnConfig{
		Host:         host,
		User:         c.user,
		Pass:         c.pass,         // used when not empty,
		CookiePath:   cfg.CookieFile, // else the cookie, as credentials does
		Params:       rpcclientParams(cfg.Network),
		DisableTLS:   u.Scheme == "http",
		HTTPPostMode: true,
	}
	return c, nil
}

// rpcclientParams is rpcclient's name of network. rpcclient v0.24.2
// refuses the names it does not know (signet); the name only picks the
// chain of its typed wallet calls, which RawRequest does not use, so
// those networks go as "" (its default, mainnet).
func rpcclientParams(network string) string {
	switch network {
	case "mainnet", "testnet3", "regtest", "simnet":
		return network
	}
	return ""
}

// close releases the writes' idle connections; reads keep none (rpcclient
// closes each connection after its reply).
func (c *client) close() { c.http.CloseIdleConnections() }

// call runs method(params...) on the node within the configured timeout
// and decodes its result into result (when not nil). m says how it is
// sent and how its errors are classified (see mode).
func (c *client) call(ctx context.Context, m mode, method string, result any, params ...any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var raw json.RawMessage
	var err error
	if m == write {
		raw, err = c.send(ctx, method, params)
	} else {
		raw, err = c.read(ctx, method, params)
	}
	if err != nil || result == nil {
		return err
	}
	if err := json.Unmarshal(raw, result); err != nil {
		if m == write {
			return fmt.Errorf("%s: unreadable result %.200s: %w: %w", method, raw, chainsync.ErrAmbiguous, err)
		}
		return fmt.Errorf("%s: unreadable result %.200s: %w", method, raw, err)
	}
	return nil
}

// read runs a read call through an rpcclient of its own and returns its
// result. It returns when ctx is done, leaving rpcclient to finish a
// POST in flight (see the top of this file).
func (c *client) read(ctx context.Context, method string, params []any) (json.RawMessage, error) {
	raw := make([]json.RawMessage, len(params))
	for i, p := range params {
		data, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		raw[i] = data
	}
	conf := c.reads // rpcclient writes its cookie cache into it
	rc, err := rpcclient.New(&conf, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	// Ends rpcclient's retries and its goroutine, once a POST in flight
	// returns.
	defer rc.Shutdown()
	future := rc.RawRequestAsync(method, raw)
	var reply *rpcclient.Response
	select {
	case reply = <-future:
	case <-ctx.Done():
		return nil, transportError(read, method, false, fmt.Errorf("no reply (rpcclient retries failed POSTs): %w", ctx.Err()))
	}
	// Response's fields are read by Receive, from a channel.
	again := make(chan *rpcclient.Response, 1)
	again <- reply
	result, err := rpcclient.FutureRawResult(again).Receive()
	if rpcErr := (*btcjson.RPCError)(nil); errors.As(err, &rpcErr) {
		return nil, rpcError(read, &RPCError{Method: method, Code: int(rpcErr.Code), Message: rpcErr.Message})
	}
	if err != nil {
		// Transport errors after the last retry, a reply that is not
		// JSON-RPC (rpcclient quotes the HTTP status and body), the
		// cookie file.
		return nil, transportError(read, method, false, err)
	}
	if len(result) == 0 {
		return nil, transportError(read, method, false, errors.New("reply without result"))
	}
	return result, nil
}

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

// send runs a write call, posting it exactly once on a connection of its
// own, and returns its result.
func (c *client) send(ctx context.Context, method string, params []any) (json.RawMessage, error) {
	if params == nil {
		params = []any{}
	}
	body, err := json.Marshal(request{JSONRPC: "1.0", ID: c.id.Add(1), Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	user, pass, err := c.credentials()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", method, chainsync.ErrUnavailable, err)
	}
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
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	// A connection of its own: a kept-alive one the node has closed
	// meanwhile would make the write look ambiguous.
	req.Close = true

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, transportError(write, method, written.Load(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, transportError(write, method, true, err)
	}
	if len(data) > maxReply {
		return nil, transportError(write, method, true, fmt.Errorf("reply larger than %d bytes", maxReply))
	}
	var reply response
	jsonErr := json.Unmarshal(data, &reply)
	if jsonErr == nil && reply.Error != nil {
		// bitcoind answers errors with HTTP 500 or 404 and this body,
		// btcwallet with 200.
		return nil, rpcError(write, &RPCError{Method: method, Code: reply.Error.Code, Message: reply.Error.Message})
	}
	if jsonErr != nil || resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("HTTP %s: %.200q", resp.Status, data)
		// 5xx without a JSON-RPC body (a proxy's 502, a crash) or a
		// garbled 200: the call may have run. Anything else was refused
		// before it ran (401 bad credentials, 429 too many clients, 404
		// wrong path, a redirect).
		reached := resp.StatusCode == http.StatusOK || resp.StatusCode >= 500
		return nil, transportError(write, method, reached, err)
	}
	return reply.Result, nil
}

// transportError classifies a failure to get a JSON-RPC reply: ambiguous
// for a write that may have reached the node, unavailable otherwise.
func transportError(m mode, method string, reached bool, err error) error {
	if m == write && reached {
		return fmt.Errorf("%s: %w: %w", method, chainsync.ErrAmbiguous, err)
	}
	return fmt.Errorf("%s: %w: %w", method, chainsync.ErrUnavailable, err)
}

// rpcError classifies an error reply: the node ran the call and refused.
func rpcError(m mode, e *RPCError) error {
	switch {
	case e.Code == codeInWarmup, m == write && e.Code == codeWalletUnlockNeeded:
		return fmt.Errorf("%w: %w", chainsync.ErrUnavailable, e)
	case m == write:
		return fmt.Errorf("%w: %w", chainsync.ErrRejected, e)
	default:
		return e
	}
}
