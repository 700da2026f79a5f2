package ws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coinledger/coinledger/domain/alerts"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
)

// errBadToken is what the test Authenticate returns for unknown tokens.
var errBadToken = errors.New("bad token")

// authenticate maps the test tokens to principals: alice reads wallet
// alice-main, bob reads bob-main, admin reads every wallet; "short" is
// alice's token that expires 300 ms after it is checked.
func authenticate(_ *http.Request, token string) (Principal, time.Time, error) {
	reads := func(wallets ...string) func(string) bool {
		return func(w string) bool {
			for _, x := range wallets {
				if x == "*" || x == w {
					return true
				}
			}
			return false
		}
	}
	switch token {
	case "alice-token":
		return Principal{Username: "alice", CanRead: reads("alice-main")}, time.Time{}, nil
	case "bob-token":
		return Principal{Username: "bob", CanRead: reads("bob-main")}, time.Now().Add(time.Hour), nil
	case "admin-token":
		return Principal{Username: "admin", CanRead: reads("*")}, time.Time{}, nil
	case "short-token":
		return Principal{Username: "alice", CanRead: reads("alice-main")}, time.Now().Add(300 * time.Millisecond), nil
	}
	return Principal{}, time.Time{}, errBadToken
}

type fixture struct {
	t     *testing.T
	store *sqlite.Store
	h     *Handler
	url   string
	conns []*websocket.Conn
}

