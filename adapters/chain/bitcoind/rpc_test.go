package bitcoind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinledger/coinledger/app/chainsync"
)

const txid1 = "1111111111111111111111111111111111111111111111111111111111111111"

// fakeNode serves answer at a URL with credentials u:p; answer gets the
// decoded method and params.
func fakeNode(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, method string, params []json.RawMessage)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Method string            `json:"method"`
			Params []json.RawMessage `json:"params"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("fake node: %v", err)
		}
		answer(w, r, req.Method, req.Params)
	}))
	t.Cleanup(srv.Close)
	return "http://u:p@" + strings.TrimPrefix(srv.URL, "http://")
}

// reply writes a JSON-RPC reply.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func result(v string) string { return `{"result":` + v + `,"error":null,"id":1}` }

func rpcErr(code int, msg string) string {
	return fmt.Sprintf(`{"result":null,"error":{"code":%d,"message":%q},"id":1}`, code, msg)
}

func openURL(t *testing.T, url string, timeout time.Duration) *Backend {
	t.Helper()
	b, err := Open(Config{URL: url, Network: "regtest", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// calls are the Backend's methods, by name.
func calls(b *Backend) map[string]func(ctx context.Context) error {
	return map[string]func(ctx context.Context) error{
		"NewAddress":  func(ctx context.Context) error { _, err := b.NewAddress(ctx); return err },
		"Transaction": func(ctx context.Context) error { _, err := b.Transaction(ctx, txid1); return err },
		"Height":      func(ctx context.Context) error { _, err := b.Height(ctx); return err },
		"SinceBlock":  func(ctx context.Context) error { _, err := b.SinceBlock(ctx, ""); return err },
		"Send": func(ctx context.Context) error {
			_, err := b.Send(ctx, "bcrt1qexample", 1000, false)
			return err
		},
	}
}

func TestRefusedIsUnavailable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const timeout = 500 * time.Millisecond
	b := openURL(t, "http://u:p@"+addr, timeout)
	for name, call := range calls(b) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			began := time.Now()
			err := call(context.Background())
			if !errors.Is(err, chainsync.ErrUnavailable) || errors.Is(err, chainsync.ErrAmbiguous) {
				t.Errorf("%v, want ErrUnavailable only", err)
			}
			// A send is not retried; reads are, by rpcclient, until the
			// timeout.
			d, limit := time.Since(began), timeout+time.Second
			if name == "Send" {
				limit = 500 * time.Millisecond
			}
			if d > limit {
				t.Errorf("took %s, want at most %s", d, limit)
			}
		})
	}
}

func TestUnknownHostIsUnavailable(t *testing.T) {
	t.Parallel()
	b := openURL(t, "http://u:p@node.invalid:8332", time.Second)
	if _, err := b.Send(context.Background(), "x", 1000, false); !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("send: %v, want ErrUnavailable", err)
	}
}

func TestTimeoutAfterWriting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	url := fakeNode(t, func(w http.ResponseWriter, r *http.Request, _ string, _ []json.RawMessage) {
		// Hangs until the client gives up, or for rpcclient, which never
		// does, until the test ends.
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // before the server's Close
	b := openURL(t, url, 200*time.Millisecond)
	for name, call := range calls(b) {
		began := time.Now()
		err := call(context.Background())
		want := chainsync.ErrUnavailable
		if name == "Send" {
			want = chainsync.ErrAmbiguous
		}
		if !errors.Is(err, want) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v, want %v and a deadline", name, err, want)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("%s took %s, timeout 200ms", name, d)
		}
	}
	// The caller's own deadline counts the same.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := openURL(t, url, time.Minute).Send(ctx, "x", 1000, false); !errors.Is(err, chainsync.ErrAmbiguous) {
		t.Errorf("send past the caller's deadline: %v, want ErrAmbiguous", err)
	}
}

func TestConnectionResetAfterWriting(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"reset", "close"} {
		var sends atomic.Int32
		url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, method string, _ []json.RawMessage) {
			if method == "sendtoaddress" {
				sends.Add(1)
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("hijack: %v", err)
				return
			}
			if how == "reset" {
				conn.(*net.TCPConn).SetLinger(0) // close sends RST
			}
			conn.Close()
		})
		// Reads are retried until the timeout, the send is not.
		b := openURL(t, url, 500*time.Millisecond)
		for name, call := range calls(b) {
			t.Run(how+"/"+name, func(t *testing.T) {
				t.Parallel()
				err := call(context.Background())
				want := chainsync.ErrUnavailable
				if name == "Send" {
					want = chainsync.ErrAmbiguous
				}
				if !errors.Is(err, want) {
					t.Errorf("%v, want %v", err, want)
				}
				if name == "Send" && sends.Load() != 1 {
					t.Errorf("sendtoaddress posted %d times, want once", sends.Load())
				}
			})
		}
	}
}

// TestReadsGoThroughRPCClient: a read whose connection fails is sent
// again (by rpcclient), to the wallet's path; a send is not (above).
func TestReadsGoThroughRPCClient(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"regtest", "signet"} { // rpcclient does not know signet
		var posts atomic.Int32
		url := fakeNode(t, func(w http.ResponseWriter, r *http.Request, method string, _ []json.RawMessage) {
			if r.URL.Path != "/wallet/hot" {
				t.Errorf("%s posted to %s", method, r.URL.Path)
			}
			if posts.Add(1) <= 2 {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				conn.Close()
				return
			}
			reply(w, 200, result("7"))
		})
		b, err := Open(Config{URL: url + "/wallet/hot", Network: network, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		h, err := b.Height(context.Background())
		if err != nil || h != 7 {
			t.Fatalf("%s: height %d, %v", network, h, err)
		}
		if n := posts.Load(); n != 3 {
			t.Fatalf("%s: %d POSTs, want 3 (2 failed, retried)", network, n)
		}
	}
}

// TestSendFeeUnknown: the coins left but the fee cannot be read: the
// txid comes back with ErrAmbiguous within about one timeout, although
// every read is retried for a timeout.
func TestSendFeeUnknown(t *testing.T) {
	t.Parallel()
	url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, method string, _ []json.RawMessage) {
		if method == "sendtoaddress" {
			reply(w, 200, result(`"`+txid1+`"`))
			return
		}
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		conn.Close()
	})
	const timeout = time.Second
	b := openURL(t, url, timeout)
	began := time.Now()
	sent, err := b.Send(context.Background(), "bcrt1qdest", 1000, false)
	if !errors.Is(err, chainsync.ErrAmbiguous) || sent.TxID != txid1 {
		t.Fatalf("sent %+v, %v; want the txid and ErrAmbiguous", sent, err)
	}
	if d := time.Since(began); d > timeout+time.Second {
		t.Fatalf("took %s, timeout %s", d, timeout)
	}
}

func TestErrorReplies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		status int
		body   string
		call   string
		want   error
		code   int // of the *RPCError, when one
	}{
		{"insufficient funds (btcwallet, 200)", 200, rpcErr(-6, "Insufficient funds"), "Send", chainsync.ErrRejected, -6},
		{"invalid address (bitcoind, 500)", 500, rpcErr(-5, "Invalid address"), "Send", chainsync.ErrRejected, -5},
		{"invalid amount", 500, rpcErr(-3, "Invalid amount"), "Send", chainsync.ErrRejected, -3},
		{"wallet error", 200, rpcErr(-4, "cannot decode address"), "Send", chainsync.ErrRejected, -4},
		{"internal error", 200, rpcErr(-32603, "insufficient funds available"), "Send", chainsync.ErrRejected, -32603},
		{"wallet locked", 500, rpcErr(-13, "Please enter the wallet passphrase"), "Send", chainsync.ErrUnavailable, -13},
		{"warming up, send", 500, rpcErr(-28, "Loading wallet"), "Send", chainsync.ErrUnavailable, -28},
		{"warming up, height", 500, rpcErr(-28, "Loading wallet"), "Height", chainsync.ErrUnavailable, -28},
		{"unknown transaction", 500, rpcErr(-5, "Invalid or non-wallet transaction id"), "Transaction", chainsync.ErrTxNotFound, -5},
		{"502 without body, send", 502, "Bad Gateway", "Send", chainsync.ErrAmbiguous, 0},
		{"502 without body, height", 502, "Bad Gateway", "Height", chainsync.ErrUnavailable, 0},
		{"401, send", 401, "", "Send", chainsync.ErrUnavailable, 0},
		{"429, send", 429, "429 Too Many Requests", "Send", chainsync.ErrUnavailable, 0},
		{"garbled 200, send", 200, "<html>", "Send", chainsync.ErrAmbiguous, 0},
		{"garbled 200, new address", 200, "<html>", "NewAddress", chainsync.ErrUnavailable, 0},
		{"no txid, send", 200, result("null"), "Send", chainsync.ErrAmbiguous, 0},
		{"not a string, send", 200, result("42"), "Send", chainsync.ErrAmbiguous, 0},
	} {
		url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, _ string, _ []json.RawMessage) {
			reply(w, c.status, c.body)
		})
		err := calls(openURL(t, url, time.Second))[c.call](context.Background())
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		for _, other := range []error{chainsync.ErrUnavailable, chainsync.ErrRejected, chainsync.ErrAmbiguous} {
			if other != c.want && errors.Is(err, other) {
				t.Errorf("%s: %v is also %v", c.name, err, other)
			}
		}
		var rpcErr *RPCError
		if got := errors.As(err, &rpcErr); got != (c.code != 0) || got && rpcErr.Code != c.code {
			t.Errorf("%s: %v, want an RPCError with code %d", c.name, err, c.code)
		}
		if strings.Contains(err.Error(), ":p@") {
			t.Errorf("%s: %v shows the password", c.name, err)
		}
	}
}

func TestSendReadsTheFee(t *testing.T) {
	t.Parallel()
	var sendParams []json.RawMessage
	url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, method string, params []json.RawMessage) {
		switch method {
		case "help":
			reply(w, 200, result(`"sendtoaddress \"address\" amount ( \"comment\" \"comment_to\" subtractfeefromamount replaceable )"`))
		case "sendtoaddress":
			sendParams = params
			reply(w, 200, result(`"`+strings.ToUpper(txid1)+`"`))
		case "gettransaction":
			// bitcoind's view of a send: negative fee and amounts.
			reply(w, 200, result(`{"amount":-0.12345678,"fee":-0.00002260,"confirmations":0,"txid":"`+txid1+`",
				"details":[{"address":"bcrt1qdest","category":"send","amount":-0.12345678,"vout":0,"fee":-0.00002260}]}`))
		default:
			reply(w, 500, rpcErr(-32601, "Method not found"))
		}
	})
	b := openURL(t, url, time.Second)
	sent, err := b.Send(context.Background(), "bcrt1qdest", 12_345_678, true)
	if err != nil {
		t.Fatal(err)
	}
	if sent != (chainsync.Sent{TxID: txid1, Fee: 2260}) {
		t.Fatalf("sent %+v", sent)
	}
	got, _ := json.Marshal(sendParams)
	if string(got) != `["bcrt1qdest",0.12345678,"","",true]` {
		t.Fatalf("sendtoaddress params %s", got)
	}
}

func TestTransactionReplies(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, reply string
		want        chainsync.Tx
	}{
		{
			name: "btcwallet receive, Go floats",
			reply: `{"amount":1e-05,"confirmations":0,"txid":"` + txid1 + `","walletconflicts":[],"time":1,"timereceived":1,
				"details":[{"account":"default","address":"Sabc","amount":1e-05,"category":"receive","vout":1},
				{"account":"","address":"Swatch","amount":2,"category":"receive","involveswatchonly":true,"vout":2}]}`,
			want: chainsync.Tx{TxID: txid1, Received: []chainsync.Output{{Vout: 1, Address: "Sabc", Amount: 1000}}},
		},
		{
			name: "btcwallet send: amount 0, one send line without address, positive fee",
			reply: `{"amount":0,"fee":0.0000226,"confirmations":2,"blockhash":"00ab","txid":"` + txid1 + `",
				"details":[{"account":"","amount":-1.5000226,"category":"send","fee":0.0000226,"vout":0}]}`,
			want: chainsync.Tx{TxID: txid1, Confirmations: 2, BlockHash: "00ab", Fee: 2260},
		},
		{
			name: "bitcoind, conflicted, coinbase lines ignored",
			reply: `{"amount":0.5,"confirmations":-3,"txid":"` + txid1 + `","details":[
				{"address":"bcrt1qa","category":"receive","amount":0.50000000,"vout":0},
				{"address":"bcrt1qb","category":"immature","amount":50.00000000,"vout":1},
				{"address":"bcrt1qc","category":"generate","amount":50.00000000,"vout":2}]}`,
			want: chainsync.Tx{TxID: txid1, Confirmations: -3, Received: []chainsync.Output{{Vout: 0, Address: "bcrt1qa", Amount: 50_000_000}}},
		},
	} {
		url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, method string, params []json.RawMessage) {
			if method != "gettransaction" || len(params) != 2 || string(params[1]) != "false" {
				t.Errorf("%s: %s %s", c.name, method, params)
			}
			reply(w, 200, result(c.reply))
		})
		got, err := openURL(t, url, time.Second).Transaction(context.Background(), strings.ToUpper(txid1))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestSinceBlockListsEachTxOnce(t *testing.T) {
	t.Parallel()
	const last = "2222222222222222222222222222222222222222222222222222222222222222"
	var gotParams string
	url := fakeNode(t, func(w http.ResponseWriter, _ *http.Request, _ string, params []json.RawMessage) {
		p, _ := json.Marshal(params)
		gotParams = string(p)
		reply(w, 200, result(`{"transactions":[{"txid":"b","category":"send"},{"txid":"a","category":"receive"},
			{"txid":"b","category":"receive"}],"lastblock":"`+last+`"}`))
	})
	b := openURL(t, url, time.Second)
	since, err := b.SinceBlock(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(since.TxIDs) != "[b a]" || since.LastBlock != last || gotParams != "[]" {
		t.Fatalf("since %+v (params %s)", since, gotParams)
	}
	if _, err := b.SinceBlock(context.Background(), last); err != nil || gotParams != `["`+last+`"]` {
		t.Fatalf("since %s: %v (params %s)", last, err, gotParams)
	}
	if _, err := b.SinceBlock(context.Background(), "nope"); err == nil {
		t.Fatal("a malformed block hash was accepted")
	}
}

func TestCookieFile(t *testing.T) {
	t.Parallel()
	cookie := filepath.Join(t.TempDir(), ".cookie")
	write := func(s string) {
		if err := os.WriteFile(cookie, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	url := fakeNode(t, func(w http.ResponseWriter, r *http.Request, _ string, _ []json.RawMessage) {
		data, _ := os.ReadFile(cookie)
		user, pass, _ := strings.Cut(strings.TrimSpace(string(data)), ":")
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			reply(w, 401, "")
			return
		}
		reply(w, 200, result("7"))
	})
	b, err := Open(Config{URL: strings.Replace(url, "u:p@", "", 1), CookieFile: cookie, Network: "regtest"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Height(context.Background()); !errors.Is(err, chainsync.ErrUnavailable) {
		t.Fatalf("without a cookie: %v, want ErrUnavailable", err)
	}
	for _, c := range []string{"__cookie__:first\n", "__cookie__:second"} { // the node restarted
		write(c)
		if h, err := b.Height(context.Background()); err != nil || h != 7 {
			t.Fatalf("cookie %q: %d, %v", c, h, err)
		}
	}
}
