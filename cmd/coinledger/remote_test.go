package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/identity"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/projections"
)

// served is the service running in this process on an embedded store in
// a temporary directory, which it holds locked.
type served struct {
	cfg  *Config
	svc  *service
	c    *benchClient // logged in as admin
	addr string       // host:port
	stop func()       // stops the server and releases the store
}

// startServed starts the service on dir and points the CLI's environment
// at it (COINLEDGER_LISTEN, the same stores and keys, admin password).
func startServed(ctx context.Context, t *testing.T, dir string) *served {
	t.Helper()
	cfg := &Config{DataDir: dir, AdminPassword: benchAdminPassword, BcryptCost: 4, WalletnotifyListen: "off",
		SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
	cfg.setDefaults()
	svc, err := newService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), wiring{})
	if err != nil {
		t.Fatal(err)
	}
	c, stopServer, err := startBenchService(ctx, svc, 1)
	if err != nil {
		svc.close()
		t.Fatal(err)
	}
	stopped := false
	s := &served{cfg: cfg, svc: svc, c: c, addr: strings.TrimSuffix(strings.TrimPrefix(c.base, "http://"), "/api/v1"),
		stop: func() {
			if !stopped {
				stopped = true
				stopServer()
				svc.close()
			}
		}}
	t.Cleanup(s.stop)
	if err := c.login(); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"COINLEDGER_CONFIG": "", "COINLEDGER_DATA_DIR": dir, "COINLEDGER_EVENT_STORE": cfg.EventStore.Reveal(),
		"COINLEDGER_READ_MODELS": cfg.ReadModels.Reveal(), "COINLEDGER_SEAL_KEY": cfg.SealKey.Reveal(),
		"COINLEDGER_JWT_SECRET": cfg.JWTSecret.Reveal(), "COINLEDGER_BCRYPT_COST": "4",
		"COINLEDGER_WALLETNOTIFY_LISTEN": "off", "COINLEDGER_ADMIN_PASSWORD": benchAdminPassword,
		"COINLEDGER_TOKEN": "", "COINLEDGER_LISTEN": s.addr,
	} {
		t.Setenv(k, v)
	}
	return s
}

// caughtUp waits until every read model has applied the whole log.
func (s *served) caughtUp(ctx context.Context, t *testing.T) {
	t.Helper()
	head, err := s.svc.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range readModels() {
		if err := s.svc.runner.WaitFor(ctx, p.Name(), head); err != nil {
			t.Fatalf("%s: %v", p.Name(), err)
		}
	}
}

