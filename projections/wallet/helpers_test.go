package wallet_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/wallet"
	"github.com/coinledger/coinledger/test/background"
)

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// clock is the event store's clock: every append is stamped with the time
// set last.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// t0 is the time of the first event of every test.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// openStore opens the embedded event store in a temporary directory with
// clk as its clock.
func openStore(tb testing.TB, clk *clock) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "events.db"), sqlite.Options{Now: clk.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// ledgers drives wallet streams with the real decider: commands are
// executed on an in-memory state per wallet and their events appended to
// "wallet-<name>" with the expected version.
type ledgers struct {
	store  eventstore.Store
	codec  *eventstore.Codec[ledger.Event]
	states map[string]*ledger.State
}

func newLedgers(store eventstore.Store) *ledgers {
	return &ledgers{store: store, codec: wallet.Codec(), states: map[string]*ledger.State{}}
}

// do executes cmds on wallet's state and appends all their events in one
// append; it returns the global position of the last one.
func (l *ledgers) do(tb testing.TB, name string, cmds ...ledger.Command) uint64 {
	tb.Helper()
	return l.doEdited(tb, name, nil, cmds...)
}

// doEdited is do with edit, when not nil, applied to the JSON data of every
// event before the append: it writes what neither the edge nor the decider
// would let through, as an old or imported log may hold.
func (l *ledgers) doEdited(tb testing.TB, name string, edit func(data []byte) []byte, cmds ...ledger.Command) uint64 {
	tb.Helper()
	s := l.states[name]
	if s == nil {
		s = ledger.NewState()
		l.states[name] = s
	}
	version := s.Version()
	var events []ledger.Event
	for _, c := range cmds {
		evs, err := ledger.Execute(s, c)
		if err != nil {
			tb.Fatalf("%s: %T: %v", name, c, err)
		}
		events = append(events, evs...)
	}
	if len(events) == 0 {
		tb.Fatalf("%s: commands decided no events", name)
	}
	return l.append(tb, name, version, edit, events)
}

// appendEvents appends events as they are to wallet's stream (evolving
// them into its state) and returns the global position of the last one.
func (l *ledgers) appendEvents(tb testing.TB, name string, events ...ledger.Event) uint64 {
	tb.Helper()
	s := l.states[name]
	version := s.Version()
	for _, e := range events {
		ledger.Evolve(s, e)
	}
	return l.append(tb, name, version, nil, events)
}

// append encodes events, applies edit (when not nil) to their JSON data
// and appends them to wallet's stream expecting version; it returns the
// global position of the last one.
func (l *ledgers) append(tb testing.TB, name string, version uint64, edit func(data []byte) []byte, events []ledger.Event) uint64 {
	tb.Helper()
	data, err := l.codec.Encode(eventstore.Metadata{Actor: "test"}, events)
	must(tb, err)
	if edit != nil {
		for i := range data {
			data[i].Data = edit(data[i].Data)
		}
	}
	res, err := l.store.Append(context.Background(), ledger.Stream(name), eventstore.ExpectRevision(version), data...)
	if err != nil {
		tb.Fatalf("append to %s: %v", name, err)
	}
	return res.Position
}

// runner runs the wallet projection from store into db until the test ends
// or stop is called.
type runner struct {
	*projections.Runner
	stop func() error
}

func startRunner(tb testing.TB, db projections.DB, store eventstore.Store, opts projections.Options) *runner {
	tb.Helper()
	return startRunnerWith(tb, db, store, opts, wallet.New())
}

// startRunnerWith runs p, which must be named "wallet".
func startRunnerWith(tb testing.TB, db projections.DB, store eventstore.Store, opts projections.Options, p projections.Projection) *runner {
	tb.Helper()
	r := projections.NewRunner(db, store, opts, p)
	stop := background.Run(tb, false, r.Run)
	return &runner{Runner: r, stop: stop}
}

// waitFor waits until the projection has applied every event up to pos.
func (r *runner) waitFor(tb testing.TB, pos uint64) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	must(tb, r.WaitFor(ctx, "wallet", pos))
}

// waitHead waits until the projection has applied the store's head.
func (r *runner) waitHead(tb testing.TB, store eventstore.Store) {
	tb.Helper()
	head, err := store.Head(context.Background())
	must(tb, err)
	r.waitFor(tb, head)
}

// smallBatches re-cuts a store's subscription batches to at most size
// events, so that a projection sees many small batches.
type smallBatches struct {
	eventstore.Store
	size int
}

func (s smallBatches) Subscribe(ctx context.Context, after uint64, fn func(context.Context, []eventstore.Event) error) error {
	return s.Store.Subscribe(ctx, after, func(ctx context.Context, events []eventstore.Event) error {
		for len(events) > 0 {
			n := min(s.size, len(events))
			if err := fn(ctx, events[:n:n]); err != nil {
				return err
			}
			events = events[n:]
		}
		return nil
	})
}

// tables lists every table of the projection with its columns (i: BIGINT,
// s: TEXT) and its key order, for dumps.
var tables = []struct {
	name, order string
	cols        []string
	types       string
}{
	{"wallets", "name", []string{"name", "coin", "exponent", "permissions", "ip_allowlist", "confirmations", "locked", "position", "head", "head_time"}, "ssissiiiii"},
	{"wallet_times", "wallet, created", []string{"wallet", "created", "position"}, "sii"},
	{"wallet_accounts", "wallet, account", []string{"wallet", "account", "id", "system", "available", "pending", "held", "position"}, "ssiiiiii"},
	{"wallet_entries", "account_id, position", []string{"account_id", "position", "revision", "created", "kind", "reference",
		"counterparty", "memo", "available", "pending", "held"}, "iiiissssiii"},
	{"wallet_transfers", "wallet, id, position", []string{"wallet", "id", "position", "from_account", "to_account", "amount", "memo", "created"}, "ssissisi"},
	{"wallet_imports", "wallet, id, position", []string{"wallet", "id", "position", "account", "amount", "reason", "created"}, "ssisisi"},
	{"wallet_holds", "wallet, id", []string{"wallet", "id", "account", "amount", "reason", "expires_at", "status", "position"}, "sssisisi"},
}

// dump returns every row of every table of the projection, one line each,
// in key order.
func dump(tb testing.TB, db projections.DB) map[string][]string {
	tb.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for _, tbl := range tables {
		rows, err := db.Query(ctx, `SELECT `+strings.Join(tbl.cols, ", ")+` FROM `+tbl.name+` ORDER BY `+tbl.order)
		must(tb, err)
		lines := []string{}
		for rows.Next() {
			dest := make([]any, len(tbl.types))
			for i, c := range tbl.types {
				if c == 'i' {
					dest[i] = new(int64)
				} else {
					dest[i] = new(string)
				}
			}
			must(tb, rows.Scan(dest...))
			var sb strings.Builder
			for i, d := range dest {
				if i > 0 {
					sb.WriteByte('|')
				}
				switch d := d.(type) {
				case *int64:
					fmt.Fprint(&sb, *d)
				case *string:
					sb.WriteString(*d)
				}
			}
			lines = append(lines, sb.String())
		}
		must(tb, rows.Close())
		out[tbl.name] = lines
	}
	return out
}

// batchSizes records the size of the largest batch applied.
type batchSizes struct {
	*wallet.Projection
	mu  sync.Mutex
	max int
}

func (p *batchSizes) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	p.mu.Lock()
	p.max = max(p.max, len(events))
	p.mu.Unlock()
	return p.Projection.Apply(ctx, tx, events)
}

func (p *batchSizes) largest() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.max
}
