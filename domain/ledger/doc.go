// Package ledger is the wallet ledger decider: one event stream per wallet
// ("wallet-<name>"), holding the wallet's accounts, balances and holds.
//
// It is pure: no I/O, no clock (commands that need the time carry Now), no
// context. Decide(state, command) returns events or an error without
// changing the state; Evolve(state, event) applies an event in place.
//
// Money moves by strict double entry. Every movement event carries
// postings (account, bucket, signed minor units) that sum to zero; system
// accounts (@import, @chain, @fees) may go negative, user accounts never
// have a negative bucket, so the sum of all balances of a wallet is always
// zero (State.Verify checks it). A hold is a pair of postings inside one
// account, from available to held.
//
// Deposits and withdrawals. Deposit addresses map to accounts
// (AssignAddress). A deposit, keyed by txid:vout, is credited to pending
// when first seen (ObserveDeposit), moved to available at the wallet's
// confirmation threshold, tracked up to State.TrackingDepth, and taken back
// by ReverseDeposit after a reorg or double spend. A withdrawal holds its
// amount (RequestWithdrawal), pays it to @chain and its network fee to
// @fees at RecordBroadcast, or returns it at FailWithdrawal; a broadcast
// with an unknown outcome (MarkUnknown) keeps it held until an operator
// resolves it. Repeated observations and transitions decide no events.
//
// Available never goes negative: what a reversal or a fee cannot take from
// an account is recorded as a shortfall in the event and as the account's
// debt (State.Debt), not posted. The coins the wallet holds on chain
// (unconfirmed deposits included) therefore reconcile as the sum of the
// user accounts' totals minus the sum of their debts.
//
// Wiring with the event store:
//
//	agg := eventstore.Aggregate[*ledger.State, ledger.Event]{Initial: ledger.NewState, Evolve: ledger.Evolve}
//	eventstore.Register[ledger.WalletOpened, ledger.Event](codec) // ... one per ledger.Events()
//
// A command path answers a repeated idempotency key from State.Replay
// before deciding, and decides a batch of commands on one state by
// evolving each command's events before deciding the next (Execute).
package ledger
