package ledger

// StreamPrefix starts the name of every wallet stream: "wallet-<name>".
const StreamPrefix = "wallet-"

// Stream returns the name of the stream of wallet.
func Stream(wallet string) string { return StreamPrefix + wallet }

// Prefixes of the event type names of this package, for consumers that
// route families of events (every Type... constant starts with TypePrefix,
// each deposit event type with DepositTypePrefix, each withdrawal event
// type with WithdrawalTypePrefix).
const (
	TypePrefix           = "ledger."
	DepositTypePrefix    = "ledger.deposit_"
	WithdrawalTypePrefix = "ledger.withdrawal_"
)
