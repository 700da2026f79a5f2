package ledger

import (
	"fmt"
	"slices"
)

// TypeAddressAssigned is the stored type of AddressAssigned.
const TypeAddressAssigned = "ledger.address_assigned"

// maxAddressLen bounds deposit and withdrawal addresses (bech32 addresses
// are at most 90 characters; cashaddr adds a prefix).
const maxAddressLen = 128

// AssignAddress maps a deposit address to a user account. An address
// belongs to one account of the wallet for ever: assigning it to another
// account is ErrAddressExists; assigning it again to the same account
// decides no events (a retried assignment). Address: 1-128 of
// [A-Za-z0-9._:-], kept as given (no case folding: base58 addresses are
// case-sensitive). Allowed on a locked wallet (it moves no funds).
type AssignAddress struct {
	Account string
	Address string
	Idempotency
}

// AddressAssigned maps Address to Account; deposits to the address credit
// the account.
type AddressAssigned struct {
	Account string `json:"account"`
	Address string `json:"address"`
	Idempotency
}

func (AddressAssigned) EventType() string { return TypeAddressAssigned }
func (e AddressAssigned) subject() string { return e.Address }

func (s *State) assignAddress(c AssignAddress) ([]Event, error) {
	op := "assign address " + clip(c.Address)
	if err := s.mustBeOpen(op); err != nil {
		return nil, err
	}
	if err := checkAddress(op, c.Address); err != nil {
		return nil, err
	}
	if err := s.userAccount(op, "account", c.Account); err != nil {
		return nil, err
	}
	if owner, ok := s.addresses[c.Address]; ok {
		if owner == c.Account {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w (account %s)", op, ErrAddressExists, owner)
	}
	return []Event{AddressAssigned{Account: c.Account, Address: c.Address, Idempotency: c.Idempotency}}, nil
}

func (s *State) evolveAddress(e AddressAssigned) {
	if _, ok := s.addresses[e.Address]; ok {
		return
	}
	s.addresses[e.Address] = e.Account
	s.accountAddrs[e.Account] = append(s.accountAddrs[e.Account], e.Address)
}

// AccountOf returns the account a deposit address is assigned to.
func (s *State) AccountOf(address string) (string, bool) {
	a, ok := s.addresses[address]
	return a, ok
}

// Addresses returns the deposit addresses of an account in the order they
// were assigned (a copy; nil when it has none).
func (s *State) Addresses(account string) []string {
	return slices.Clone(s.accountAddrs[account])
}

// checkAddress: 1-128 of [A-Za-z0-9._:-].
func checkAddress(op, address string) error {
	ok := address != "" && len(address) <= maxAddressLen
	for i := 0; ok && i < len(address); i++ {
		c := address[i]
		ok = alnum(c) || c == '.' || c == '_' || c == ':' || c == '-'
	}
	if !ok {
		return invalid(op, "address: want 1-%d of [A-Za-z0-9._:-]", maxAddressLen)
	}
	return nil
}
