package main

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	appaudit "github.com/coinledger/coinledger/app/audit"
	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/esdb"
	"github.com/coinledger/coinledger/eventstore/esdb/esdbtest"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/storetest"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/custody"
	"github.com/coinledger/coinledger/projections/dbtest"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/coinledger/coinledger/test/btcnode"
)

// testKey returns the Ed25519 key of a seed byte.
func testKey(seed byte) ed25519.PrivateKey {
	s := make([]byte, ed25519.SeedSize)
	s[0] = seed
	return ed25519.NewKeyFromSeed(s)
}

var testSecret = []byte("the liability salt secret of the tamper tests")

// appendCheckpoint signs what the log of store states now as checkpoint
// number with key and appends it to audit.Stream, as the service's signer
// does (a test stand-in for it).
func appendCheckpoint(t *testing.T, store eventstore.Store, key ed25519.PrivateKey, number uint64) audit.Checkpoint {
	t.Helper()
	tally := appaudit.NewTally()
	for _, e := range readAll(t, store) {
		if _, _, _, err := tally.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	s, _, err := tally.Statement(number, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	c := audit.Sign(s, key)
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(context.Background(), audit.Stream, eventstore.ExpectRevision(number-1),
		eventstore.EventData{Type: audit.TypeCheckpointSigned, Data: data}); err != nil {
		t.Fatal(err)
	}
	return c
}

// auditFixture fills store with what the service writes (populate), a
// checkpoint, more transfers and a second checkpoint at the end; it builds
// the wallet and custody read models in db up to the head and returns the
// checkpoints.
func auditFixture(t *testing.T, store eventstore.Store, db projections.DB) []audit.Checkpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	populate(t, store, nil)
	c1 := appendCheckpoint(t, store, testKey(1), 1)
	ws := wallets.New(store, wallets.Options{})
	for i := range 10 {
		if _, err := ws.Execute(ctx, eventstore.Metadata{Actor: "user:admin"}, "main", func(*ledger.State) (ledger.Command, error) {
			return ledger.Transfer{ID: fmt.Sprintf("late-%d", i), From: "bob", To: "carol", Amount: money.New(money.BTC, 7)}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	ws.Close()
	c2 := appendCheckpoint(t, store, testKey(1), 2)
	catchUp(ctx, t, db, store, wallet.New(), custody.New())
	return []audit.Checkpoint{c1, c2}
}

// auditedLog is a backend whose log a test tampers with.
type auditedLog interface {
	store() eventstore.Store
	// rewrite hands the log's events to edit and writes back what it
	// returns, as someone with write access to the database would.
	rewrite(t *testing.T, edit func([]eventstore.Event) []eventstore.Event)
}

// sqliteLog is the embedded store, tampered with through its file.
type sqliteLog struct {
	path string
	s    *sqlite.Store
}

func (l *sqliteLog) store() eventstore.Store { return l.s }

func (l *sqliteLog) rewrite(t *testing.T, edit func([]eventstore.Event) []eventstore.Event) {
	t.Helper()
	events := edit(readAll(t, l.s))
	l.s.Close()
	db, err := sql.Open("sqlite", "file:"+l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM events`); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		m := e.Metadata
		if _, err := tx.Exec(`INSERT INTO events(position, stream, revision, id, type, data, created, correlation_id, causation_id, actor, schema_version, idempotency_key, hash)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`, e.Position, e.Stream, e.Revision, e.ID[:], e.Type, []byte(e.Data), e.Created.UnixMicro(),
			m.CorrelationID, m.CausationID, m.Actor, m.SchemaVersion, m.IdempotencyKey, e.Hash[:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	l.s = openSQLite(t, l.path)
}

// esdbLog is the EventStoreDB double, tampered with in its memory.
type esdbLog struct {
	srv *esdbtest.Server
	s   eventstore.Store
}

func (l *esdbLog) store() eventstore.Store { return l.s }

func (l *esdbLog) rewrite(t *testing.T, edit func([]eventstore.Event) []eventstore.Event) {
	t.Helper()
	events := readAll(t, l.s)
	var system []esdbtest.Record
	meta := map[uint64][]byte{}
	l.srv.Tamper(func(recs []esdbtest.Record) []esdbtest.Record {
		for _, r := range recs {
			if strings.HasPrefix(r.Stream, "$") || strings.HasPrefix(r.Type, "$") {
				system = append(system, r)
			} else {
				meta[r.Position] = r.Metadata
			}
		}
		return recs
	})
	byID := map[uuid.UUID][]byte{}
	for _, e := range events {
		byID[e.ID] = meta[e.Position]
	}
	edited := edit(events)
	l.srv.Tamper(func([]esdbtest.Record) []esdbtest.Record {
		out := slices.Clone(system)
		for _, e := range edited {
			var m map[string]any
			if err := json.Unmarshal(byID[e.ID], &m); err != nil {
				t.Fatal(err)
			}
			m["hash"] = e.Hash.String()
			md, _ := json.Marshal(m)
			out = append(out, esdbtest.Record{Position: e.Position, Stream: e.Stream, Revision: e.Revision, ID: e.ID,
				Type: e.Type, Data: e.Data, Metadata: md})
		}
		return out
	})
}

// find returns the index of the n-th event (from 0) that match accepts.
func find(t *testing.T, events []eventstore.Event, n int, match func(eventstore.Event) bool) int {
	t.Helper()
	for i, e := range events {
		if match(e) {
			if n == 0 {
				return i
			}
			n--
		}
	}
	t.Fatal("no such event")
	return -1
}

func ofType(typ string) func(eventstore.Event) bool {
	return func(e eventstore.Event) bool { return e.Type == typ }
}

// inflate credits 0.65 BTC more than a transfer debits.
func inflate(t *testing.T, e *eventstore.Event) {
	t.Helper()
	var ft ledger.FundsTransferred
	if err := json.Unmarshal(e.Data, &ft); err != nil {
		t.Fatal(err)
	}
	for i := range ft.Postings {
		if ft.Postings[i].Amount > 0 {
			ft.Postings[i].Amount += 65_000_000
		}
	}
	data, err := json.Marshal(ft)
	if err != nil {
		t.Fatal(err)
	}
	e.Data = data
}

// tamperKinds are the kinds of tampering, each with the code
// audit verify must name it by. Events up to the second checkpoint's are
// covered by it; the log ends with that checkpoint.
var tamperKinds = []struct {
	name   string
	code   string
	tamper func(t *testing.T, l auditedLog, db projections.DB, cps []audit.Checkpoint)
}{
	{"edit data", appaudit.CodeChainBroken, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			inflate(t, &events[find(t, events, 20, ofType(ledger.TypeFundsTransferred))])
			return events
		})
	}},
	{"edit then rehash the rest", appaudit.CodeGlobalChain, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			i := find(t, events, 20, ofType(ledger.TypeFundsTransferred))
			inflate(t, &events[i])
			storetest.Rehash(events, i)
			return events
		})
	}},
	{"delete a middle event", appaudit.CodeRevisionGap, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			return slices.Delete(events, 30, 31)
		})
	}},
	{"delete a stream's newest event", appaudit.CodeStreamHeads, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			last := -1
			for i, e := range events {
				if e.Stream == ledger.StreamPrefix+"second" {
					last = i
				}
			}
			return slices.Delete(events, last, last+1)
		})
	}},
	{"delete a whole stream", appaudit.CodeStreamHeads, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			return slices.DeleteFunc(events, func(e eventstore.Event) bool { return e.Stream == ledger.StreamPrefix+"second" })
		})
	}},
	{"truncate the log", appaudit.CodeCheckpointUnreached, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event { return events[:len(events)-5] })
	}},
	{"swap two positions", appaudit.CodeGlobalChain, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
			i := find(t, events, 0, func(e eventstore.Event) bool { return e.Stream == ledger.StreamPrefix+"second" })
			events[i-1].Position, events[i].Position = events[i].Position, events[i-1].Position
			return events
		})
	}},
	{"corrupt a read-model row", appaudit.CodeReadModelDrift, func(t *testing.T, _ auditedLog, db projections.DB, _ []audit.Checkpoint) {
		if err := db.Update(context.Background(), func(tx projections.Tx) error {
			_, err := tx.Exec(context.Background(), `UPDATE wallet_accounts SET available = available + 1 WHERE wallet = 'main' AND account = 'alice'`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}},
	{"forge a checkpoint with another key", appaudit.CodeUnknownKey, func(t *testing.T, l auditedLog, _ projections.DB, cps []audit.Checkpoint) {
		editCheckpoint(t, l, func(c *audit.Checkpoint) { *c = audit.Sign(c.Statement, testKey(9)) })
	}},
	{"change a liability total, re-signed with another key", appaudit.CodeLiabilities, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		editCheckpoint(t, l, func(c *audit.Checkpoint) {
			c.Liabilities[0].Total /= 2
			*c = audit.Sign(c.Statement, testKey(9))
		})
	}},
	{"change a liability total, unsigned", appaudit.CodeBadSignature, func(t *testing.T, l auditedLog, _ projections.DB, _ []audit.Checkpoint) {
		editCheckpoint(t, l, func(c *audit.Checkpoint) { c.Liabilities[0].Total /= 2 })
	}},
}

// editCheckpoint edits the first checkpoint in the log, its stream's
// chain recomputed.
func editCheckpoint(t *testing.T, l auditedLog, edit func(*audit.Checkpoint)) {
	t.Helper()
	l.rewrite(t, func(events []eventstore.Event) []eventstore.Event {
		i := find(t, events, 0, ofType(audit.TypeCheckpointSigned))
		c, err := audit.ParseCheckpoint(events[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		edit(&c)
		if events[i].Data, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		storetest.Rehash(events, i)
		return events
	})
}

// TestAuditVerifyNamesEveryTampering is the tamper test: on
// SQLite and on the EventStoreDB double, each kind of tampering is named by
// its code, and the untouched log passes.
func TestAuditVerifyNamesEveryTampering(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) auditedLog{
		"sqlite": func(t *testing.T) auditedLog {
			path := filepath.Join(t.TempDir(), "events.db")
			l := &sqliteLog{path: path, s: openSQLite(t, path)}
			t.Cleanup(func() { l.s.Close() })
			return l
		},
		"esdb": func(t *testing.T) auditedLog {
			srv := esdbtest.Start(t, esdbtest.Options{})
			s, err := esdb.Open(context.Background(), srv.URL(), esdb.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return &esdbLog{srv: srv, s: s}
		},
	}
	pub := testKey(1).Public().(ed25519.PublicKey)
	keys := map[string]ed25519.PublicKey{audit.KeyID(pub): pub}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kinds := append([]struct {
				name   string
				code   string
				tamper func(t *testing.T, l auditedLog, db projections.DB, cps []audit.Checkpoint)
			}{{"untouched", "", func(*testing.T, auditedLog, projections.DB, []audit.Checkpoint) {}}}, tamperKinds...)
			for _, k := range kinds {
				t.Run(k.name, func(t *testing.T) {
					t.Parallel()
					l, db := open(t), dbtest.OpenSQLite(t)
					cps := auditFixture(t, l.store(), db)
					k.tamper(t, l, db, cps)
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					// The auditor received the checkpoints out of band.
					r, err := verifyLog(ctx, &storeSource{store: l.store(), db: db}, appaudit.Options{Keys: keys, Checkpoints: cps}, nil)
					if err != nil {
						t.Fatal(err)
					}
					if k.code == "" {
						if !r.OK() || r.Checkpoints != 2 || r.Unsigned {
							t.Fatalf("untouched log: %d checkpoints matched, findings:\n%s", r.Checkpoints, r)
						}
						return
					}
					if !slices.ContainsFunc(r.Findings, func(f appaudit.Finding) bool { return f.Code == k.code }) {
						t.Fatalf("no %s among the findings:\n%s", k.code, r)
					}
					t.Logf("findings:\n%s", r)
				})
			}
		})
	}
}

// TestAuditVerifyCommand: audit verify on a data dir's store and read
// models, and on an export file of it, passes with the key and the
// checkpoints received out of band (-json says so), and exits with
// errFindings naming the code once the log is tampered with.
func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	l := &sqliteLog{path: path, s: openSQLite(t, path)}
	ctx := context.Background()
	db, closeDB, err := openReadModels(ctx, "sqlite:"+filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	cps := auditFixture(t, l.s, db)
	closeDB()
	keyFile := filepath.Join(dir, "key.json")
	pub := testKey(1).Public().(ed25519.PublicKey)
	writeFile(t, keyFile, fmt.Sprintf(`{"keys":[{"id":%q,"algorithm":"ed25519","public_key":%q,"status":"current"}]}`, audit.KeyID(pub), hex.EncodeToString(pub)))
	cpFile := filepath.Join(dir, "checkpoints.json")
	b, _ := json.Marshal(cps)
	writeFile(t, cpFile, string(b))
	export := filepath.Join(dir, "events.ndjson.gz")
	l.s.Close()
	t.Setenv("COINLEDGER_DATA_DIR", dir)
	t.Setenv("COINLEDGER_EVENT_STORE", "sqlite:"+path)
	if err := run(context.Background(), []string{"events", "export", "-o", export}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"audit", "verify", "-json", "-key", keyFile, "-checkpoints", cpFile},
		{"audit", "verify", "-json", "-key", keyFile, "-file", export},
	} {
		out := captureStdout(t, func() error { return run(context.Background(), args) })
		var r appaudit.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || !r.OK() || r.Checkpoints != 2 || r.Unsigned || r.Events == 0 {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	// A read-model row corrupted: named, exit status non-zero.
	db, closeDB, err = openReadModels(ctx, "sqlite:"+filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(context.Background(), func(tx projections.Tx) error {
		_, err := tx.Exec(context.Background(), `UPDATE wallet_accounts SET held = held + 5 WHERE wallet = 'second' AND account = 'bob'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closeDB()
	var runErr error
	out := captureStdout(t, func() error {
		runErr = run(context.Background(), []string{"audit", "verify", "-key", keyFile})
		return nil
	})
	if !errors.Is(runErr, errFindings) || !strings.Contains(out, "read_model_drift") || !strings.Contains(out, "second/bob") {
		t.Fatalf("corrupted read model: %v\n%s", runErr, out)
	}
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyAgainstRunningServer: while a server holds the store,
// audit verify reads the log through the API (no lock error): as admin
// from the export, as an auditor from GET /api/v1/events; both match the
// checkpoint the server signed, with the keys it serves, and the exit
// status says ok.
func TestAuditVerifyAgainstRunningServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s := startServed(ctx, t, dir)
	if err := s.c.postJSON("/wallets", map[string]any{"name": "main", "coin": "BTC", "permissions": []string{"read", "transfer"}},
		http.StatusCreated, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.postJSON("/users", map[string]any{"username": "eve", "email": "eve@example.com", "password": "password-eve-1",
		"roles": []string{"auditor"}}, http.StatusCreated, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	if err := s.c.postJSON("/wallets/main/accounts", map[string]any{"name": "alice"}, http.StatusCreated, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	// The server signs a checkpoint on demand (the signer follows the log).
	if err := s.c.postJSON("/audit/checkpoints", nil, http.StatusCreated, &struct{}{}); err != nil {
		t.Fatal(err)
	}
	auditor := newBenchClient(s.c.base, 1)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := auditor.postJSON("/auth/login", map[string]string{"username": "eve", "password": "password-eve-1"}, http.StatusOK, &tok); err != nil {
		t.Fatal(err)
	}
	for who, token := range map[string]string{"admin": s.c.token, "auditor": tok.AccessToken} {
		t.Setenv("COINLEDGER_TOKEN", token)
		// Without -key, the keys the server serves.
		out, err := runCLI(ctx, t, "", "audit", "verify", "-json")
		var r appaudit.Report
		if err != nil || json.Unmarshal([]byte(out), &r) != nil || !r.OK() || r.Checkpoints != 1 || r.Unsigned || r.Events == 0 {
			t.Fatalf("%s: %v\n%s", who, err, out)
		}
		// The server's read models, on this machine and holding still, are
		// compared too.
		if !slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "wallet read model: compared at position") }) {
			t.Errorf("%s: notes %q, want the wallet read model compared", who, r.Notes)
		}
	}
	// A row of the running server's read model corrupted: named.
	db, closeDB, err := openReadModels(ctx, "sqlite:"+filepath.Join(dir, "readmodels.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE wallet_accounts SET available = available + 7 WHERE wallet = 'main' AND account = 'alice'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("COINLEDGER_TOKEN", s.c.token)
	if out, err := runCLI(ctx, t, "", "audit", "verify"); err == nil || !strings.Contains(out, "read_model_drift") || !strings.Contains(out, "main/alice") {
		t.Fatalf("a corrupted row of the running server's read model: %v\n%s", err, out)
	}
	if err := db.Update(ctx, func(tx projections.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE wallet_accounts SET available = available - 7 WHERE wallet = 'main' AND account = 'alice'`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closeDB()

	// Offline once the server has stopped: the data directory's key file
	// (liability roots recomputed with its salt secret) and the read
	// models beside the store.
	s.checkpointsStored(ctx, t)
	s.stop()
	out, err := runCLI(ctx, t, "", "audit", "verify", "-json")
	var r appaudit.Report
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || !r.OK() || r.Checkpoints != 1 || r.Unsigned {
		t.Fatalf("offline: %v\n%s", err, out)
	}
}

// TestAuditVerifyReconcilesTheChain: with a bitcoind backend configured
// (btcd and btcwallet on simnet), audit verify compares the ledger's
// deposits − withdrawals − fees with the node wallet's balance: coins the
// node holds beyond the ledger are reported, a deposit the node never
// received is a chain_shortfall.
func TestAuditVerifyReconcilesTheChain(t *testing.T) {
	node := btcnode.Start(t)
	node.FundWallet(t, 10*btcnode.BTC)
	dir := t.TempDir()
	path := filepath.Join(dir, "events.db")
	config := filepath.Join(dir, "coinledger.yml")
	writeFile(t, config, fmt.Sprintf("coins:\n  - coin: BTC\n    backend: bitcoind\n    bitcoind:\n      url: %q\n      network: simnet\n      timeout: 10s\n", node.WalletURL()))
	t.Setenv("COINLEDGER_CONFIG", config)
	t.Setenv("COINLEDGER_DATA_DIR", dir)
	t.Setenv("COINLEDGER_EVENT_STORE", "sqlite:"+path)
	store := openSQLite(t, path)
	populate(t, store, nil)
	store.Close()
	verify := func() (appaudit.Report, error) {
		t.Helper()
		var runErr error
		out := captureStdout(t, func() error {
			runErr = run(context.Background(), []string{"audit", "verify", "-json"})
			return nil
		})
		var r appaudit.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Chains) != 1 {
			t.Fatalf("%v\n%s", err, out)
		}
		return r, runErr
	}
	r, err := verify()
	if c := r.Chains[0]; err != nil || c.Coin != "BTC" || c.Ledger != 0 || c.NodeTotal != 10*btcnode.BTC || c.Difference != 10*btcnode.BTC {
		t.Fatalf("%v: %+v", err, r)
	}

	store = openSQLite(t, path)
	ws := wallets.New(store, wallets.Options{})
	for _, c := range []ledger.Command{
		ledger.AssignAddress{Account: "bob", Address: "SdepositAddress1"},
		ledger.ObserveDeposit{TxID: strings.Repeat("ab", 32), Address: "SdepositAddress1", Amount: money.New(money.BTC, 20*btcnode.BTC)},
	} {
		if _, err := ws.Execute(context.Background(), eventstore.Metadata{Actor: "chain"}, "main", func(*ledger.State) (ledger.Command, error) { return c, nil }); err != nil {
			t.Fatal(err)
		}
	}
	ws.Close()
	store.Close()
	r, err = verify()
	c := r.Chains[0]
	if !errors.Is(err, errFindings) || c.Ledger != 20*btcnode.BTC || c.UnconfirmedDeposits != 20*btcnode.BTC || c.Difference != -10*btcnode.BTC ||
		r.Findings[0].Code != appaudit.CodeChainShortfall {
		t.Fatalf("%v: %+v", err, r)
	}
}
