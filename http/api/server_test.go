package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/crypto/bcrypt"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/http/api"
	"github.com/coinledger/coinledger/http/apitest"
	"github.com/coinledger/coinledger/http/auth"
	"github.com/coinledger/coinledger/projections"
	rmsqlite "github.com/coinledger/coinledger/projections/sqlite"
	userview "github.com/coinledger/coinledger/projections/users"
	"github.com/coinledger/coinledger/projections/wallet"
)

const adminPassword = "admin-password"

// testServer is the API served in-process over real stores: a SQLite event
// store and SQLite read models in a temp dir, with their projections
// running. X-Forwarded-For from loopback is trusted, so tests choose the
// client address with it.
type testServer struct {
	URL    string
	Store  *sqlite.Store
	DB     projections.DB
	Users  *users.Service
	Runner *projections.Runner
	API    *api.API

	wallets   *wallets.Service
	issuer    *auth.Issuer
	keyring   *seal.Keyring
	directory *users.Directory // the user directory every instance shares
	logs      *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newTestServer opens fresh stores, bootstraps the admin and starts a
// server; configure may change its Deps.
func newTestServer(t *testing.T, configure func(*api.Deps)) *testServer {
	t.Helper()
	return newTestServerWith(t, configure)
}

// newTestServerWith is newTestServer with extra projections on its runner.
func newTestServerWith(t *testing.T, configure func(*api.Deps), extra ...projections.Projection) *testServer {
	t.Helper()
	return newTestServerOver(t, configure, func(*sqlite.Store) []projections.Projection { return extra })
}

// newTestServerOver is newTestServer with the projections extra makes over
// the server's store on its runner (before configure is called).
func newTestServerOver(t *testing.T, configure func(*api.Deps), extra func(*sqlite.Store) []projections.Projection) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db, err := rmsqlite.Open(ctx, filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	keyring := seal.Random() // one seal key for every instance, as the data directory's
	// One user directory, fed by the runner, for every instance.
	directory := users.NewDirectory(keyring)
	runner := projections.NewRunner(db, store, projections.Options{RetryMin: time.Millisecond, Logger: slog.New(slog.DiscardHandler)},
		append([]projections.Projection{wallet.New(), userview.New(), projections.Follow(directory)}, extra(store)...)...)
	done := make(chan error, 1)
	go func() { done <- runner.Run(ctx) }()
	issuer, err := auth.NewIssuer(auth.KeyOf([]byte("api-test-secret-api-test-secret-0123")))
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{Store: store, DB: db, Runner: runner, keyring: keyring, directory: directory,
		Users:   users.NewWithOptions(store, users.Options{BcryptCost: bcrypt.MinCost, Keyring: keyring, Directory: directory, DirectoryAt: directoryAt(runner), SharedStore: true}),
		wallets: wallets.New(store, wallets.Options{}), issuer: issuer, logs: &syncBuffer{}}
	t.Cleanup(func() { // after every instance's own cleanup
		cancel()
		if err := <-done; err != nil {
			t.Errorf("projections: %v", err)
		}
		ts.wallets.Close()
		db.Close()
		store.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	if _, err := ts.Users.BootstrapAdmin(ctx, adminPassword, nil); err != nil {
		t.Fatal(err)
	}
	ts.serve(t, configure)
	return ts
}

// directoryAt is the wiring's port for the user directory: the runner's
// WaitFor for it. (The test's instances share one store: SharedStore.)
func directoryAt(r *projections.Runner) func(context.Context, uint64) error {
	return func(ctx context.Context, pos uint64) error { return r.WaitFor(ctx, users.DirectoryName, pos) }
}

// instance starts another API instance over ts's stores, with its own
// users service (its own caches) and websocket hub, as a second process
// would have.
func (ts *testServer) instance(t *testing.T, configure func(*api.Deps)) *testServer {
	t.Helper()
	other := &testServer{Store: ts.Store, DB: ts.DB, Runner: ts.Runner, keyring: ts.keyring, directory: ts.directory,
		Users: users.NewWithOptions(ts.Store, users.Options{BcryptCost: bcrypt.MinCost, Keyring: ts.keyring,
			Directory: ts.directory, DirectoryAt: directoryAt(ts.Runner), SharedStore: true}),
		wallets: ts.wallets, issuer: ts.issuer, logs: ts.logs}
	other.serve(t, configure)
	return other
}

// serve builds the API over ts's stores and serves it until the test ends.
func (ts *testServer) serve(t *testing.T, configure func(*api.Deps)) {
	t.Helper()
	clientIP, err := auth.NewClientIP([]string{"127.0.0.1/32", "::1/128"})
	if err != nil {
		t.Fatal(err)
	}
	d := api.Deps{Store: ts.Store, DB: ts.DB, Runner: ts.Runner, Wallets: ts.wallets, Users: ts.Users, Issuer: ts.issuer,
		ClientIP: clientIP, Logins: auth.NewLoginGuard(auth.DefaultLoginPolicy(), nil),
		Logger: slog.New(slog.NewTextHandler(ts.logs, nil)), Version: "test"}
	if configure != nil {
		configure(&d)
	}
	ts.API = api.New(d)
	srv := httptest.NewServer(ts.API)
	ts.URL = srv.URL
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = ts.API.Shutdown(ctx)
		srv.Close()
	})
}

// client returns a contract-checking client of the server.
func (ts *testServer) client(t *testing.T) *apitest.Client {
	return apitest.NewClient(t, ts.URL+"/api/v1")
}

// from returns the header that makes the request come from address ip.
func from(ip string) http.Header { return apitest.Header("X-Forwarded-For", ip) }

type tokenPair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// login logs username in from ip and returns its tokens.
func (ts *testServer) login(t *testing.T, username, password, ip string) tokenPair {
	t.Helper()
	var tp tokenPair
	r := ts.client(t).Post("/auth/login", map[string]string{"username": username, "password": password}, from(ip))
	r.Expect(t, http.StatusOK)
	if !r.JSON(t, &tp) || tp.AccessToken == "" {
		t.Fatalf("login %s: %d %s", username, r.Status, r.Body)
	}
	return tp
}

// admin returns a client logged in as the admin.
func (ts *testServer) admin(t *testing.T) *apitest.Client {
	t.Helper()
	return ts.client(t).WithToken(ts.login(t, "admin", adminPassword, "127.0.0.1").AccessToken)
}

// addUser registers username with password "password-<username>".
func (ts *testServer) addUser(t *testing.T, admin *apitest.Client, username string) {
	t.Helper()
	admin.Post("/users", map[string]any{"username": username, "email": username + "@example.com",
		"password": "password-" + username}).Expect(t, http.StatusCreated)
}

// dial opens the websocket with token in the Authorization header and
// reads the authenticated message.
func (ts *testServer) dial(t *testing.T, token string) *websocket.Conn {
	t.Helper()
	c, resp, err := ts.tryDial(token)
	if err != nil {
		t.Fatalf("websocket dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { c.CloseNow() })
	if m := wsRead(t, c); !strings.Contains(m, `"authenticated"`) {
		t.Fatalf("first message %s", m)
	}
	return c
}

func (ts *testServer) tryDial(token string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.URL, "http")+"/api/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
}

func wsWrite(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
}

func wsRead(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	return string(b)
}

// wsSubscribe subscribes c to topics and waits for the reply.
func wsSubscribe(t *testing.T, c *websocket.Conn, topics string) {
	t.Helper()
	wsWrite(t, c, `{"type":"subscribe","topics":[`+topics+`]}`)
	for {
		if m := wsRead(t, c); strings.Contains(m, `"subscribed"`) {
			return
		} else if !strings.Contains(m, `"heartbeat"`) {
			t.Fatalf("subscribe answered %s", m)
		}
	}
}

// wsClosed waits up to within for c to be closed and returns the close
// code (-1: still open).
func wsClosed(c *websocket.Conn, within time.Duration) websocket.StatusCode {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				return -1
			}
			return websocket.CloseStatus(err)
		}
	}
}

// waitProjected waits until the users read model has applied the store's
// head.
func (ts *testServer) waitProjected(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := ts.Store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.Runner.WaitFor(ctx, userview.New().Name(), head); err != nil {
		t.Fatal(err)
	}
}
