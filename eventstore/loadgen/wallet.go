package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
)

// WalletOptions shape the traffic of WalletTraffic. Zero fields take the
// defaults.
type WalletOptions struct {
	Events    int    // events to append in all (default 1,000,000)
	Wallets   int    // wallet streams (default 20)
	Accounts  int    // user accounts per wallet, fewer for a small log (default 1,000)
	PerAppend int    // commands decided per append of one wallet (default 256)
	Seed      uint64 // of the random choices (default 1)
}

func (o *WalletOptions) setDefaults() {
	if o.Events <= 0 {
		o.Events = 1_000_000
	}
	if o.Wallets <= 0 {
		o.Wallets = 20
	}
	if o.Accounts <= 0 {
		o.Accounts = 1_000
	}
	if o.PerAppend <= 0 {
		o.PerAppend = 256
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	// The set-up (a wallet, its accounts and their opening balances) stays
	// within a tenth of the log.
	o.Wallets = max(1, min(o.Wallets, o.Events/40))
	o.Accounts = max(2, min(o.Accounts, (o.Events/10/o.Wallets-1)/2))
}

// WalletStats counts what WalletTraffic appended.
type WalletStats struct {
	Events    int // events appended; the store's head if it was empty
	Wallets   int
	Accounts  int // user accounts, all wallets together
	Transfers int // FundsTransferred events
	Holds     int // HoldPlaced events
	Entries   int // account entries the events make in the wallet read model
}

// WalletTraffic appends exactly opts.Events events of wallet ledger traffic
// to store, decided by the domain (ledger.Execute) as the service decides
// them and encoded with the wallet codec: each wallet opened, its accounts
// opened and funded by imports, then transfers between random accounts
// (four in five; every other one with an idempotency key), holds placed
// (some expiring, expired by later transfers) and released. Events carry
// the metadata requests give them (actor, correlation id). Appends go to
// one wallet at a time, PerAppend commands each.
func WalletTraffic(ctx context.Context, store eventstore.Store, opts WalletOptions) (WalletStats, error) {
	opts.setDefaults()
	st := WalletStats{Wallets: opts.Wallets, Accounts: opts.Wallets * opts.Accounts}
	codec := eventstore.NewCodecOf(ledger.Events()...)
	r := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // the commands' clock: a millisecond per command
	type wallet struct {
		name    string
		state   *ledger.State
		pending []eventstore.EventData
		holds   []string // active holds that never expire
		next    int      // command counter, for ids
	}
	wallets := make([]*wallet, opts.Wallets)
	flush := func(w *wallet) error {
		if len(w.pending) == 0 {
			return nil
		}
		expected := eventstore.ExpectRevision(w.state.Version() - uint64(len(w.pending)))
		if w.state.Version() == uint64(len(w.pending)) {
			expected = eventstore.NoStream
		}
		if _, err := store.Append(ctx, ledger.Stream(w.name), expected, w.pending...); err != nil {
			return fmt.Errorf("wallet traffic: append to %s: %w", w.name, err)
		}
		w.pending = w.pending[:0]
		return nil
	}
	exec := func(w *wallet, c ledger.Command, meta eventstore.Metadata) error {
		evs, err := ledger.Execute(w.state, c)
		if err != nil {
			return fmt.Errorf("wallet traffic: %s: %T: %w", w.name, c, err)
		}
		data, err := codec.Encode(meta, evs)
		if err != nil {
			return fmt.Errorf("wallet traffic: %w", err)
		}
		w.pending = append(w.pending, data...)
		st.Events += len(evs)
		for _, e := range evs {
			switch e.(type) {
			case ledger.FundsTransferred:
				st.Transfers++
			case ledger.HoldPlaced:
				st.Holds++
			}
			// One entry per account an event's postings touch.
			seen := make(map[string]bool, 2)
			for _, p := range ledger.PostingsOf(e) {
				seen[p.Account] = true
			}
			st.Entries += len(seen)
		}
		return nil
	}
	meta := func(w *wallet, key string) eventstore.Metadata {
		w.next++
		return eventstore.Metadata{Actor: "user:" + w.name + "-operator", IdempotencyKey: key,
			CorrelationID: fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())}
	}
	account := func(i int) string { return "acct-" + strconv.Itoa(i) }
	btc := func(units int64) money.Amount { return money.New(money.BTC, units) }

	for i := range wallets {
		w := &wallet{name: "w" + strconv.Itoa(i), state: ledger.NewState()}
		wallets[i] = w
		if err := exec(w, ledger.OpenWallet{Name: w.name, Coin: money.BTC, Permissions: ledger.AllPermissions()}, meta(w, "")); err != nil {
			return st, err
		}
		for a := range opts.Accounts {
			if err := exec(w, ledger.OpenAccount{Name: account(a)}, meta(w, "")); err != nil {
				return st, err
			}
			if err := exec(w, ledger.ImportBalance{ID: "imp-" + strconv.Itoa(a), Account: account(a),
				Amount: btc(1_000_000_000), Reason: "opening balance"}, meta(w, "")); err != nil {
				return st, err
			}
		}
		if err := flush(w); err != nil {
			return st, err
		}
	}
	for k := 0; st.Events < opts.Events; k++ {
		w := wallets[k%len(wallets)]
		for c := 0; c < opts.PerAppend && st.Events < opts.Events; c++ {
			now = now.Add(time.Millisecond)
			id := strconv.Itoa(w.next)
			from, to := r.IntN(opts.Accounts), r.IntN(opts.Accounts-1)
			if to >= from {
				to++
			}
			transfer := ledger.Transfer{ID: "t-" + id, From: account(from), To: account(to),
				Amount: btc(1 + r.Int64N(100_000)), Memo: "invoice " + id, Now: now}
			var cmd ledger.Command = transfer
			key := ""
			if r.IntN(2) == 0 {
				key = "req-" + id
			}
			switch x := r.IntN(100); {
			case opts.Events-st.Events < 64:
				// The last events: one event per command (no holds expired
				// on the way), so the count comes out exact.
				transfer.Now = time.Time{}
				cmd = transfer
			case x < 80:
			case x < 90:
				hold := ledger.PlaceHold{ID: "h-" + id, Account: account(from), Amount: btc(1 + r.Int64N(10_000)),
					Reason: "withdrawal review", Now: now}
				if r.IntN(3) == 0 {
					hold.ExpiresAt = now.Add(time.Duration(1+r.IntN(2000)) * time.Millisecond)
				} else {
					w.holds = append(w.holds, hold.ID)
				}
				cmd = hold
			case len(w.holds) > 0:
				j := r.IntN(len(w.holds))
				cmd = ledger.ReleaseHold{ID: w.holds[j], Reason: "reviewed"}
				w.holds[j] = w.holds[len(w.holds)-1]
				w.holds = w.holds[:len(w.holds)-1]
			}
			if key != "" {
				cmd = withKey(cmd, key)
			}
			if err := exec(w, cmd, meta(w, key)); err != nil {
				return st, err
			}
		}
		if err := flush(w); err != nil {
			return st, err
		}
	}
	return st, nil
}

// withKey sets the idempotency key of the commands WalletTraffic keys.
func withKey(c ledger.Command, key string) ledger.Command {
	idem := ledger.Idempotency{Key: key, RequestHash: "sha256:" + key}
	switch c := c.(type) {
	case ledger.Transfer:
		c.Idempotency = idem
		return c
	case ledger.PlaceHold:
		c.Idempotency = idem
		return c
	case ledger.ReleaseHold:
		c.Idempotency = idem
		return c
	}
	return c
}
