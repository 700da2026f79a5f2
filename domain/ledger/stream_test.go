package ledger_test

import (
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/ledger"
)

// TestTypePrefixes checks that the type-name prefixes consumers route on
// cover exactly the deposit and withdrawal event types.
func TestTypePrefixes(t *testing.T) {
	deposits := []string{ledger.TypeDepositSeen, ledger.TypeDepositConfirmed, ledger.TypeDepositConfirmationsChanged, ledger.TypeDepositReversed}
	withdrawals := []string{ledger.TypeWithdrawalRequested, ledger.TypeWithdrawalBroadcastStarted, ledger.TypeWithdrawalBroadcastAborted,
		ledger.TypeWithdrawalBroadcast, ledger.TypeWithdrawalUnknown, ledger.TypeWithdrawalFailed, ledger.TypeWithdrawalConfirmed}
	others := []string{ledger.TypeWalletOpened, ledger.TypeAccountOpened, ledger.TypeFundsTransferred, ledger.TypeBalanceImported, ledger.TypeHoldPlaced,
		ledger.TypeHoldReleased, ledger.TypeHoldExpired, ledger.TypeWalletLocked, ledger.TypeWalletUnlocked, ledger.TypeCommandRefused, ledger.TypeAddressAssigned}
	for _, tt := range []struct {
		types  []string
		prefix string
		want   bool
	}{
		{deposits, ledger.DepositTypePrefix, true},
		{withdrawals, ledger.WithdrawalTypePrefix, true},
		{others, ledger.DepositTypePrefix, false},
		{others, ledger.WithdrawalTypePrefix, false},
		{append(append(deposits, withdrawals...), others...), ledger.TypePrefix, true},
	} {
		for _, typ := range tt.types {
			if got := strings.HasPrefix(typ, tt.prefix); got != tt.want {
				t.Errorf("HasPrefix(%q, %q) = %v, want %v", typ, tt.prefix, got, tt.want)
			}
		}
	}
	if got := ledger.Stream("main"); got != "wallet-main" {
		t.Errorf(`ledger.Stream("main") = %q, want "wallet-main"`, got)
	}
}