// newFixture serves a Handler on a fresh SQLite store. When the test ends
// it closes the test's connections and checks that every goroutine of the
// package has returned.
func newFixture(t *testing.T, configure func(*Config)) *fixture {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: store, Authenticate: authenticate, Heartbeat: 20 * time.Millisecond}
	if configure != nil {
		configure(&cfg)
	}
	f := &fixture{t: t, store: store, h: New(cfg)}
	srv := httptest.NewServer(f.h)
	f.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/ws"
	t.Cleanup(func() {
		for _, c := range f.conns {
			c.CloseNow()
		}
		checkNoGoroutines(t)
		srv.Close()
		if err := store.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

// checkNoGoroutines fails unless every goroutine of the package's
// connections returns soon.
func checkNoGoroutines(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		var left []string
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "http/ws.(*session)") || strings.Contains(g, "http/ws.(*Handler).ServeHTTP") {
				left = append(left, g)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of the connections did not return:\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial connects with token in the Authorization header, or without a
// header when token is "".
func (f *fixture) dial(token string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if token != "" {
		opts.HTTPHeader.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.Dial(ctx, f.url, opts)
	if err == nil {
		f.conns = append(f.conns, c)
	}
	return c, resp, err
}

// connect dials with a header token and reads the authenticated message.
func (f *fixture) connect(token string) *websocket.Conn {
	f.t.Helper()
	c, _, err := f.dial(token)
	if err != nil {
		f.t.Fatal(err)
	}
	if m := f.read(c); m.Type != "authenticated" {
		f.t.Fatalf("first message %+v, want authenticated", m)
	}
	return c
}

// message is any server message.
type message struct {
	Type      string          `json:"type"`
	Username  string          `json:"username"`
	ExpiresAt time.Time       `json:"expires_at"`
	Code      string          `json:"code"`
	Message   string          `json:"message"`
	Topics    []string        `json:"topics"`
	From      uint64          `json:"from"`
	Topic     string          `json:"topic"`
	Position  uint64          `json:"position"`
	Stream    string          `json:"stream"`
	Revision  uint64          `json:"revision"`
	EventType string          `json:"event_type"`
	Time      time.Time       `json:"time"`
	Data      json.RawMessage `json:"data"`
}

func (m message) String() string {
	if m.Type == "event" {
		return fmt.Sprintf("%s #%d %s@%d %s", m.Topic, m.Position, m.Stream, m.Revision, m.EventType)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func (f *fixture) read(c *websocket.Conn) message {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		f.t.Fatalf("read: %v", err)
	}
	var m message
	if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil {
		f.t.Fatalf("server sent %v %q", typ, b)
	}
	return m
}

// readSkipping reads the next message that is not a heartbeat.
func (f *fixture) readSkipping(c *websocket.Conn) message {
	f.t.Helper()
	for {
		if m := f.read(c); m.Type != "heartbeat" {
			return m
		}
	}
}

func (f *fixture) write(c *websocket.Conn, msg string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		f.t.Fatalf("write: %v", err)
	}
}

// subscribe sends a subscribe message and reads the subscribed reply.
func (f *fixture) subscribe(c *websocket.Conn, msg string) message {
	f.t.Helper()
	f.write(c, msg)
	m := f.readSkipping(c)
	if m.Type != "subscribed" {
		f.t.Fatalf("reply %v, want subscribed", m)
	}
	return m
}

// expectClose reads until the connection closes and checks its code. With
// nothingElse, the close must be the first thing read.
func (f *fixture) expectClose(c *websocket.Conn, code websocket.StatusCode, nothingElse bool) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			if got := websocket.CloseStatus(err); got != code {
				f.t.Fatalf("connection ended with %v (%v), want close code %d", got, err, code)
			}
			return
		}
		if nothingElse {
			f.t.Fatalf("server sent %s before closing", b)
		}
	}
}

// events reads until a heartbeat reports position upTo and returns the
// events read. Heartbeats are sent after every event they cover.
func (f *fixture) events(c *websocket.Conn, upTo uint64) []message {
	f.t.Helper()
	var events []message
	for {
		m := f.read(c)
		switch m.Type {
		case "event":
			events = append(events, m)
		case "heartbeat":
			if m.Position >= upTo {
				return events
			}
		default:
			f.t.Fatalf("unexpected %v", m)
		}
	}
}

// append appends one event and returns its position.
func (f *fixture) append(stream, eventType, data string) uint64 {
	f.t.Helper()
	res, err := f.store.Append(context.Background(), stream, eventstore.Any,
		eventstore.EventData{Type: eventType, Data: json.RawMessage(data)})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Position
}

func (f *fixture) deposit(wallet string, n int) uint64 {
	f.t.Helper()
	return f.append("wallet-"+wallet, ledger.TypeDepositSeen, fmt.Sprintf(
		`{"id":"%064x:0","txid":"%064x","vout":0,"address":"bcrt1qexample","account":"%s-acct","amount":%d,"confirmations":0,"postings":[]}`,
		n, n, wallet, 1000*n))
}

func (f *fixture) head() uint64 {
	f.t.Helper()
	h, err := f.store.Head(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// summary lists events as "topic stream event_type".
func summary(events []message) []string {
	var s []string
	for _, e := range events {
		s = append(s, e.Topic+" "+e.Stream+" "+e.EventType)
	}
	return s
}

func positions(events []message) []uint64 {
	var p []uint64
	for _, e := range events {
		p = append(p, e.Position)
	}
	return p
}

func TestHeaderAuth(t *testing.T) {
	f := newFixture(t, nil)
	c, _, err := f.dial("bob-token")
	if err != nil {
		t.Fatal(err)
	}
	m := f.read(c)
	if m.Type != "authenticated" || m.Username != "bob" || m.ExpiresAt.IsZero() {
		t.Fatalf("first message %v, want authenticated as bob with expires_at", m)
	}
	f.write(c, `{"type":"ping"}`)
	if m := f.readSkipping(c); m.Type != "pong" {
		t.Fatalf("reply to ping %v", m)
	}
}

func TestHeaderBadToken(t *testing.T) {
	f := newFixture(t, nil)
	for _, header := range []string{"Bearer nope", "Basic YWxpY2U6cHc=", "Bearer "} {
		req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(f.url, "ws"), nil)
		req.Header.Set("Authorization", header)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%q: status %d, want 401 with WWW-Authenticate", header, resp.StatusCode)
		}
	}
	if _, resp, err := f.dial("nope"); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial with a bad token: %v", err)
	}
}

