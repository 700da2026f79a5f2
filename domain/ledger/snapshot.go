package ledger

import (
	"encoding/json"
	"fmt"

	"github.com/coinledger/coinledger/domain/money"
)

// SnapshotSchema names the shape EncodeSnapshot writes. Change it whenever
// State gains, loses or reinterprets a field: snapshots of another schema
// are ignored and the stream is folded from its first event.
const SnapshotSchema = "ledger.state/v1"

// stateSnapshot is the encoded form of a State: every field, exported,
// but the index of expiring holds, which DecodeSnapshot rebuilds from the
// holds.
type stateSnapshot struct {
	Opened       bool                         `json:"opened"`
	Wallet       walletSnapshot               `json:"wallet"`
	Accounts     map[string]Balance           `json:"accounts"`
	Holds        map[string]Hold              `json:"holds"`
	Processed    map[string]processedSnapshot `json:"processed"`
	Version      uint64                       `json:"version"`
	Addresses    map[string]string            `json:"addresses"`
	AccountAddrs map[string][]string          `json:"account_addrs"`
	Deposits     map[string]Deposit           `json:"deposits"`
	Withdrawals  map[string]Withdrawal        `json:"withdrawals"`
	Debts        map[string]int64             `json:"debts"`
}

type walletSnapshot struct {
	Name          string       `json:"name"`
	Coin          string       `json:"coin"`
	Exponent      int          `json:"exponent"`
	Permissions   []Permission `json:"permissions"`
	IPAllowlist   []string     `json:"ip_allowlist"`
	Confirmations int          `json:"confirmations"`
	Locked        bool         `json:"locked"`
}

type processedSnapshot struct {
	Hash    string `json:"hash"`
	Command string `json:"command,omitempty"`
	Result  Result `json:"result"`
}

// EncodeSnapshot encodes s (every field) as JSON for DecodeSnapshot.
func EncodeSnapshot(s *State) ([]byte, error) {
	if s == nil {
		s = NewState()
	}
	out := stateSnapshot{
		Opened: s.opened,
		Wallet: walletSnapshot{Name: s.wallet.Name, Coin: s.wallet.Coin.Code(), Exponent: s.wallet.Coin.Exponent(),
			Permissions: s.wallet.Permissions, IPAllowlist: s.wallet.IPAllowlist,
			Confirmations: s.wallet.Confirmations, Locked: s.wallet.Locked},
		Accounts:     make(map[string]Balance, len(s.accounts)),
		Holds:        make(map[string]Hold, len(s.holds)),
		Processed:    make(map[string]processedSnapshot, len(s.processed)),
		Version:      s.version,
		Addresses:    s.addresses,
		AccountAddrs: s.accountAddrs,
		Deposits:     make(map[string]Deposit, len(s.deposits)),
		Withdrawals:  make(map[string]Withdrawal, len(s.withdrawals)),
		Debts:        s.debts,
	}
	for k, v := range s.accounts {
		out.Accounts[k] = *v
	}
	for k, v := range s.holds {
		out.Holds[k] = *v
	}
	for k, v := range s.processed {
		out.Processed[k] = processedSnapshot{Hash: v.hash, Command: v.command, Result: v.result}
	}
	for k, v := range s.deposits {
		out.Deposits[k] = *v
	}
	for k, v := range s.withdrawals {
		out.Withdrawals[k] = *v
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode ledger snapshot: %w", err)
	}
	return data, nil
}

// DecodeSnapshot rebuilds the State EncodeSnapshot encoded. It checks the
// decoded state with Verify, so a damaged snapshot is an error rather than
// a wrong ledger.
func DecodeSnapshot(data []byte) (*State, error) {
	var in stateSnapshot
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("decode ledger snapshot: %w", err)
	}
	s := NewState()
	s.opened, s.version = in.Opened, in.Version
	w := in.Wallet
	s.wallet = Wallet{Name: w.Name, Permissions: w.Permissions, IPAllowlist: w.IPAllowlist,
		Confirmations: w.Confirmations, Locked: w.Locked}
	if w.Coin != "" {
		asset, err := money.NewAsset(w.Coin, w.Exponent)
		if err != nil {
			return nil, fmt.Errorf("decode ledger snapshot: %w", err)
		}
		s.wallet.Coin = asset
	}
	s.accounts = pointers(in.Accounts)
	for k, v := range in.Holds {
		s.holds[k] = &v
		s.listExpiring(&v)
	}
	for k, v := range in.Processed {
		s.processed[k] = processed{hash: v.Hash, command: v.Command, result: v.Result}
	}
	if in.Addresses != nil {
		s.addresses = in.Addresses
	}
	if in.AccountAddrs != nil {
		s.accountAddrs = in.AccountAddrs
	}
	s.deposits = pointers(in.Deposits)
	s.withdrawals = pointers(in.Withdrawals)
	if in.Debts != nil {
		s.debts = in.Debts
	}
	if err := s.Verify(); err != nil {
		return nil, fmt.Errorf("decode ledger snapshot: %w", err)
	}
	return s, nil
}

// pointers returns m with each value behind a pointer of its own (never
// nil, as the state's maps are).
func pointers[K comparable, V any](m map[K]V) map[K]*V {
	out := make(map[K]*V, len(m))
	for k, v := range m {
		out[k] = &v
	}
	return out
}
