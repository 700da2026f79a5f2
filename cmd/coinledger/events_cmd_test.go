package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/dump"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/seal"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
)

// populate fills store with what the service writes: two wallets with
// accounts, opening balances and transfers, and users whose credentials
// are sealed (by us, else by a random key).
func populate(t *testing.T, store eventstore.Store, us *users.Service) {
	t.Helper()
	ctx := context.Background()
	ws := wallets.New(store, wallets.Options{})
	defer ws.Close()
	meta := eventstore.Metadata{Actor: "user:admin", CorrelationID: "corr-1"}
	exec := func(w string, c ledger.Command) {
		t.Helper()
		if _, err := ws.Execute(ctx, meta, w, func(*ledger.State) (ledger.Command, error) { return c, nil }); err != nil {
			t.Fatalf("%s: %T: %v", w, c, err)
		}
	}
	for _, w := range []string{"main", "second"} {
		exec(w, ledger.OpenWallet{Name: w, Coin: money.BTC, Permissions: ledger.AllPermissions()})
		for _, a := range []string{"alice", "bob", "carol"} {
			exec(w, ledger.OpenAccount{Name: a})
			exec(w, ledger.ImportBalance{ID: "import-" + a, Account: a, Amount: money.New(money.BTC, 100_000)})
		}
	}
	names := []string{"alice", "bob", "carol"}
	for i := range 60 {
		w := []string{"main", "second"}[i%2]
		exec(w, ledger.Transfer{ID: fmt.Sprintf("t-%d", i), From: names[i%3], To: names[(i+1)%3],
			Amount: money.New(money.BTC, int64(100+i)), Memo: "transfer \"quoted\" ü\t"})
	}
	if us == nil {
		us = users.NewWithOptions(store, users.Options{BcryptCost: bcrypt.MinCost, Keyring: seal.Random()})
	}
	if err := us.Register(ctx, meta, "alice", "alice@example.com", "password-alice-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := us.BootstrapAdmin(ctx, "admin-password-1", nil); err != nil {
		t.Fatal(err)
	}
}

// readAll returns every event of store.
func readAll(t *testing.T, store eventstore.Store) []eventstore.Event {
	t.Helper()
	var all []eventstore.Event
	var after uint64
	for {
		events, err := store.ReadAll(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			return all
		}
		all = append(all, events...)
		after = events[len(events)-1].Position
	}
}

func openSQLite(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sourceStore creates a populated SQLite store at dir/src.db, closed again.
func sourceStore(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "src.db")
	s := openSQLite(t, path)
	populate(t, s, nil)
	s.Close()
	return path
}

// cli runs the command with the event store url.
func cli(t *testing.T, url string, args ...string) error {
	t.Helper()
	t.Setenv("COINLEDGER_EVENT_STORE", url)
	t.Setenv("COINLEDGER_DATA_DIR", t.TempDir())
	return run(context.Background(), args)
}

// TestEventsExportImportSQLiteRoundTrip: an export of a SQLite store with
// wallets, transfers and users (credentials sealed) imported into a new
// SQLite store gives every event identically (id, type, data bytes,
// metadata, time, hash, revision, position), and audit verify passes on it.
func TestEventsExportImportSQLiteRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := sourceStore(t, dir)
	for _, file := range []string{"events.ndjson", "events.ndjson.gz"} {
		t.Run(file, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), file)
			if err := cli(t, "sqlite:"+src, "events", "export", "-o", out); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "dst.db")
			if err := cli(t, "sqlite:"+dst, "events", "import", out); err != nil {
				t.Fatal(err)
			}
			if err := cli(t, "sqlite:"+dst, "audit", "verify"); err != nil {
				t.Fatalf("audit verify of the imported store: %v", err)
			}
			s, d := openSQLite(t, src), openSQLite(t, dst)
			defer s.Close()
			defer d.Close()
			want, got := readAll(t, s), readAll(t, d)
			if len(want) < 70 {
				t.Fatalf("the source has only %d events", len(want))
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("imported events differ: %d events, source %d", len(got), len(want))
			}
			sealed := false
			for _, e := range got {
				if bytes.Contains(e.Data, []byte(`"sealed":"`)) {
					sealed = true
				}
				if bytes.Contains(e.Data, []byte("$2a$")) {
					t.Fatalf("%s holds a password hash in the clear", e)
				}
			}
			if !sealed {
				t.Fatal("no event with a sealed box was exported")
			}
		})
	}
}