func TestFirstMessageAuth(t *testing.T) {
	f := newFixture(t, nil)
	c, _, err := f.dial("")
	if err != nil {
		t.Fatal(err)
	}
	f.write(c, `{"type":"auth","token":"alice-token"}`)
	if m := f.read(c); m.Type != "authenticated" || m.Username != "alice" || !m.ExpiresAt.IsZero() {
		t.Fatalf("reply %v, want authenticated as alice without expiry", m)
	}
	// A second auth message is not part of the protocol.
	f.write(c, `{"type":"auth","token":"admin-token"}`)
	if m := f.readSkipping(c); m.Type != "error" || m.Code != "bad_message" {
		t.Fatalf("reply to a second auth %v, want bad_message", m)
	}
}

// TestFirstMessageForms: the token may come as the auth message, a bare
// {"token":..}, a JSON string or the token text itself (JoinMarket's form);
// subscribe also takes the API.md form {"subscribe": [...], "from": N}.
func TestFirstMessageForms(t *testing.T) {
	for _, first := range []string{`{"type":"auth","token":"alice-token"}`, `{"token":"alice-token"}`, `"alice-token"`, `alice-token`} {
		t.Run(first, func(t *testing.T) {
			f := newFixture(t, nil)
			c, _, err := f.dial("")
			if err != nil {
				t.Fatal(err)
			}
			f.write(c, first)
			if m := f.read(c); m.Type != "authenticated" {
				t.Fatalf("first message %s: %v", first, m)
			}
			f.write(c, `{"subscribe":["prices"],"from":0}`)
			if m := f.read(c); m.Type != "subscribed" {
				t.Fatalf("short subscribe: %v", m)
			}
		})
	}
}

func TestFirstMessageRefused(t *testing.T) {
	for name, first := range map[string]string{
		"bad token":   `{"type":"auth","token":"nope"}`,
		"empty token": `{"type":"auth","token":""}`,
		"not auth":    `{"type":"subscribe","topics":["prices"]}`,
		"not json":    `alice token`,
		"bare bad":    `nope`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, nil)
			c, _, err := f.dial("")
			if err != nil {
				t.Fatal(err)
			}
			f.write(c, first)
			f.expectClose(c, StatusUnauthorized, true)
		})
	}
}

func TestAuthTimeout(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AuthTimeout = 100 * time.Millisecond })
	c, _, err := f.dial("")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.expectClose(c, StatusUnauthorized, true)
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("closed after %v, before the auth timeout", d)
	}
}

func TestTokenExpiry(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("short-token")
	f.subscribe(c, `{"type":"subscribe","topics":["prices"]}`)
	f.expectClose(c, StatusUnauthorized, false)
}

