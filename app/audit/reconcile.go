package audit

import (
	"context"
	"fmt"

	"github.com/coinledger/coinledger/domain/ledger"
)

// CodeChainShortfall: a coin's node wallet holds less than the ledger says
// it received and kept (deposits − withdrawals − fees).
const CodeChainShortfall = "chain_shortfall"

// ChainWallet is a coin's node wallet as reconciliation reads it.
type ChainWallet interface {
	// Balance returns the wallet's balance in minor units: confirmed (one
	// confirmation or more) and in all (unconfirmed receipts and spends
	// included).
	Balance(ctx context.Context) (confirmed, total int64, err error)
}

// Reconciliation is one coin's ledger against its node's wallet.
type Reconciliation struct {
	Coin string `json:"coin"`
	// Ledger is what the ledger says the node wallet holds, over every
	// wallet of the coin: deposits seen − withdrawals sent − fees paid,
	// that is −(@chain + @fees).
	Ledger int64 `json:"ledger"`
	// UnconfirmedDeposits is the part of Ledger in deposits seen but not
	// confirmed yet (the accounts' pending balances).
	UnconfirmedDeposits int64 `json:"unconfirmed_deposits"`
	// NodeConfirmed and NodeTotal are the node wallet's balance with one
	// confirmation or more, and in all.
	NodeConfirmed int64 `json:"node_confirmed"`
	NodeTotal     int64 `json:"node_total"`
	// Difference is NodeTotal − Ledger: above zero the node holds coins
	// the ledger does not account for (paid to it outside the ledger),
	// below zero coins the ledger counts are missing (a finding).
	Difference int64 `json:"difference"`
	// Error says why the node could not be asked.
	Error string `json:"error,omitempty"`
}

func (r Reconciliation) String() string {
	if r.Error != "" {
		return fmt.Sprintf("%s: the node wallet could not be asked: %s", r.Coin, r.Error)
	}
	return fmt.Sprintf("%s: ledger %d (deposits − withdrawals − fees; %d of it in unconfirmed deposits), node wallet %d (%d confirmed, %d unconfirmed): difference %+d",
		r.Coin, r.Ledger, r.UnconfirmedDeposits, r.NodeTotal, r.NodeConfirmed, r.NodeTotal-r.NodeConfirmed, r.Difference)
}

// Reconcile compares coin's side of the books the tally folded with its
// node's wallet; a shortfall is a finding.
func Reconcile(ctx context.Context, t *Tally, coin string, w ChainWallet) (Reconciliation, []Finding) {
	r := Reconciliation{Coin: coin}
	for _, book := range t.Books().Wallets() {
		if book.Coin != coin {
			continue
		}
		for name, b := range book.Accounts {
			switch {
			case name == ledger.ChainAccount || name == ledger.FeeAccount:
				r.Ledger -= b.Total()
			case !ledger.IsSystemAccount(name):
				r.UnconfirmedDeposits += b.Pending
			}
		}
	}
	confirmed, total, err := w.Balance(ctx)
	if err != nil {
		r.Error = err.Error()
		return r, nil
	}
	r.NodeConfirmed, r.NodeTotal, r.Difference = confirmed, total, total-r.Ledger
	if r.Difference < 0 {
		return r, []Finding{{Code: CodeChainShortfall, Position: t.Last.Position,
			Message: fmt.Sprintf("%s: the node wallet holds %d less than the ledger accounts for: %s", coin, -r.Difference, r)}}
	}
	return r, nil
}