// TestEventsImportRefusesTamperedExport: one byte of one event's data
// changed in the file fails the import at that event (stream, revision,
// source position), before anything of its batch is written.
func TestEventsImportRefusesTamperedExport(t *testing.T) {
	dir := t.TempDir()
	src := sourceStore(t, dir)
	out := filepath.Join(dir, "events.ndjson")
	if err := cli(t, "sqlite:"+src, "events", "export", "-o", out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(b, []byte("\n"))
	// Change a letter of a transfer's memo.
	var victim eventstore.Event
	for i := 30; i < len(lines); i++ {
		if !bytes.Contains(lines[i], []byte(`"memo":"`)) {
			continue
		}
		var l struct {
			Stream   string
			Revision uint64
			Position uint64
		}
		if err := json.Unmarshal(lines[i], &l); err != nil {
			t.Fatal(err)
		}
		victim = eventstore.Event{Stream: l.Stream, Revision: l.Revision, Position: l.Position}
		at := bytes.Index(lines[i], []byte(`"memo":"`)) + len(`"memo":"`)
		lines[i][at] ^= 1 // 't' becomes 'u': the JSON stays valid
		break
	}
	if victim.Stream == "" {
		t.Fatal("no transfer found to tamper with")
	}
	tampered := filepath.Join(dir, "tampered.ndjson")
	if err := os.WriteFile(tampered, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst.db")
	err = cli(t, "sqlite:"+dst, "events", "import", tampered)
	want := fmt.Sprintf("source position %d", victim.Position)
	var ce *eventstore.ChainError
	if !errors.As(err, &ce) || ce.Stream != victim.Stream || ce.Revision != victim.Revision || !strings.Contains(err.Error(), want) {
		t.Fatalf("import of a tampered export: %v; want a broken chain of %s at revision %d, %s", err, victim.Stream, victim.Revision, want)
	}
	if err := cli(t, "sqlite:"+dst, "events", "import", "-check", tampered); !errors.As(err, &ce) {
		t.Fatalf("import -check of a tampered export: %v", err)
	}
	d := openSQLite(t, dst)
	defer d.Close()
	if n := len(readAll(t, d)); n != 0 {
		t.Fatalf("the refused import wrote %d events", n)
	}
}

// TestEventsImportRefusesNonEmptyTarget: an import into a store that holds
// events fails, writes nothing; a store locked by a running process is
// named as in use.
func TestEventsImportRefusesNonEmptyTarget(t *testing.T) {
	dir := t.TempDir()
	src := sourceStore(t, dir)
	out := filepath.Join(dir, "events.ndjson")
	if err := cli(t, "sqlite:"+src, "events", "export", "-o", out); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst.db")
	d := openSQLite(t, dst)
	if _, err := d.Append(context.Background(), "other-1", eventstore.NoStream,
		eventstore.EventData{Type: "Something", Data: []byte(`{"a":1}`)}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, d)
	// While d is open, the file is locked.
	if err := cli(t, "sqlite:"+dst, "events", "import", out); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("import into a locked store: %v", err)
	}
	d.Close()
	err := cli(t, "sqlite:"+dst, "events", "import", out)
	if !errors.Is(err, dump.ErrNotEmpty) {
		t.Fatalf("import into a non-empty store: %v", err)
	}
	d = openSQLite(t, dst)
	defer d.Close()
	if after := readAll(t, d); !reflect.DeepEqual(after, before) {
		t.Fatalf("the refused import changed the store: %d events, before %d", len(after), len(before))
	}
}

// TestEventsExportSQLiteImportESDBDoubleBalancesIdentical is the issue's
// test: export from SQLite, import into the EventStoreDB double with the
// CLI, audit verify passes there, and the wallet read model built from the
// double has the balances of the one built from the source.
func TestEventsExportSQLiteImportESDBDoubleBalancesIdentical(t *testing.T) {
	dir := t.TempDir()
	src := sourceStore(t, dir)
	out := filepath.Join(dir, "events.ndjson.gz")
	if err := cli(t, "sqlite:"+src, "events", "export", "-o", out); err != nil {
		t.Fatal(err)
	}
	srv := esdbtest.Start(t, esdbtest.Options{Links: true})
	if err := cli(t, srv.URL(), "events", "import", out); err != nil {
		t.Fatal(err)
	}
	if err := cli(t, srv.URL(), "audit", "verify"); err != nil {
		t.Fatalf("audit verify on the double: %v", err)
	}
	// A second import is refused: the double is not empty now.
	if err := cli(t, srv.URL(), "events", "import", out); !errors.Is(err, dump.ErrNotEmpty) {
		t.Fatalf("second import into the double: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := openSQLite(t, src)
	defer s.Close()
	e, err := esdb.Open(ctx, srv.URL(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	want, got := readAll(t, s), readAll(t, e)
	if len(got) != len(want) {
		t.Fatalf("the double holds %d events, the source %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		g.Position = w.Position // positions are the double's own
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("event %d differs:\n got  %+v\n want %+v", i, g, w)
		}
	}
	if a, b := balances(t, s), balances(t, e); !reflect.DeepEqual(a, b) || len(a) == 0 {
		t.Fatalf("balances differ:\n source %v\n double %v", a, b)
	}
}

// catchUp runs the projections into db until they have applied the whole
// log of store.
func catchUp(ctx context.Context, t *testing.T, db projections.DB, store eventstore.Store, projs ...projections.Projection) {
	t.Helper()
	r := projections.NewRunner(db, store, projections.Options{}, projs...)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	head, err := store.Head(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range projs {
		if err := r.WaitFor(ctx, p.Name(), head); err != nil {
			t.Fatal(err)
		}
	}
}

// balances builds the wallet read model from store and returns every
// account's balances.
func balances(t *testing.T, store eventstore.Store) map[string]wallet.Balance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := dbtest.OpenSQLite(t)
	catchUp(ctx, t, db, store, wallet.New())
	out := map[string]wallet.Balance{}
	ws, err := wallet.ListWallets(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		for _, list := range []func(context.Context, projections.DB, string) ([]wallet.Account, error){wallet.ListAccounts, wallet.ListSystemAccounts} {
			accounts, err := list(ctx, db, w.Name)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range accounts {
				out[w.Name+"/"+a.Name] = a.Balance
			}
		}
	}
	return out
}

// TestEventsImportIntoESDBDoubleServesIdenticalBalances: the service run on
// a SQLite store (wallets, transfers, users) is exported, imported into the
// EventStoreDB double and served from it with new read models: the admin
// logs in (its sealed password hash came along) and every account shows the
// balances the SQLite-backed service showed.
func TestEventsImportIntoESDBDoubleServesIdenticalBalances(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	config := func() *Config {
		cfg := &Config{DataDir: t.TempDir(), AdminPassword: "bench-admin-password", BcryptCost: 4,
			SealKey: "0123456789abcdef0123456789abcdef", JWTSecret: "jwt-secret-jwt-secret-jwt-secret-0123"}
		cfg.setDefaults()
		return cfg
	}
	// serveBalances serves store and returns every account's answer.
	serveBalances := func(cfg *Config, store eventstore.Store) map[string]string {
		t.Helper()
		svc, err := newService(ctx, cfg, logger, wiring{store: store})
		if err != nil {
			t.Fatal(err)
		}
		defer svc.close()
		c, stop, err := startBenchService(ctx, svc, 1)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		head, err := store.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := svc.runner.WaitFor(ctx, "wallet", head); err != nil {
			t.Fatal(err)
		}
		if err := c.login(); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, w := range []string{"main", "second"} {
			for _, a := range []string{"alice", "bob", "carol"} {
				status, b, err := c.get("/wallets/" + w + "/accounts/" + a)
				var body struct {
					Balance json.RawMessage `json:"balance"`
				}
				if err == nil {
					err = json.Unmarshal(b, &body)
				}
				if err != nil || status != http.StatusOK {
					t.Fatalf("GET %s/%s: %d %v", w, a, status, err)
				}
				out[w+"/"+a] = string(body.Balance)
			}
		}
		return out
	}

	srcCfg := config()
	srcPath := filepath.Join(srcCfg.DataDir, "events.db")
	src := openSQLite(t, srcPath)
	us, err := usersService(srcCfg, src, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	populate(t, src, us)
	want := serveBalances(srcCfg, src)
	src.Close()
	out := filepath.Join(t.TempDir(), "events.ndjson")
	if err := cli(t, "sqlite:"+srcPath, "events", "export", "-o", out); err != nil {
		t.Fatal(err)
	}
	srv := esdbtest.Start(t, esdbtest.Options{})
	if err := cli(t, srv.URL(), "events", "import", out); err != nil {
		t.Fatal(err)
	}
	dst, err := esdb.Open(ctx, srv.URL(), esdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got := serveBalances(config(), dst)
	if !reflect.DeepEqual(got, want) || !strings.Contains(want["main/alice"], "available") {
		t.Fatalf("balances served from the double:\n got  %v\n want %v", got, want)
	}
}
