// Package chainsync keeps the wallet ledgers in step with the coins' nodes:
// it turns what a chain backend reports into deposit observations and
// reversals, follows confirmations on every notification and every new
// block, rescans with listsinceblock so that a lost notification never
// loses a deposit, and broadcasts requested withdrawals without ever
// sending one twice.
//
// A Syncer serves one coin; a Registry holds the syncers and the index
// that maps addresses and txids back to wallets.
package chainsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coinledger/coinledger/app/wallets"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
	"github.com/coinledger/coinledger/eventstore"
)

// ErrUnknownCoin: no backend is configured for the coin.
var ErrUnknownCoin = errors.New("no chain backend for the coin")

// Registry holds one Syncer per coin.
type Registry struct {
	store    eventstore.Store
	wallets  *wallets.Service
	idx      *Index
	caughtUp func(context.Context) error
	log      *slog.Logger
	syncers  map[string]*Syncer
}

// NewRegistry returns an empty registry routing through idx, which the
// projection runner feeds. caughtUp waits until idx has handled every event
// appended so far (the runner's CaughtUp for it): a lookup that misses
// calls it and looks again, so an address assigned or a withdrawal
// broadcast a moment ago is found; lists of a coin's wallets or addresses
// call it first. nil: lookups use the index as it is. It does no I/O.
func NewRegistry(store eventstore.Store, ws *wallets.Service, idx *Index, caughtUp func(context.Context) error,
	logger *slog.Logger) *Registry {
	return &Registry{store: store, wallets: ws, idx: idx, caughtUp: caughtUp, log: logger, syncers: map[string]*Syncer{}}
}

// sync waits until the index has handled every event appended so far.
func (r *Registry) sync(ctx context.Context) error {
	if r.caughtUp == nil {
		return nil
	}
	if err := r.caughtUp(ctx); err != nil {
		return fmt.Errorf("chain index: %w", err)
	}
	return nil
}

// lookup runs look, and when it misses, waits until the index is current
// (once per *synced, so one notification waits at most once) and runs it
// again.
func (r *Registry) lookup(ctx context.Context, synced *bool, look func() bool) (bool, error) {
	if look() {
		return true, nil
	}
	if *synced {
		return false, nil
	}
	if err := r.sync(ctx); err != nil {
		return false, err
	}
	*synced = true
	return look(), nil
}

// Options tune a Syncer; the zero value is the production default.
type Options struct {
	// Kind names the backend (bitcoind, blockio, null) for status pages.
	Kind string
	// PollInterval is how often the node's block height is polled and
	// requested withdrawals are looked for (default 5 s).
	PollInterval time.Duration
	// Clock for rescan jobs (default time.Now).
	Clock func() time.Time
}

// Add binds coin to backend. Call it before Run.
func (r *Registry) Add(coin string, b Backend, opts Options) *Syncer {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Syncer{coin: coin, backend: b, reg: r, opts: opts, wake: make(chan struct{}, 1),
		log: r.log.With("coin", coin, "backend", opts.Kind), jobs: map[string]*RescanJob{}}
	r.syncers[coin] = s
	return s
}

// Syncer returns the syncer of coin (ErrUnknownCoin).
func (r *Registry) Syncer(coin string) (*Syncer, error) {
	s, ok := r.syncers[coin]
	if !ok {
		return nil, fmt.Errorf("coin %s: %w", coin, ErrUnknownCoin)
	}
	return s, nil
}

// Syncers returns the syncers, by coin.
func (r *Registry) Syncers() []*Syncer {
	out := make([]*Syncer, 0, len(r.syncers))
	for _, s := range r.syncers {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Syncer) int { return strings.Compare(a.coin, b.coin) })
	return out
}

// Run runs every syncer until ctx is done.
func (r *Registry) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range r.syncers {
		wg.Go(func() { s.Run(ctx) })
	}
	wg.Wait()
}

// Syncer follows one coin's node.
type Syncer struct {
	coin    string
	backend Backend
	reg     *Registry
	opts    Options
	log     *slog.Logger
	wake    chan struct{}

	scanMu sync.Mutex // one rescan at a time; guards the checkpoint below
	// The rescan checkpoint as last read or written: the block to ask
	// listsinceblock from and the checkpoint stream's next revision.
	scanLoaded bool
	scanLast   string
	scanNext   uint64

	mu     sync.Mutex
	jobs   map[string]*RescanJob
	jobSeq int
	height int64
}

// Coin returns the syncer's coin.
func (s *Syncer) Coin() string { return s.coin }

// Kind returns the backend's kind.
func (s *Syncer) Kind() string { return s.opts.Kind }

// Backend returns the syncer's backend.
func (s *Syncer) Backend() Backend { return s.backend }