// TestVisibility: each caller gets the events of its topics that it may
// see, and nothing else.
func TestVisibility(t *testing.T) {
	f := newFixture(t, nil)
	f.append("wallet-alice-main", ledger.TypeWalletOpened, `{"name":"alice-main","coin":"BTC"}`)
	f.deposit("alice-main", 1)
	f.append("wallet-alice-main", ledger.TypeDepositConfirmationsChanged, `{"id":"a:0","confirmations":1}`)
	f.append("wallet-alice-main", ledger.TypeDepositConfirmed, `{"id":"a:0","confirmations":3,"postings":[]}`)
	f.append("wallet-alice-main", ledger.TypeHoldPlaced, `{"id":"h1","account":"a","amount":5}`)
	f.append("wallet-alice-main", ledger.TypeFundsTransferred, `{"id":"t1","from":"a","to":"b","amount":7,"postings":[]}`)
	f.append("wallet-alice-main", ledger.TypeWithdrawalRequested, `{"id":"w1","account":"a","amount":9}`)
	f.deposit("bob-main", 2)
	f.append("wallet-bob-main", ledger.TypeWithdrawalRequested, `{"id":"w2","account":"b","amount":9}`)
	f.append("alert-a1", alerts.TypeAlertCreated, `{"id":"a1","owner":"alice","pair":"BTC-USD","direction":"above","target":"70000","channels":{"websocket":true}}`)
	f.append("alert-b1", alerts.TypeAlertCreated, `{"id":"b1","owner":"bob","pair":"BTC-USD","direction":"below","target":"50000","channels":{"websocket":true}}`)
	f.append("price-BTC-USD", prices.TypePriceTicked, `{"pair":"BTC-USD","price":"71000","source":"test","at":"2026-01-02T03:04:05Z"}`)
	triggered := f.append("alert-a1", alerts.TypeAlertTriggered, `{"id":"a1","owner":"alice","price":"71000","tick_position":12,"seq":1}`)
	f.append("alert-a1", alerts.TypeAlertRearmed, `{"id":"a1","price":"60000","tick_position":13}`)
	f.append("alert-b1", alerts.TypeAlertDeleted, `{"id":"b1","by":"bob"}`)
	f.append("user-alice", "identity.user_created", `{"username":"alice"}`)
	head := f.head()

	all := `{"type":"subscribe","topics":["deposits","withdrawals","transfers","alerts","prices"],"from":0}`
	tests := []struct {
		token, subscribe string
		want             []string
	}{
		{"alice-token", all, []string{
			"deposits wallet-alice-main ledger.deposit_seen",
			"deposits wallet-alice-main ledger.deposit_confirmations_changed",
			"deposits wallet-alice-main ledger.deposit_confirmed",
			"transfers wallet-alice-main ledger.funds_transferred",
			"withdrawals wallet-alice-main ledger.withdrawal_requested",
			"alerts alert-a1 alerts.created",
			"prices price-BTC-USD prices.ticked",
			"alerts alert-a1 alerts.triggered",
			"alerts alert-a1 alerts.rearmed",
		}},
		{"bob-token", all, []string{
			"deposits wallet-bob-main ledger.deposit_seen",
			"withdrawals wallet-bob-main ledger.withdrawal_requested",
			"alerts alert-b1 alerts.created",
			"prices price-BTC-USD prices.ticked",
			"alerts alert-b1 alerts.deleted",
		}},
		{"admin-token", `{"type":"subscribe","topics":["withdrawals","prices","withdrawals"],"from":0}`, []string{
			"withdrawals wallet-alice-main ledger.withdrawal_requested",
			"withdrawals wallet-bob-main ledger.withdrawal_requested",
			"prices price-BTC-USD prices.ticked",
		}},
		// The owner of an owner-less event whose alert was created before
		// from comes from the alert stream (the default AlertOwner).
		{"alice-token", fmt.Sprintf(`{"type":"subscribe","topics":["alerts"],"from":%d}`, triggered), []string{
			"alerts alert-a1 alerts.rearmed",
		}},
		{"bob-token", fmt.Sprintf(`{"type":"subscribe","topics":["alerts"],"from":%d}`, triggered), []string{
			"alerts alert-b1 alerts.deleted",
		}},
	}
	for _, tt := range tests {
		c := f.connect(tt.token)
		f.subscribe(c, tt.subscribe)
		events := f.events(c, head)
		if got := summary(events); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s got\n%s\nwant\n%s", tt.token, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
		for _, e := range events {
			if e.Time.IsZero() || len(e.Data) == 0 || e.Data[0] != '{' {
				t.Errorf("%s: event without time or data: %+v", tt.token, e)
			}
		}
	}
}

func TestAlertOwnerLookup(t *testing.T) {
	var mu sync.Mutex
	var asked []string
	f := newFixture(t, func(c *Config) {
		c.AlertOwner = func(_ context.Context, id string) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, id)
			if id == "broken" {
				return "", errors.New("read model unavailable")
			}
			return "alice", nil
		}
	})
	f.append("alert-x1", alerts.TypeAlertRearmed, `{"id":"x1","price":"1"}`)
	f.append("alert-x1", alerts.TypeAlertDeleted, `{"id":"x1","by":"alice"}`)
	c := f.connect("alice-token")
	f.subscribe(c, `{"type":"subscribe","topics":["alerts"],"from":0}`)
	if got := summary(f.events(c, f.head())); len(got) != 2 {
		t.Fatalf("got %v, want both owner-less events of alice's alert", got)
	}
	mu.Lock()
	if len(asked) != 1 {
		t.Fatalf("AlertOwner called for %v, want once (the owner is remembered)", asked)
	}
	mu.Unlock()

	f.append("alert-broken", alerts.TypeAlertDeleted, `{"id":"broken","by":"x"}`)
	f.expectClose(c, websocket.StatusInternalError, false)
}

