package wallet

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/eventstore"
	"github.com/coinledger/coinledger/projections"
)

// key names an account (wallet, account) or a hold (wallet, id).
type key struct{ wallet, name string }

func compareKeys(a, b key) int {
	if c := strings.Compare(a.wallet, b.wallet); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// decoded is an event of a wallet stream with its domain event.
type decoded struct {
	e      *eventstore.Event
	wallet string
	ev     ledger.Event
}

// batch is the in-memory fold of one Apply: the rows it touches, loaded once
// from the database, and the rows it appends.
type batch struct {
	accounts map[key]*accountRow
	holds    map[key]*holdRow
	wallets  map[string]*walletRow

	entries   []entryRow
	times     []timeRow
	transfers []movementRow
	imports   []movementRow
}

var _ projections.Selective = (*Projection)(nil)

// Wants implements projections.Selective: the ledger events of wallet
// streams.
func (p *Projection) Wants(e eventstore.Event) bool {
	return strings.HasPrefix(e.Stream, ledger.StreamPrefix) && p.codec.Knows(e.Type)
}

// Apply implements projections.Projection. Events of other streams and of
// types the codec does not know are ignored; a known event that does not
// decode fails the batch (the read model must not silently drift from the
// ledger).
func (p *Projection) Apply(ctx context.Context, tx projections.Tx, events []eventstore.Event) error {
	evs, err := p.decode(ctx, events)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	// What the batch needs from the database: the rows it touches before
	// (or without) creating them.
	needAccounts := map[key]struct{}{}
	needHolds := map[key]struct{}{}
	needWallets := map[string]struct{}{}
	created := map[key]struct{}{}   // accounts opened in this batch
	placed := map[key]struct{}{}    // holds placed in this batch
	opened := map[string]struct{}{} // wallets opened in this batch
	create := func(k key) {
		if _, ok := needAccounts[k]; !ok {
			created[k] = struct{}{}
		}
	}
	need := func(k key, done, needed map[key]struct{}) {
		if _, ok := done[k]; !ok {
			needed[k] = struct{}{}
		}
	}
	for _, d := range evs {
		name := d.wallet
		if _, ok := opened[name]; !ok {
			if _, ok := d.ev.(ledger.WalletOpened); ok {
				opened[name] = struct{}{}
			} else {
				needWallets[name] = struct{}{}
			}
		}
		switch ev := d.ev.(type) {
		case ledger.WalletOpened:
			for _, a := range ledger.SystemAccounts() {
				create(key{name, a})
			}
		case ledger.AccountOpened:
			create(key{name, ev.Account})
		case ledger.HoldPlaced:
			if _, ok := needHolds[key{name, ev.ID}]; !ok {
				placed[key{name, ev.ID}] = struct{}{}
			}
		case ledger.HoldReleased:
			need(key{name, ev.ID}, placed, needHolds)
		case ledger.HoldExpired:
			need(key{name, ev.ID}, placed, needHolds)
		}
		for _, ps := range ledger.PostingsOf(d.ev) {
			need(key{name, ps.Account}, created, needAccounts)
		}
	}

	b := &batch{
		accounts: make(map[key]*accountRow, len(needAccounts)+len(created)),
		holds:    make(map[key]*holdRow, len(needHolds)+len(placed)),
		wallets:  make(map[string]*walletRow, len(needWallets)+len(opened)),
		entries:  make([]entryRow, 0, 2*len(evs)), // most movements touch two accounts
	}
	if err := b.loadAccounts(ctx, tx, needAccounts); err != nil {
		return err
	}
	if err := b.loadHolds(ctx, tx, needHolds); err != nil {
		return err
	}
	if err := b.loadWallets(ctx, tx, needWallets); err != nil {
		return err
	}
	for _, d := range evs {
		b.fold(d)
	}
	return b.write(ctx, tx)
}

// parallelMin is the batch size from which decoding is spread over the
// CPUs (JSON decoding is a good part of the work of a catch-up).
const parallelMin = 512

// decode returns the batch's events of wallet streams with their domain
// events, in order.
func (p *Projection) decode(ctx context.Context, events []eventstore.Event) ([]decoded, error) {
	out := make([]decoded, len(events))
	decodeRange := func(lo, hi int) error {
		for i := lo; i < hi; i++ {
			e := &events[i]
			name, ok := strings.CutPrefix(e.Stream, ledger.StreamPrefix)
			if !ok || name == "" || !p.codec.Knows(e.Type) {
				continue
			}
			ev, err := p.codec.Decode(*e)
			if err != nil {
				return fmt.Errorf("wallet projection: %w", err)
			}
			out[i] = decoded{e: e, wallet: name, ev: ev}
		}
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(events)/parallelMin)
	if workers <= 1 {
		if err := decodeRange(0, len(events)); err != nil {
			return nil, err
		}
	} else {
		g, gctx := errgroup.WithContext(ctx)
		per := (len(events) + workers - 1) / workers
		for lo := 0; lo < len(events); lo += per {
			hi := min(lo+per, len(events))
			g.Go(func() error {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				return decodeRange(lo, hi)
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, d := range out {
		if d.ev != nil {
			out[n] = d
			n++
		}
	}
	clear(out[n:])
	return out[:n], nil
}

// accountID returns the id of an account created by the event at position:
// entries are keyed by it (an integer key is much cheaper to index than
// wallet and account names). It depends only on the events, so a rebuild
// assigns the same ids. slot tells the accounts one event creates apart:
// the system accounts of WalletOpened are 0-2 (in SystemAccounts order),
// AccountOpened's account is 0; an account first seen in postings (the
// ledger never does that) gets 4 plus its index among the event's accounts,
// so an event may create at most 12 of those.
func accountID(position uint64, slot int) int64 {
	return int64(position)<<4 | int64(min(slot, 15))
}

// account returns the row of an account, creating a zero one (as of
// position, with the id for slot) when the account is new.
func (b *batch) account(k key, position uint64, slot int) *accountRow {
	a := b.accounts[k]
	if a == nil {
		a = &accountRow{id: accountID(position, slot), wallet: k.wallet, name: k.name, position: position}
		b.accounts[k] = a
	}
	return a
}

// fold applies one event to the batch. A wallet exists from its
// WalletOpened on: events of a wallet stream the read model has no
// WalletOpened for are ignored (the ledger never writes them).
func (b *batch) fold(d decoded) {
	pos := d.e.Position
	w := b.wallets[d.wallet]
	if w == nil {
		if _, ok := d.ev.(ledger.WalletOpened); !ok {
			return
		}
		w = &walletRow{name: d.wallet}
		b.wallets[d.wallet] = w
	}
	v := b.tick(w, d.e)
	switch ev := d.ev.(type) {
	case ledger.WalletOpened:
		perms := make([]string, len(ev.Permissions))
		for i, p := range ev.Permissions {
			perms[i] = string(p)
		}
		w.coin, w.exponent = ev.Coin, ev.Exponent
		w.permissions, w.ipAllowlist = jsonList(perms), jsonList(ev.IPAllowlist)
		w.confirmations, w.position = ev.Confirmations, pos
		for i, a := range ledger.SystemAccounts() {
			b.account(key{d.wallet, a}, pos, i)
		}
	case ledger.AccountOpened:
		b.account(key{d.wallet, ev.Account}, pos, 0)
	case ledger.WalletLocked:
		w.locked, w.position = true, pos
	case ledger.WalletUnlocked:
		w.locked, w.position = false, pos
	case ledger.HoldPlaced:
		var expires int64
		if !ev.ExpiresAt.IsZero() {
			expires = ev.ExpiresAt.UnixMicro()
		}
		b.holds[key{d.wallet, ev.ID}] = &holdRow{account: ev.Account, amount: ev.Amount, reason: ev.Reason,
			expiresAt: expires, status: HoldActive, position: pos}
	case ledger.HoldReleased:
		b.endHold(key{d.wallet, ev.ID}, ev.Account, ev.Amount, HoldReleased, pos)
	case ledger.HoldExpired:
		b.endHold(key{d.wallet, ev.ID}, ev.Account, ev.Amount, HoldExpired, pos)
	}
	ps := ledger.PostingsOf(d.ev)
	var ts touchedList
	switch d.ev.(type) {
	case ledger.FundsTransferred, ledger.BalanceImported:
		ts = b.post(d, ps, v, describe(d, v))
	default:
		if len(ps) > 0 {
			ts = b.post(d, ps, v, describe(d, v))
		}
	}
	switch ev := d.ev.(type) {
	case ledger.FundsTransferred:
		b.transfers = append(b.transfers, movementRow{wallet: w, id: ev.ID, vals: v,
			from: ts.name(ev.From), to: ts.name(ev.To), amount: ev.Amount, memo: v.memo})
	case ledger.BalanceImported:
		b.imports = append(b.imports, movementRow{wallet: w, id: ev.ID, vals: v,
			to: ts.name(ev.Account), amount: ev.Amount, memo: v.memo})
	}
}

// tick advances the wallet's ledger clock to the event and returns the
// event's values shared by its rows. The event's ledger time is its store
// time, or the wallet's previous ledger time if that is later (the store's
// clock stepped back), so that time never decreases along a wallet's
// history and "balance at a time" is well defined. tick also records the
// wallet's last position per ledger time.
func (b *batch) tick(w *walletRow, e *eventstore.Event) *eventVals {
	prev := w.headTime
	t := max(e.Created.UnixMicro(), prev)
	w.head, w.headTime = e.Position, t
	v := newEventVals(e.Position, e.Revision, t)
	if w.times > 0 && b.times[w.times-1].created == t {
		b.times[w.times-1].vals = v
	} else {
		// Only the wallet's first time of the batch can be one the
		// database has (the last time of the previous batch).
		upsert := w.times == 0 && w.stored && t == prev
		b.times = append(b.times, timeRow{wallet: w, created: t, vals: v, upsert: upsert})
		w.times = len(b.times)
	}
	return v
}

func (b *batch) endHold(k key, account string, amount int64, status string, pos uint64) {
	h := b.holds[k]
	if h == nil {
		// Never placed as far as the read model knows: keep what the
		// ending event says.
		h = &holdRow{account: account, amount: amount}
		b.holds[k] = h
	}
	h.status, h.position = status, pos
}

// touched is one account's share of an event's postings.
type touched struct {
	account *accountRow
	name    string
	delta   Balance
}

// touchedList is the accounts an event's postings touch, in order.
type touchedList []touched

// name returns the boxed name of a touched account (the plain name if the
// event did not touch it).
func (ts touchedList) name(account string) any {
	for _, t := range ts {
		if t.name == account {
			return t.account.boxedName()
		}
	}
	return account
}

// post applies the event's postings to the balances, appends one entry per
// account they touch (of kind, or for a transfer, the side's) and returns
// those accounts.
func (b *batch) post(d decoded, ps []ledger.Posting, v *eventVals, kind any) touchedList {
	if len(ps) == 0 {
		return nil
	}
	ts := make(touchedList, 0, 2)
	for _, p := range ps {
		i := slices.IndexFunc(ts, func(t touched) bool { return t.name == p.Account })
		if i < 0 {
			ts = append(ts, touched{name: p.Account})
			i = len(ts) - 1
		}
		switch p.Bucket {
		case ledger.Available:
			ts[i].delta.Available += p.Amount
		case ledger.Pending:
			ts[i].delta.Pending += p.Amount
		case ledger.Held:
			ts[i].delta.Held += p.Amount
		}
	}
	for i := range ts {
		t := &ts[i]
		t.account = b.account(key{d.wallet, t.name}, d.e.Position, 4+i)
		t.account.bal.Available += t.delta.Available
		t.account.bal.Pending += t.delta.Pending
		t.account.bal.Held += t.delta.Held
		t.account.position = d.e.Position
	}
	for i, t := range ts {
		k := kind
		if k == nil { // a transfer: the direction depends on the side
			k = KindTransferIn
			if t.delta.Available < 0 {
				k = KindTransferOut
			}
		}
		counterparty := any("")
		if len(ts) == 2 {
			counterparty = ts[1-i].account.boxedName()
		}
		a := t.account
		a.entries = append(a.entries, int32(len(b.entries)))
		b.entries = append(b.entries, entryRow{vals: v, kind: k, counterparty: counterparty, after: a.bal})
	}
	return ts
}

// describe returns an event's entry kind (nil for a transfer, whose kind
// depends on the side) and sets the reference and memo of v.
func describe(d decoded, v *eventVals) (kind any) {
	switch ev := d.ev.(type) {
	case ledger.FundsTransferred:
		v.ref, v.memo = ev.ID, ev.Memo
		return nil
	case ledger.BalanceImported:
		v.ref, v.memo = ev.ID, ev.Reason
		return KindImport
	case ledger.HoldPlaced:
		v.ref, v.memo = ev.ID, ev.Reason
		return KindHold
	case ledger.HoldReleased:
		v.ref, v.memo = ev.ID, ev.Reason
		return KindHoldRelease
	case ledger.HoldExpired:
		v.ref, v.memo = ev.ID, ""
		return KindHoldExpiry
	}
	// A movement this package does not know yet (deposits, withdrawals):
	// the kind comes from the type, reference and memo from the usual
	// fields when the event has them.
	var g struct {
		ID     string `json:"id"`
		Memo   string `json:"memo"`
		Reason string `json:"reason"`
	}
	_ = json.Unmarshal(d.e.Data, &g) // it decoded once already; fields are optional
	v.ref, v.memo = g.ID, g.Memo
	if g.Memo == "" {
		v.memo = g.Reason
	}
	return strings.TrimPrefix(d.e.Type, ledger.TypePrefix)
}

func jsonList(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	out, _ := json.Marshal(s) // strings always marshal
	return string(out)
}

func boolInt(v bool) int64 {
	if v {
		return 1
	}
	return 0
}