// checkpointsStored waits until every read model has applied the whole
// log and stored its checkpoint there (a read model that skipped the last
// events stores its position after a quiet second), so that the stores
// tell what the server does.
func (s *served) checkpointsStored(ctx context.Context, t *testing.T) {
	t.Helper()
	s.caughtUp(ctx, t)
	db, closeDB, err := openReadModels(ctx, s.cfg.ReadModels.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	stored := projections.NewRunner(db, s.svc.store, projections.Options{}, readModels()...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := stored.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		behind := ""
		for _, p := range st {
			if p.Lag > 0 {
				behind = fmt.Sprintf("%s stored %d of %d", p.Name, p.Position, p.Head)
			}
		}
		if behind == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoints not stored: %s", behind)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCLI runs the command with stdin as its standard input and returns
// what it printed on standard output.
func runCLI(ctx context.Context, t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	in, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.WriteString(stdin); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	oldIn, oldOut := os.Stdin, os.Stdout
	os.Stdin, os.Stdout = in, w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	err = run(ctx, args)
	os.Stdin, os.Stdout = oldIn, oldOut
	w.Close()
	return <-out, err
}

// streamTypes lists the event types of stream.
func streamTypes(ctx context.Context, t *testing.T, store eventstore.Store, stream string) []string {
	t.Helper()
	events, err := store.ReadStream(ctx, stream, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}

// TestServedStoreCommandsGoThroughAdminAPI: while a server in this process
// holds the embedded store, users, events export, audit verify and
// projections status go through its admin API instead of failing on the
// lock, and give what the same commands give offline once it has stopped:
// the same output, the same events (users), the same export lines
// (events export), the same table (projections status). An import into
// the served store is refused and writes nothing.
func TestServedStoreCommandsGoThroughAdminAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServed(ctx, t, dir)
	if err := s.c.postJSON("/wallets", map[string]any{"name": "main", "coin": "BTC", "permissions": []string{"read", "transfer"}},
		http.StatusCreated, &struct{}{}); err != nil {
		t.Fatal(err)
	}

	// users, through the server for bob and (below) offline for carol.
	userSteps := func(name string) [][]string {
		return [][]string{{"add", name, "-email", name + "@example.com", "-role", "auditor"}, {"grant", name, "main", "read,transfer"},
			{"revoke", name, "main"}, {"grant", name, "main", "read"}, {"disable", name}, {"enable", name}, {"disable", name}}
	}
	var servedOut []string
	for _, step := range userSteps("bob") {
		out, err := runCLI(ctx, t, "password-bob-1\n", append([]string{"users"}, step...)...)
		if err != nil {
			t.Fatalf("served users %v: %v", step, err)
		}
		servedOut = append(servedOut, out)
	}
	s.caughtUp(ctx, t)
	_, body, err := s.c.get("/users")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Users []struct {
			Username string
			Disabled bool
			Roles    []string
			Wallets  []struct {
				Wallet      string
				Permissions []string
			}
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, u := range list.Users {
		if u.Username == "bob" {
			found = true
			if !u.Disabled || len(u.Roles) != 1 || u.Roles[0] != "auditor" || len(u.Wallets) != 1 ||
				strings.Join(u.Wallets[0].Permissions, ",") != "read" {
				t.Errorf("bob as the server lists him: %+v", u)
			}
		}
	}
	if !found {
		t.Fatalf("GET /users has no bob: %s", body)
	}

	// events export, audit verify and projections status, through the
	// server, with a token (an admin login appends to the log: the stores
	// would move on under the comparison).
	t.Setenv("COINLEDGER_TOKEN", s.c.token)
	s.checkpointsStored(ctx, t)
	servedExport := filepath.Join(t.TempDir(), "served.ndjson")
	if _, err := runCLI(ctx, t, "", "events", "export", "-o", servedExport); err != nil {
		t.Fatalf("served events export: %v", err)
	}
	if out, err := runCLI(ctx, t, "", "audit", "verify"); err != nil || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("served audit verify: %q %v", out, err)
	}
	servedStatus, err := runCLI(ctx, t, "", "projections", "status")
	if err != nil {
		t.Fatalf("served projections status: %v", err)
	}

	// An import into the served store is refused.
	head, err := s.svc.store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = runCLI(ctx, t, "", "events", "import", servedExport)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "stop the server") {
		t.Fatalf("import into the served store: %v, want a refusal naming the running server", err)
	}
	if after, _ := s.svc.store.Head(ctx); after != head {
		t.Fatalf("the refused import moved the head from %d to %d", head, after)
	}

	s.stop()

	// Offline now: the same commands on the same store.
	offlineStatus, err := runCLI(ctx, t, "", "projections", "status")
	if err != nil {
		t.Fatalf("offline projections status: %v", err)
	}
	if offlineStatus != servedStatus || !strings.Contains(servedStatus, "wallet") {
		t.Errorf("projections status:\nserved:\n%s\noffline:\n%s", servedStatus, offlineStatus)
	}
	var end dump.End
	servedLines := exportLines(t, servedExport, &end)
	offlineExport := filepath.Join(t.TempDir(), "offline.ndjson")
	if _, err := runCLI(ctx, t, "", "events", "export", "-o", offlineExport, "-to", jsonUint(end.LastPosition)); err != nil {
		t.Fatalf("offline events export: %v", err)
	}
	offlineLines := exportLines(t, offlineExport, nil)
	if len(servedLines) != len(offlineLines) || len(servedLines) < 10 {
		t.Fatalf("served export has %d lines, offline %d", len(servedLines), len(offlineLines))
	}
	for i := range servedLines {
		if servedLines[i] != offlineLines[i] {
			t.Fatalf("line %d differs:\nserved  %s\noffline %s", i+2, servedLines[i], offlineLines[i])
		}
	}
	for i, step := range userSteps("carol") {
		out, err := runCLI(ctx, t, "password-carol-1\n", append([]string{"users"}, step...)...)
		if err != nil {
			t.Fatalf("offline users %v: %v", step, err)
		}
		if want := strings.ReplaceAll(servedOut[i], "bob", "carol"); out != want {
			t.Errorf("users %v: offline %q, served %q", step, out, servedOut[i])
		}
	}
	store, closeStore, err := openEventStore(ctx, s.cfg.EventStore.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore()
	bob, carol := streamTypes(ctx, t, store, identity.Stream("bob")), streamTypes(ctx, t, store, identity.Stream("carol"))
	if strings.Join(bob, " ") != strings.Join(carol, " ") || len(bob) < len(userSteps("")) {
		t.Errorf("user events: through the server %v, offline %v", bob, carol)
	}
}

// exportLines reads an export and returns its event lines (the header,
// whose time differs, left out); end, when not nil, gets the end line.
func exportLines(t *testing.T, path string, end *dump.End) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var h dump.Header
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Format != dump.Format || h.Source != "sqlite" {
		t.Fatalf("%s: header %q: %v", path, lines[0], err)
	}
	if end != nil {
		var e struct{ End dump.End }
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil || e.End.Events == 0 {
			t.Fatalf("%s: end line %q: %v", path, lines[len(lines)-1], err)
		}
		*end = e.End
	}
	return lines[1:]
}

func jsonUint(n uint64) string { b, _ := json.Marshal(n); return string(b) }

// TestExportRemoteRefusesTruncatedAnswer: an export answer that stops
// before its end line (the server failed midway) is an error, not a short
// file taken for a whole one.
func TestExportRemoteRefusesTruncatedAnswer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := startServed(ctx, t, dir)
	s.caughtUp(ctx, t)
	r := addRemoteFlags(flag.NewFlagSet("test", flag.ContinueOnError)).client(s.addr, benchAdminPassword)
	var whole bytes.Buffer
	var p dump.Progress
	end, err := exportRemote(ctx, r, &whole, 0, 0, &p, func(dump.Header) {})
	if err != nil || end.Events == 0 || p.Events.Load() != end.Events || p.Position.Load() != end.LastPosition {
		t.Fatalf("export: %+v, progress %d events at %d, %v", end, p.Events.Load(), p.Position.Load(), err)
	}
	// The same answer without its last line, from a server of our own.
	cut := whole.Bytes()[:bytes.LastIndex(whole.Bytes()[:whole.Len()-1], []byte("\n"))+1]
	fake := newFakeAPI(t)
	fake.export = cut
	_, err = exportRemote(ctx, fake.remote(), io.Discard, 0, 0, new(dump.Progress), func(dump.Header) {})
	if err == nil || !strings.Contains(err.Error(), "without its end line") {
		t.Fatalf("truncated export: %v", err)
	}
}

func TestLinePosition(t *testing.T) {
	tests := []struct {
		line string
		want uint64
	}{
		{`{"stream":"wallet-a","revision":0,"position":17,"id":"x"}`, 17},
		{`{"stream":"odd,\"position\":9","revision":3,"position":12345,"id":"x"}`, 12345},
		{`{"end":{"events":1,"last_position":1}}`, 0},
	}
	for _, tc := range tests {
		if got := linePosition([]byte(tc.line)); got != tc.want {
			t.Errorf("linePosition(%s) = %d, want %d", tc.line, got, tc.want)
		}
	}
}

// TestUsersImportGrapheneRefusedWhileServed: import-graphene, which the API
// cannot do, says to stop the server instead of failing on the lock.
func TestUsersImportGrapheneRefusedWhileServed(t *testing.T) {
	ctx := context.Background()
	startServed(ctx, t, t.TempDir())
	_, err := runCLI(ctx, t, "", "users", "import-graphene", "map.json", "-wallet", "main")
	if !errors.Is(err, errStoreLocked) || !strings.Contains(err.Error(), "stop the server first") {
		t.Fatalf("import-graphene while served: %v", err)
	}
}
