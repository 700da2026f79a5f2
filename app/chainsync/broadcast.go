package chainsync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/domain/money"
)

// sendTimeout bounds one send to the node. A send is not cancelled with
// the caller (a shutdown must not turn a send into an unknown outcome).
const sendTimeout = 2 * time.Minute

// Broadcast sends the requested withdrawals of the coin's wallets, oldest
// first, each at most once:
//
//   - the node is asked for its height first: unreachable, the withdrawal
//     stays requested and the round ends (ErrUnavailable);
//   - BeginBroadcast is recorded before the send, so a crash during the
//     send leaves it broadcasting and the restart marks it unknown;
//   - sent: RecordBroadcast with the txid and fee; rejected: the
//     withdrawal fails and its funds return; the node unreachable at the
//     send (nothing reached it): AbortBroadcast, sent again later; any
//     other outcome may have reached the network: MarkUnknown, for an
//     operator.
func (s *Syncer) Broadcast(ctx context.Context) error {
	var pending []walletWithdrawal
	err := s.viewWallets(ctx, func(wallet string, st *ledger.State) {
		for _, w := range st.PendingBroadcasts() {
			pending = append(pending, walletWithdrawal{wallet, w})
		}
	})
	if err != nil {
		return fmt.Errorf("broadcast %s: %w", s.coin, err)
	}
	for _, p := range pending {
		if err := s.send(ctx, p.wallet, p.w); err != nil {
			return err
		}
	}
	return nil
}

type walletWithdrawal struct {
	wallet string
	w      ledger.Withdrawal
}

func (s *Syncer) send(ctx context.Context, wallet string, w ledger.Withdrawal) error {
	op := fmt.Sprintf("broadcast %s/%s", wallet, w.ID)
	if _, err := s.backend.Height(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	do := func(cmd ledger.Command) error {
		_, err := s.execute(context.WithoutCancel(ctx), "broadcast:"+w.ID, wallet, func(*ledger.State) (ledger.Command, error) { return cmd, nil })
		return err
	}
	if err := do(ledger.BeginBroadcast{ID: w.ID}); err != nil {
		if errors.Is(err, ledger.ErrWalletLocked) || errors.Is(err, ledger.ErrWithdrawalState) {
			return nil // locked meanwhile, or someone else took it
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	sent, err := s.backend.Send(sctx, w.Address, w.Amount, w.SubtractFee)
	cancel()
	switch {
	case err == nil:
		s.log.Info("withdrawal broadcast", "wallet", wallet, "id", w.ID, "txid", sent.TxID, "fee", sent.Fee)
		return s.record(ctx, op, wallet, w, sent)
	case errors.Is(err, ErrUnavailable):
		if aerr := do(ledger.AbortBroadcast{ID: w.ID, Reason: reason(err)}); aerr != nil {
			return fmt.Errorf("%s: %w (abort: %v)", op, err, aerr)
		}
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, ErrRejected):
		s.log.Warn("withdrawal rejected by the node", "wallet", wallet, "id", w.ID, "err", err)
		return do(ledger.FailWithdrawal{ID: w.ID, Reason: reason(err)})
	default:
		s.log.Error("withdrawal outcome unknown: not sent again; an operator must resolve it", "wallet", wallet, "id", w.ID, "err", err)
		return do(ledger.MarkUnknown{ID: w.ID, Reason: reason(err)})
	}
}

// record records a send, retrying a few times: the transaction is out,
// the ledger must learn it. Should it still fail, the withdrawal stays
// broadcasting and the next start marks it unknown: never sent twice.
func (s *Syncer) record(ctx context.Context, op, wallet string, w ledger.Withdrawal, sent Sent) error {
	var err error
	for attempt := range 5 {
		_, err = s.execute(context.WithoutCancel(ctx), "broadcast:"+w.ID, wallet, func(st *ledger.State) (ledger.Command, error) {
			return ledger.RecordBroadcast{ID: w.ID, TxID: sent.TxID, Fee: money.New(st.Coin(), sent.Fee)}, nil
		})
		if err == nil {
			return nil
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	return fmt.Errorf("%s: sent as %s but not recorded: %w", op, sent.TxID, err)
}

// recoverBroadcasts marks unknown the withdrawals a stopped broadcaster
// left broadcasting: they may be on the network.
func (s *Syncer) recoverBroadcasts(ctx context.Context) error {
	var stuck []walletWithdrawal
	err := s.viewWallets(ctx, func(wallet string, st *ledger.State) {
		for _, w := range st.WithdrawalsByStatus(ledger.WithdrawalStatusBroadcasting) {
			stuck = append(stuck, walletWithdrawal{wallet, w})
		}
	})
	if err != nil {
		return fmt.Errorf("recover broadcasts of %s: %w", s.coin, err)
	}
	for _, p := range stuck {
		s.log.Error("withdrawal was being broadcast when the service stopped: marked unknown, not sent again", "wallet", p.wallet, "id", p.w.ID)
		_, err := s.execute(ctx, "recover:"+p.w.ID, p.wallet, func(*ledger.State) (ledger.Command, error) {
			return ledger.MarkUnknown{ID: p.w.ID, Reason: "broadcast interrupted: the service stopped before its outcome was recorded"}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// reason clips an error for a withdrawal's reason (at most 500 bytes).
func reason(err error) string {
	r := err.Error()
	if len(r) > 500 {
		r = r[:497] + "..."
	}
	return r
}