func TestCatchUpThenLive(t *testing.T) {
	f := newFixture(t, nil)
	var want []uint64
	for i := range 3 {
		want = append(want, f.deposit("alice-main", i))
		f.deposit("bob-main", i)
	}
	c := f.connect("alice-token")
	if m := f.subscribe(c, `{"type":"subscribe","topics":["deposits"],"from":0}`); m.From != 0 || len(m.Topics) != 1 {
		t.Fatalf("subscribed %v", m)
	}
	got := f.events(c, f.head())
	for i := range 3 {
		want = append(want, f.deposit("alice-main", 10+i))
		f.deposit("bob-main", 10+i)
	}
	got = append(got, f.events(c, f.head())...)
	if p := positions(got); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("positions %v, want %v", p, want)
	}
}

func TestSubscribeWithoutFrom(t *testing.T) {
	f := newFixture(t, nil)
	f.deposit("alice-main", 1)
	head := f.head()
	c := f.connect("alice-token")
	if m := f.subscribe(c, `{"type":"subscribe","topics":["deposits"]}`); m.From != head {
		t.Fatalf("subscribed from %d, want the head %d", m.From, head)
	}
	p := f.deposit("alice-main", 2)
	if got := positions(f.events(c, p)); fmt.Sprint(got) != fmt.Sprint([]uint64{p}) {
		t.Fatalf("positions %v, want only the new event %d", got, p)
	}
}

func TestResume(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	f.subscribe(c, `{"type":"subscribe","topics":["deposits","prices"],"from":0}`)
	var want []uint64
	for i := range 3 {
		want = append(want, f.deposit("alice-main", i))
	}
	got := f.events(c, want[len(want)-1])
	last := got[len(got)-1].Position
	c.Close(websocket.StatusNormalClosure, "")

	for i := range 3 { // while disconnected
		want = append(want, f.deposit("alice-main", 10+i))
		f.deposit("bob-main", 10+i)
		want = append(want, f.append("price-BTC-USD", prices.TypePriceTicked, `{"pair":"BTC-USD","price":"1","source":"t"}`))
	}
	c = f.connect("alice-token")
	if m := f.subscribe(c, fmt.Sprintf(`{"type":"subscribe","topics":["deposits","prices"],"from":%d}`, last)); m.From != last {
		t.Fatalf("subscribed %v", m)
	}
	got = append(got, f.events(c, f.head())...)
	if p := positions(got); fmt.Sprint(p) != fmt.Sprint(want) {
		t.Fatalf("positions %v, want %v (no gap, no duplicate)", p, want)
	}
}

func TestResubscribeReplaces(t *testing.T) {
	f := newFixture(t, nil)
	f.deposit("alice-main", 1)
	tick := f.append("price-BTC-USD", prices.TypePriceTicked, `{"pair":"BTC-USD","price":"1","source":"t"}`)
	f.deposit("alice-main", 2)
	c := f.connect("alice-token")
	f.subscribe(c, `{"type":"subscribe","topics":["deposits"],"from":0}`)
	f.write(c, `{"type":"subscribe","topics":["prices"],"from":0}`)
	// Events of the first subscription may come before the second's reply,
	// never after it.
	for m := f.readSkipping(c); m.Type != "subscribed"; m = f.readSkipping(c) {
		if m.Type != "event" || m.Topic != "deposits" {
			t.Fatalf("before the reply: %v", m)
		}
	}
	if got := positions(f.events(c, f.head())); fmt.Sprint(got) != fmt.Sprint([]uint64{tick}) {
		t.Fatalf("after resubscribing got %v, want only the tick at %d", got, tick)
	}
}

func TestHeartbeatPosition(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	f.subscribe(c, `{"type":"subscribe","topics":["alerts"],"from":0}`)
	for i := range 5 {
		f.deposit("alice-main", i) // scanned, not sent
	}
	head := f.head()
	for {
		m := f.read(c)
		if m.Type != "heartbeat" {
			t.Fatalf("unexpected %v", m)
		}
		if m.Position > head {
			t.Fatalf("heartbeat position %d beyond the head %d", m.Position, head)
		}
		if m.Position == head {
			return
		}
	}
}