// meta is the metadata of the events the syncer causes; the correlation
// id is the one ctx carries (a walletnotify's, copied across the bus).
func (s *Syncer) meta(ctx context.Context, cause string) eventstore.Metadata {
	return eventstore.Metadata{Actor: "chainsync:" + s.coin, CausationID: cause, CorrelationID: eventstore.CorrelationID(ctx)}
}

// errNothing ends a Build that finds nothing to do.
var errNothing = errors.New("nothing to do")

func (s *Syncer) execute(ctx context.Context, cause, wallet string, build wallets.Build) (wallets.Result, error) {
	res, err := s.reg.wallets.Execute(ctx, s.meta(ctx, cause), wallet, build)
	if errors.Is(err, errNothing) {
		return res, nil
	}
	return res, err
}

// Observed is what a notification changed.
type Observed struct {
	// Position of the last event it appended (0: nothing changed).
	Position uint64
}

func (o *Observed) add(r wallets.Result) { o.Position = max(o.Position, r.Position) }

// Notify records what the node knows of txid now: the outputs paying the
// coin's wallets' addresses are observed (credited when first seen,
// confirmed at the wallet's threshold), deposits of a transaction the node
// no longer knows are reversed as reorged, of a conflicted one as double
// spent, and a broadcast withdrawal is confirmed at the threshold. It is
// idempotent: the same txid any number of times changes nothing more. An
// unreachable node is ErrUnavailable (retry later).
func (s *Syncer) Notify(ctx context.Context, txid string) (Observed, error) {
	return s.notify(ctx, txid, new(bool))
}

// notify is Notify; *synced reports whether the index was made current
// during the caller's work already (lookups that miss wait once).
func (s *Syncer) notify(ctx context.Context, txid string, synced *bool) (Observed, error) {
	var obs Observed
	tx, err := s.backend.Transaction(ctx, txid)
	switch {
	case errors.Is(err, ErrTxNotFound):
		return obs, s.reverse(ctx, &obs, txid, ledger.ReasonReorg)
	case err != nil:
		return obs, fmt.Errorf("notify %s %s: %w", s.coin, txid, err)
	case tx.Confirmations < 0:
		return obs, s.reverse(ctx, &obs, txid, ledger.ReasonDoubleSpend)
	}
	for _, o := range tx.Received {
		var wallet string
		ok, err := s.reg.lookup(ctx, synced, func() (ok bool) { wallet, ok = s.reg.idx.walletOf(s.coin, o.Address); return ok })
		if err != nil {
			return obs, fmt.Errorf("notify %s %s: %w", s.coin, txid, err)
		}
		if !ok {
			s.log.Debug("output to an address of no wallet", "txid", txid, "vout", o.Vout, "address", o.Address)
			continue
		}
		res, err := s.execute(ctx, txid, wallet, func(st *ledger.State) (ledger.Command, error) {
			return ledger.ObserveDeposit{TxID: txid, Vout: o.Vout, Address: o.Address, Amount: money.New(st.Coin(), o.Amount),
				Confirmations: tx.Confirmations, BlockHash: tx.BlockHash}, nil
		})
		if err != nil {
			return obs, fmt.Errorf("notify %s %s:%d: %w", s.coin, txid, o.Vout, err)
		}
		obs.add(res)
	}
	if tx.Confirmations <= 0 {
		return obs, nil
	}
	var w walletW
	ok, err := s.reg.lookup(ctx, synced, func() (ok bool) { w, ok = s.reg.idx.withdrawalOf(s.coin, txid); return ok })
	if err != nil {
		return obs, fmt.Errorf("notify %s %s: %w", s.coin, txid, err)
	}
	if ok {
		res, err := s.execute(ctx, txid, w.wallet, func(st *ledger.State) (ledger.Command, error) {
			wd, ok := st.Withdrawal(w.id)
			if !ok || wd.Status != ledger.WithdrawalStatusBroadcast || tx.Confirmations < st.Wallet().Confirmations {
				return nil, errNothing
			}
			return ledger.ConfirmWithdrawal{ID: w.id, Confirmations: tx.Confirmations}, nil
		})
		if err != nil {
			return obs, fmt.Errorf("notify %s withdrawal %s: %w", s.coin, w.id, err)
		}
		obs.add(res)
	}
	return obs, nil
}

// reverse takes back every tracked deposit of txid in the coin's wallets.
func (s *Syncer) reverse(ctx context.Context, obs *Observed, txid, reason string) error {
	type output struct {
		wallet string
		vout   uint32
	}
	var outs []output
	err := s.viewWallets(ctx, func(wallet string, st *ledger.State) {
		for _, d := range st.TrackedDeposits() {
			if d.TxID == txid {
				outs = append(outs, output{wallet, d.Vout})
			}
		}
	})
	if err != nil {
		return fmt.Errorf("reverse %s: %w", txid, err)
	}
	for _, o := range outs {
		res, err := s.execute(ctx, txid, o.wallet, func(*ledger.State) (ledger.Command, error) {
			return ledger.ReverseDeposit{TxID: txid, Vout: o.vout, Reason: reason}, nil
		})
		if err != nil {
			return fmt.Errorf("reverse %s:%d in %s: %w", txid, o.vout, o.wallet, err)
		}
		if res.Position > 0 {
			s.log.Warn("deposit reversed", "wallet", o.wallet, "txid", txid, "vout", o.vout, "reason", reason)
		}
		obs.add(res)
	}
	return nil
}

