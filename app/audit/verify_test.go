package audit_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"slices"
	"testing"

	"github.com/coinledger/coinledger/app/audit"
	domain "github.com/coinledger/coinledger/domain/audit"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/eventstore/loadgen"
	"github.com/coinledger/coinledger/eventstore/sqlite"
	"github.com/coinledger/coinledger/eventstore/sqlite/sqlitetest"
	"github.com/coinledger/coinledger/eventstore/storetest"
)

// traffic returns a generated log of wallet traffic of events events.
func traffic(tb testing.TB, events int) []eventstore.Event {
	return trafficOf(tb, loadgen.WalletOptions{Events: events})
}

// trafficOf returns the log of wallet traffic opts shape.
func trafficOf(tb testing.TB, opts loadgen.WalletOptions) []eventstore.Event {
	tb.Helper()
	_, log := trafficStore(tb, opts)
	return log
}

// trafficStore generates wallet traffic into an embedded store, open until
// the test ends, and returns it with its whole log in memory.
func trafficStore(tb testing.TB, opts loadgen.WalletOptions) (*sqlite.Store, []eventstore.Event) {
	tb.Helper()
	ctx := context.Background()
	store := sqlitetest.Open(tb)
	if _, err := loadgen.WalletTraffic(ctx, store, opts); err != nil {
		tb.Fatal(err)
	}
	var out []eventstore.Event
	for after := uint64(0); ; {
		page, err := store.ReadAll(ctx, after, 4096)
		if err != nil {
			tb.Fatal(err)
		}
		if len(page) == 0 {
			return store, out
		}
		out = append(out, page...)
		after = page[len(page)-1].Position
	}
}

// verify runs a verifier over log, in batches of n (1: Add).
func verify(log []eventstore.Event, n int, opts audit.Options) audit.Report {
	v := audit.NewVerifier(opts)
	for i := 0; i < len(log); i += n {
		if n == 1 {
			v.Add(log[i])
		} else {
			v.AddBatch(log[i:min(i+n, len(log))])
		}
	}
	return v.Finish()
}

func codes(r audit.Report) []string {
	var out []string
	for _, f := range r.Findings {
		if !slices.Contains(out, f.Code) {
			out = append(out, f.Code)
		}
	}
	return out
}

// TestVerifierPassesGeneratedTraffic: the domain's own traffic, with a
// signed checkpoint in the middle, verifies one event at a time and in
// batches (prepared concurrently) alike.
func TestVerifierPassesGeneratedTraffic(t *testing.T) {
	log := traffic(t, 5000)
	tally := audit.NewTally()
	for _, e := range log[:3000] {
		if _, _, _, err := tally.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, 32)
	s, _, err := tally.Statement(1, secret)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	c := domain.Sign(s, key)
	opts := audit.Options{Keys: map[string]ed25519.PublicKey{domain.KeyID(pub): pub}, Checkpoints: []domain.Checkpoint{c}, Secret: secret}
	for _, n := range []int{1, 700, 4096} {
		r := verify(log, n, opts)
		if !r.OK() || r.Events != uint64(len(log)) || r.Checkpoints != 1 || r.Wallets == 0 {
			t.Fatalf("batches of %d: %d events, %d checkpoints, findings:\n%s", n, r.Events, r.Checkpoints, r)
		}
	}
}

// TestVerifierLedgerRules: a transfer rewritten to credit more than it
// debits, its chain recomputed, breaks double entry at that event and the
// wallet's sum at the end; one that overdraws an account is a negative
// balance.
func TestVerifierLedgerRules(t *testing.T) {
	log := traffic(t, 3000)
	i := slices.IndexFunc(log, func(e eventstore.Event) bool { return e.Type == ledger.TypeFundsTransferred })
	edit := func(e *eventstore.Event, fn func(*ledger.FundsTransferred)) {
		var ft ledger.FundsTransferred
		if err := json.Unmarshal(e.Data, &ft); err != nil {
			t.Fatal(err)
		}
		fn(&ft)
		e.Data, _ = json.Marshal(ft)
	}
	inflated := slices.Clone(log)
	edit(&inflated[i], func(ft *ledger.FundsTransferred) {
		for j := range ft.Postings {
			if ft.Postings[j].Amount > 0 {
				ft.Postings[j].Amount += 65_000_000
			}
		}
	})
	storetest.Rehash(inflated, i)
	r := verify(inflated, 512, audit.Options{})
	if f := r.Findings[0]; f.Code != audit.CodeUnbalanced || f.Position != log[i].Position || f.Stream != log[i].Stream {
		t.Fatalf("first finding %v, want unbalanced_event at %s:\n%s", f, log[i], r)
	}
	if !slices.Contains(codes(r), audit.CodeLedgerInvariant) {
		t.Fatalf("no ledger_invariant at the end:\n%s", r)
	}

	overdrawn := slices.Clone(log)
	edit(&overdrawn[i], func(ft *ledger.FundsTransferred) {
		for j := range ft.Postings {
			ft.Postings[j].Amount *= 1_000_000
		}
	})
	storetest.Rehash(overdrawn, i)
	r = verify(overdrawn, 1, audit.Options{})
	if !slices.Contains(codes(r), audit.CodeNegativeBalance) || slices.Contains(codes(r), audit.CodeUnbalanced) {
		t.Fatalf("overdrawn: %v\n%s", codes(r), r)
	}
}

// TestVerifierCapsFindingsPerCode: a log whose every transfer was edited
// reports MaxPerCode of them and counts the others.
func TestVerifierCapsFindingsPerCode(t *testing.T) {
	log := slices.Clone(traffic(t, 2000))
	edited := 0
	for i := range log {
		if log[i].Type == ledger.TypeFundsTransferred {
			log[i].Data = append(slices.Clone(log[i].Data[:len(log[i].Data)-1]), ` ,"x":1}`...)
			edited++
		}
	}
	r := verify(log, 300, audit.Options{MaxPerCode: 5})
	n := 0
	for _, f := range r.Findings {
		if f.Code == audit.CodeChainBroken {
			n++
		}
	}
	if n != 5 || r.Omitted[audit.CodeChainBroken] != edited-5 {
		t.Fatalf("%d chain_broken shown, %d omitted, %d edited", n, r.Omitted[audit.CodeChainBroken], edited)
	}
}

// TestVerifierLinksRedactedEvents: an event shown redacted is linked, not
// rehashed, but its place in its stream is still checked, and the next
// event's hash covers its stated hash.
func TestVerifierLinksRedactedEvents(t *testing.T) {
	log := traffic(t, 1000)
	v := audit.NewVerifier(audit.Options{})
	for i, e := range log {
		if i == 100 {
			e.Data = []byte(`{"redacted":true}`)
			v.AddRedacted(e)
			continue
		}
		v.Add(e)
	}
	if r := v.Finish(); !r.OK() || r.Linked != 1 {
		t.Fatalf("linked %d:\n%s", r.Linked, r)
	}
	v = audit.NewVerifier(audit.Options{})
	for i, e := range log {
		switch {
		case i == 100:
			continue // deleted
		case i == 101:
			v.AddRedacted(e)
		default:
			v.Add(e)
		}
	}
	if r := v.Finish(); !slices.Contains(codes(r), audit.CodeRevisionGap) && !slices.Contains(codes(r), audit.CodeChainBroken) {
		t.Fatalf("a deletion before a redacted event: %v\n%s", codes(r), r)
	}
}