func TestUnknownTopic(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	p := f.deposit("alice-main", 1)
	f.subscribe(c, `{"type":"subscribe","topics":["deposits"],"from":0}`)
	if got := positions(f.events(c, p)); fmt.Sprint(got) != fmt.Sprint([]uint64{p}) {
		t.Fatalf("got %v, want %d", got, p)
	}
	f.write(c, `{"type":"subscribe","topics":["deposits","holds"],"from":0}`)
	if m := f.readSkipping(c); m.Type != "error" || m.Code != "unknown_topic" || !strings.Contains(m.Message, "holds") {
		t.Fatalf("reply %v, want unknown_topic naming holds", m)
	}
	// The first subscription goes on.
	p = f.deposit("alice-main", 2)
	if got := positions(f.events(c, p)); fmt.Sprint(got) != fmt.Sprint([]uint64{p}) {
		t.Fatalf("after the error got %v, want %d", got, p)
	}
}

func TestBadMessages(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	expectBad := func() {
		t.Helper()
		if m := f.readSkipping(c); m.Type != "error" || m.Code != "bad_message" {
			t.Fatalf("reply %v, want bad_message", m)
		}
	}
	f.write(c, `{not json`)
	expectBad()
	f.write(c, `{"type":"dance"}`)
	expectBad()
	f.write(c, `{"type":"ping"}`) // resets the count
	if m := f.readSkipping(c); m.Type != "pong" {
		t.Fatalf("reply %v, want pong", m)
	}
	f.write(c, `{"type":"subscribe","topics":[]}`)
	expectBad()
	f.write(c, `{"type":"subscribe","topics":["prices"],"from":-1}`)
	expectBad()
	f.write(c, `[]`)
	f.expectClose(c, websocket.StatusPolicyViolation, false)
}

func TestMessageTooBig(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	f.write(c, `{"type":"ping","pad":"`+strings.Repeat("x", 64<<10)+`"}`)
	f.expectClose(c, websocket.StatusMessageTooBig, false)
}

func TestSlowConsumer(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxBehind = 3 })
	var events []eventstore.EventData
	for i := range 10 {
		events = append(events, eventstore.EventData{Type: ledger.TypeDepositSeen,
			Data: json.RawMessage(fmt.Sprintf(`{"id":"tx%d:0","amount":%d,"confirmations":0}`, i, i+1))})
	}
	if _, err := f.store.Append(context.Background(), "wallet-alice-main", eventstore.Any, events...); err != nil {
		t.Fatal(err)
	}
	c := f.connect("alice-token")
	f.write(c, `{"type":"subscribe","topics":["deposits"],"from":0}`)
	f.expectClose(c, StatusTooSlow, false)
}

func TestShutdown(t *testing.T) {
	f := newFixture(t, nil)
	c := f.connect("alice-token")
	f.subscribe(c, `{"type":"subscribe","topics":["deposits"]}`)
	waiting, _, err := f.dial("") // not yet authenticated
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.h.Shutdown(ctx) }()
	f.expectClose(c, websocket.StatusGoingAway, false)
	f.expectClose(waiting, websocket.StatusGoingAway, true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, resp, err := f.dial("alice-token"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v", err)
	}
}

func TestPlainGETRefused(t *testing.T) {
	f := newFixture(t, nil)
	req, _ := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(f.url, "ws"), nil)
	req.Header.Set("Authorization", "Bearer alice-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("a plain GET got %d", resp.StatusCode)
	}
}

var _ http.Handler = (*Handler)(nil)

func TestNewRequiresStoreAndAuthenticate(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New without a store did not panic")
		}
	}()
	New(Config{Authenticate: authenticate})
}