// viewWallets runs view on the state of each of the coin's wallets, after
// waiting for the index to be current; view must not keep the state.
func (s *Syncer) viewWallets(ctx context.Context, view func(wallet string, st *ledger.State)) error {
	if err := s.reg.sync(ctx); err != nil {
		return err
	}
	for _, wallet := range s.reg.idx.walletsOf(s.coin) {
		err := s.reg.wallets.View(ctx, wallet, func(st *ledger.State) error { view(wallet, st); return nil })
		if err != nil {
			return fmt.Errorf("%s: %w", wallet, err)
		}
	}
	return nil
}

// Refresh notifies every txid the coin's wallets still follow: tracked
// deposits and broadcast withdrawals. The block poller calls it on every
// new block.
func (s *Syncer) Refresh(ctx context.Context) (Observed, error) {
	txids, err := s.followed(ctx)
	if err != nil {
		return Observed{}, err
	}
	return s.notifyAll(ctx, txids)
}

// followed returns the txids the coin's wallets still follow: tracked
// deposits and broadcast withdrawals (the index made current first).
func (s *Syncer) followed(ctx context.Context) ([]string, error) {
	var txids []string
	err := s.viewWallets(ctx, func(_ string, st *ledger.State) {
		for _, d := range st.TrackedDeposits() {
			txids = append(txids, d.TxID)
		}
		for _, w := range st.WithdrawalsByStatus(ledger.WithdrawalStatusBroadcast) {
			txids = append(txids, w.TxID)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("refresh %s: %w", s.coin, err)
	}
	return txids, nil
}

// notifyAll notifies each of txids once; lookups that miss wait for the
// index at most once in all.
func (s *Syncer) notifyAll(ctx context.Context, txids []string) (Observed, error) {
	var obs Observed
	synced := false
	slices.Sort(txids)
	for _, txid := range slices.Compact(txids) {
		o, err := s.notify(ctx, txid, &synced)
		if err != nil {
			return obs, err
		}
		obs.Position = max(obs.Position, o.Position)
	}
	return obs, nil
}

// Addresses returns the deposit addresses of the coin's wallets, e.g.
// for a notification source that subscribes per address.
func (s *Syncer) Addresses(ctx context.Context) ([]string, error) {
	if err := s.reg.sync(ctx); err != nil {
		return nil, err
	}
	return s.reg.idx.addressesOf(s.coin), nil
}

// NewAddress returns a fresh deposit address from the backend.
func (s *Syncer) NewAddress(ctx context.Context) (string, error) {
	a, err := s.backend.NewAddress(ctx)
	if err != nil {
		return "", fmt.Errorf("new %s address: %w", s.coin, err)
	}
	return a, nil
}

// Wake makes the broadcaster look for requested withdrawals now.
func (s *Syncer) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run follows the node until ctx is done: withdrawals left broadcasting by
// a crash are marked unknown; the block height is polled, and the first
// poll and every new block run a rescan (catching up with what happened
// while the service was down or a notification was lost) and refresh every
// tracked deposit; requested withdrawals are broadcast. Failures are logged
// and retried at the next poll.
func (s *Syncer) Run(ctx context.Context) {
	recovered := false
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	for {
		if !recovered {
			recovered = s.logged("recover interrupted broadcasts", s.recoverBroadcasts(ctx))
		}
		s.logged("block poll", s.poll(ctx))
		if recovered {
			s.logged("broadcast", s.Broadcast(ctx))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
	}
}

func (s *Syncer) logged(what string, err error) bool {
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn(what+" failed; retrying", "err", err)
	}
	return err == nil
}

// poll rescans (new transactions since the last block) and refreshes the
// tracked ones (new confirmations) when the block height changed.
func (s *Syncer) poll(ctx context.Context) error {
	h, err := s.backend.Height(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	changed := h != s.height
	s.mu.Unlock()
	if !changed {
		return nil
	}
	// One pass: what happened since the last block, and every txid still
	// followed (for its new confirmations), each asked once.
	txids, err := s.followed(ctx)
	if err != nil {
		return err
	}
	if _, err := s.scan(ctx, txids); err != nil {
		return err
	}
	s.mu.Lock()
	s.height = h
	s.mu.Unlock()
	return nil
}