// revocable returns an Authenticate that knows, besides the fixture's
// tokens, "carol-token": carol's credential, valid while valid holds.
func revocable(valid *atomic.Bool) func(*http.Request, string) (Principal, time.Time, error) {
	return func(r *http.Request, token string) (Principal, time.Time, error) {
		if token != "carol-token" {
			return authenticate(r, token)
		}
		if !valid.Load() {
			return Principal{}, time.Time{}, errBadToken
		}
		return Principal{Username: "carol", StillValid: func(context.Context) (bool, error) { return valid.Load(), nil }},
			time.Time{}, nil
	}
}

// TestRevokedCredentialClosesAtRecheck: Handler.Recheck closes the
// sockets of a revoked credential with 4401 at once, whatever they
// subscribe to (prices here: no wallet check is involved).
func TestRevokedCredentialClosesAtRecheck(t *testing.T) {
	var valid atomic.Bool
	valid.Store(true)
	f := newFixture(t, func(c *Config) {
		c.Authenticate = revocable(&valid)
		c.RecheckEvery = time.Hour // only Recheck can close it in time
	})
	header := f.connect("carol-token")
	f.subscribe(header, `{"type":"subscribe","topics":["prices"]}`)
	first, _, err := f.dial("")
	if err != nil {
		t.Fatal(err)
	}
	f.write(first, `{"type":"auth","token":"carol-token"}`)
	if m := f.read(first); m.Type != "authenticated" {
		t.Fatalf("first-message auth: %v", m)
	}
	f.subscribe(first, `{"type":"subscribe","topics":["alerts"]}`)
	other := f.connect("alice-token")
	f.h.Recheck("carol") // still valid: nothing happens
	f.write(header, `{"type":"ping"}`)
	if m := f.readSkipping(header); m.Type != "pong" {
		t.Fatalf("after a recheck of a valid credential: %v", m)
	}
	valid.Store(false)
	start := time.Now()
	f.h.Recheck("carol")
	f.expectClose(header, StatusUnauthorized, false)
	f.expectClose(first, StatusUnauthorized, false)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("closed %v after the recheck", d)
	}
	f.write(other, `{"type":"ping"}`)
	if m := f.readSkipping(other); m.Type != "pong" {
		t.Fatalf("another user's socket: %v", m)
	}
}

// TestRevokedCredentialClosesWithinRecheckEvery: without a Recheck call
// (a revocation on another instance), the periodic check closes the
// socket.
func TestRevokedCredentialClosesWithinRecheckEvery(t *testing.T) {
	var valid atomic.Bool
	valid.Store(true)
	f := newFixture(t, func(c *Config) {
		c.Authenticate = revocable(&valid)
		c.RecheckEvery = 50 * time.Millisecond
	})
	c := f.connect("carol-token")
	f.subscribe(c, `{"type":"subscribe","topics":["prices"]}`)
	time.Sleep(150 * time.Millisecond) // a few checks pass
	f.write(c, `{"type":"ping"}`)
	if m := f.readSkipping(c); m.Type != "pong" {
		t.Fatalf("valid credential: %v", m)
	}
	valid.Store(false)
	f.expectClose(c, StatusUnauthorized, false)
}

// TestConnectionCapPerUser: a user holds at most MaxConnsPerUser sockets;
// one more is refused with 429 before the upgrade (header token) or
// closed with 4429 (first-message token); other users are not affected,
// and a closed socket frees its place.
func TestConnectionCapPerUser(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxConnsPerUser = 2 })
	a1 := f.connect("alice-token")
	f.connect("alice-token")
	_, resp, err := f.dial("alice-token")
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third header connection: %v %v", resp, err)
	}
	third, _, err := f.dial("")
	if err != nil {
		t.Fatal(err)
	}
	f.write(third, `{"type":"auth","token":"alice-token"}`)
	f.expectClose(third, StatusTooManyConnections, true)
	f.connect("bob-token")
	if n := f.h.connsOf("alice"); n != 2 {
		t.Fatalf("alice holds %d connections, want 2", n)
	}
	a1.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for f.h.connsOf("alice") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a closed connection still counts")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.connect("alice-token")
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Store: nil, Authenticate: authenticate}
	c.setDefaults()
	if c.MaxConnsPerUser != 8 || c.MaxBehind != 10000 || c.RecheckEvery != 2*time.Second {
		t.Fatalf("defaults %+v", c)
	}
}
